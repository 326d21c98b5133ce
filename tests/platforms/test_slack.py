"""Inloop on Slack end to end: Socket Mode and HTTP mode against a fake Slack on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.app import App, build_platforms
from bot.config import load_settings
from bot.platform import StartError
from bot.platforms.slack.adapter import SlackPlatform
from fake_slack import FakeSlack, button, message, sign
from harness import eventually
from slack_chat import OWNER, SHARED, SlackChat, buttons, shown


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def slack(database_url: str, fake: FakeSlack) -> AsyncIterator[SlackChat]:
    chat = await SlackChat(database_url, fake).start()
    try:
        yield chat
    finally:
        await chat.stop()


async def test_watched_channel_mention_to_card_claim_and_thread_reply(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()

    await slack.write("UCUST", "My order <!channel> arrived broken", SHARED, ts="100.1")
    await slack.until(lambda: len(fake.in_channel(OWNER)) == 1)

    text, blocks = slack.card(1)
    assert "Giulia" in shown(blocks) and "slack" in shown(blocks)
    assert "My order &lt;!channel&gt; arrived broken" in shown(blocks)
    assert buttons(blocks) == ["inloop:claim"]
    assert "#1 from Giulia" in text  # the notification fallback

    told = await slack.press("UANN", "claim", "1")
    assert "#1" in told
    _, blocks = slack.card(1)
    assert "Ann" in shown(blocks)
    assert buttons(blocks) == ["inloop:replied", "inloop:release", "inloop:resolve"]
    assert len(fake.in_channel(OWNER)) == 1  # updated in place, not posted again
    assert fake.count("chat.update") == 1

    told = await slack.press("UBOB", "claim", "1")
    assert "already claimed by Ann" in told or "Ann" in told
    assert fake.ephemeral[-1].user == "UBOB" and fake.ephemeral[-1].channel == OWNER

    # Ann answers in the customer's thread: the card says replied without a command.
    await slack.write(
        "UANN", "Sorry! A new one is on its way", SHARED, ts="100.2", thread_ts="100.1"
    )
    await slack.until(lambda: buttons(slack.card(1)[1])[0] == "inloop:resolve")


async def test_the_bots_own_messages_and_edits_are_not_customers(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()

    before = slack.handled
    await slack.send_event(
        message("UBOT", SHARED, "I am the bot", "200.1", bot_id="BBOT"), expect=0
    )
    await slack.send_event(
        message("UCUST", SHARED, "edited", "200.2", subtype="message_changed"), expect=0
    )
    await slack.send_event(
        message("UCUST", SHARED, "joined", "200.3", subtype="channel_join"), expect=0
    )
    await slack.write("UCUST", "a real question", SHARED, ts="200.4")

    await slack.until(lambda: len(fake.in_channel(OWNER)) == 1)
    assert slack.handled == before + 1  # only the real message reached the core
    assert "a real question" in shown(slack.card(1)[1])
