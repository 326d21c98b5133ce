"""Inloop on Slack end to end: Socket Mode and HTTP mode against a fake Slack on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_sdk.http_retry.async_handler import RetryState
from slack_sdk.http_retry.request import HttpRequest
from sqlalchemy import event, select, update
from sqlmodel import col

from bot.app import App, build_platforms
from bot.clock import utc_now
from bot.config import load_settings
from bot.events import ChannelId
from bot.outbox import LEASE
from bot.platform import DeliveryError, StartError
from bot.platforms.slack import translate as tr
from bot.platforms.slack.adapter import ConnectionRetry, SlackPlatform, Turnstile
from bot.views import Form, FormField, Notice
from fake_slack import FakeSlack, Posted, button, command, message, sign, user
from fake_slack import event as slack_event
from harness import eventually
from slack_chat import OWNER, SHARED, SlackChat, buttons, refusals, shown
from storage import inbox
from storage.models import OutboxRow, OutboxState


async def test_watched_channel_mention_to_card_claim_and_thread_reply(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()

    await slack.customer_card("My order <!channel> arrived broken", ts="100.1")

    text, blocks = slack.card(1)
    assert "Giulia" in shown(blocks) and "slack" in shown(blocks)
    assert "My order &lt;!channel&gt; arrived broken" in shown(blocks)
    assert buttons(blocks) == ["inloop:claim"]
    assert "#1 from Giulia" in text  # the notification fallback
    assert "<https://acme.slack.com/archives/CSHARED/p1001>" in shown(blocks)  # the link

    told = await slack.press("UANN", "claim", "1")
    assert "#1" in told
    _, blocks = slack.card(1)
    assert "Ann" in shown(blocks)
    assert buttons(blocks) == [
        "inloop:replied",
        "inloop:release",
        "inloop:resolve",
        "inloop_form_open:ask",
    ]
    assert len(fake.in_channel(OWNER)) == 1  # updated in place, not posted again
    assert fake.count("chat.update") == 1

    told = await slack.press("UBOB", "claim", "1")
    assert told == "#1 is already claimed by Ann."
    # What became of a claim is in Bob's DM with the app, with its key (findable after
    # a crash), not an ephemeral in the channel.
    answer = fake.posted[-1]
    assert answer.channel == "UBOB" and answer.text == told
    assert (answer.metadata or {}).get("event_payload", {}).get("key")
    assert not [e for e in fake.ephemeral if e.user == "UBOB"]

    # Ann answers in the customer's thread: the card says replied without a command.
    await slack.write(
        "UANN", "Sorry! A new one is on its way", SHARED, ts="100.2", thread_ts="100.1"
    )
    await slack.until(lambda: buttons(slack.card(1)[1])[0] == "inloop:resolve")


async def test_a_channel_message_is_stored_before_slack_is_told_it_arrived(
    slack: SlackChat,
) -> None:
    """Slack delivers an acknowledged event never again: a watched channel's message is
    acknowledged only once it is stored, conversation and card, in its group's one
    transaction; so it needs no inbox row (a transaction to write and one to delete, per
    message), and neither does a message that is nobody writing (the bot's own card)."""
    fake = slack.fake
    await slack.setup_team()
    inbox_writes: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "inbox" in statement.split("(")[0].lower():
            inbox_writes.append(statement)

    engine = slack.app.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        body = message("UCUST", SHARED, "the parcel never came", "300.1")
        await fake.acked(await fake.push("events_api", slack_event(body, "EvStoredFirst")))
        async with slack.app.db.read() as session:
            cards = (
                await session.scalars(
                    select(OutboxRow).where(col(OutboxRow.target) == f"slack:{OWNER}")
                )
            ).all()
        assert len(cards) == 1  # committed before the ack, whether posted yet or not
        mine = message("UBOT", OWNER, "#1 from Giulia", "300.2", bot_id="BBOT")
        await fake.acked(await fake.push("events_api", slack_event(mine, "EvOwnCard")))
        await slack.app.settle()
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert inbox_writes == []
    assert len(fake.in_channel(OWNER)) == 1


async def test_a_customers_photo_alone_becomes_a_card(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    photo = {"id": "F1", "name": "<!channel> box.jpg", "mimetype": "image/jpeg"}
    await slack.send_event(
        message("UCUST", SHARED, "", "120.1", subtype="file_share", files=[photo])
    )
    await slack.until(lambda: len(fake.in_channel(OWNER)) == 1)
    # the file's name is the customer's text too: shown as written, pinging nobody
    assert "📎 &lt;!channel&gt; box.jpg (file)" in shown(slack.card(1)[1])


async def test_a_public_team_channel_the_bot_was_not_invited_to_is_joined(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    fake.outside.add(OWNER)  # someone typed /inloop team add there without /invite
    await slack.setup_team()
    await slack.customer_card("Hello?", ts="130.1")
    assert fake.count("conversations.join") == 1 and OWNER not in fake.outside


async def test_a_private_team_channel_without_the_bot_is_reported_to_the_admins(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    fake.outside.add("GSUPPORT")  # private: the bot cannot join it by itself
    await slack.setup_team(owner="GSUPPORT")
    await slack.write("UCUST", "Hello?", SHARED, ts="131.1")
    await slack.until(lambda: bool(refusals(fake)))
    (told,) = refusals(fake)
    assert "the channel of team support" in told and "invite me back" in told

    # invited now: the next change of #1 brings its card, whole
    fake.outside.discard("GSUPPORT")
    await slack.say("UANN", "claim 1", where="GSUPPORT")
    (card,) = fake.in_channel("GSUPPORT")
    assert "#1" in shown(card.blocks) and "Ann" in shown(card.blocks)
    await slack.say("UANN", "replied 1", where="GSUPPORT")
    assert len(fake.in_channel("GSUPPORT")) == 1  # and then it is updated in place


async def test_a_card_posted_late_by_an_update_is_not_posted_twice(slack: SlackChat) -> None:
    fake = slack.fake
    fake.outside.add("GSUPPORT")
    await slack.setup_team(owner="GSUPPORT")
    await slack.write("UCUST", "Hello?", SHARED, ts="133.1")
    await slack.until(lambda: bool(refusals(fake)))
    fake.outside.discard("GSUPPORT")
    # the update that brings the card is kept by Slack, which answers 500 all the same
    fake.fail("chat.postMessage", "internal_error", status=500, after_effect=True)
    await slack.say("UANN", "claim 1", where="GSUPPORT")
    await slack.until(lambda: fake.count("conversations.history") == 1)
    await slack.app.settle()
    assert len(fake.in_channel("GSUPPORT")) == 1


async def test_a_card_someone_deleted_is_not_reported_as_a_channel_refusing_the_bot(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.customer_card("Hello?", ts="132.1")
    fake.fail("chat.update", "message_not_found")  # someone deleted the card
    await slack.say("UANN", "claim 1")
    assert refusals(fake) == []


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


async def test_every_slash_command_answers_privately(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.customer_card("Where is my parcel?", ts="300.1")
    commands = [
        "help",
        "queue",
        "show 1",
        "claim 1",
        "replied 1",
        "release 1",
        "resolve 1",
        "reopen 1",
        "reassign 1 <@UBOB|bob>",
        "teams",
        "team tags support parcel",
        "route test my parcel is late",
        "feed list",
        "feed add http://127.0.0.1:1/feed.xml support",  # refused at once: nothing listens
        "feed remove 1",
        "lang en",
        "role <@UANN|ann> manager",
        "team unwatch",
    ]
    #: what someone did to a conversation: the answer is kept in their DM with the app
    kept = ("claim", "replied", "release", "resolve", "reopen", "reassign")
    for text in commands:
        where = SHARED if text == "team unwatch" else OWNER
        ephemeral_before, dms_before = len(fake.ephemeral), len(fake.in_channel("UADMIN"))
        told = await slack.say("UADMIN", text, where=where)
        assert told, text
        assert "went wrong" not in told, (text, told)
        if text.split()[0] in kept:
            assert len(fake.in_channel("UADMIN")) > dms_before, text
            assert len(fake.ephemeral) == ephemeral_before, text
        else:
            assert len(fake.ephemeral) > ephemeral_before, text  # ephemeral, in that channel
            assert fake.ephemeral[-1].channel == where
    # `home` publishes the person's Home tab instead of answering in the channel
    await slack.say("UADMIN", "home")
    assert "Claimed by you" in shown(fake.homes["UADMIN"]["blocks"])
    # the person mention became Inloop's id for Bob: he owns #1 now
    assert "Bob" in shown(slack.card(1)[1])
    told = await slack.say("UANN", "queue")
    assert "not allowed" not in told  # Ann is a manager now


async def test_errors_are_ephemeral_and_say_why(slack: SlackChat) -> None:
    told = await slack.say("UANN", "claim 99")
    assert "#99" in told
    told = await slack.say("UANN", "frobnicate")
    assert "frobnicate" in told and "/inloop" in told
    told = await slack.say("UANN", "claim")
    assert "/inloop claim" in told  # the usage line, with Slack's prefix
    assert all(e.user == "UANN" for e in slack.fake.ephemeral[-3:])


async def test_a_channel_the_bot_is_not_in_gets_the_answer_by_dm(slack: SlackChat) -> None:
    slack.fake.fail("chat.postEphemeral", "not_in_channel")
    told = await slack.say("UANN", "claim 99", where="CELSEWHERE")
    assert "#99" in told
    assert slack.fake.posted[-1].channel == "UANN"  # the app's DM with Ann


async def test_guests_and_other_workspaces_are_not_staff(slack: SlackChat) -> None:
    await slack.setup_team()
    await slack.write("UCUST", "hello", SHARED, ts="400.1")
    await slack.until(lambda: len(slack.fake.in_channel(OWNER)) == 1)

    for outsider in ("UCUST", "UEXT"):
        told = await slack.say(outsider, "claim 1")
        assert "claim" in told
        assert "Owner" in shown(slack.card(1)[1])
        assert buttons(slack.card(1)[1]) == ["inloop:claim"], outsider  # still unclaimed
    # Giulia's Slack locale is Italian: Inloop answers her in Italian
    assert "non" in (await slack.say("UCUST", "claim 1")).lower()
    # a person from another workspace writing in the shared channel is a customer
    await slack.write("UEXT", "also me", SHARED, ts="400.2")
    await slack.until(lambda: len(slack.fake.in_channel(OWNER)) == 2)


async def test_a_new_customer_lookup_waiting_out_a_429_holds_up_nobody_else(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.say("UANN", "teams")  # Ann is known: her commands need no lookup
    # A customer's first message: Inloop asks Slack who they are, and Slack says "wait 2 s".
    fake.fail("users.info", "ratelimited", status=429, retry_after=2)
    customer = asyncio.create_task(slack.write("UCUST", "hello?", SHARED, ts="600.1"))
    await eventually(lambda: fake.count("users.info") >= 1)

    began = time.monotonic()
    told = await slack.say("UANN", "queue")

    # The wait happens before any transaction opens, so Ann is answered at once.
    assert time.monotonic() - began < 1.0, "a colleague waited on the customer's lookup"
    assert "Nothing waiting" in told  # the customer is not in yet
    await customer
    await slack.until(lambda: len(fake.in_channel(OWNER)) == 1)
    assert "Giulia" in shown(slack.card(1)[1])


async def test_home_tab_shows_mine_and_waiting_with_buttons(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.write("UCUST", "first", SHARED, ts="500.1")
    await slack.write("UEXT", "second", SHARED, ts="500.2")
    await slack.until(lambda: len(fake.in_channel(OWNER)) == 2)
    await slack.press("UANN", "claim", "1")

    await slack.send_event(
        {"type": "app_home_opened", "user": "UANN", "channel": "DANN", "tab": "home"}
    )
    await slack.until(lambda: "UANN" in fake.homes)
    home = fake.homes["UANN"]
    assert home["type"] == "home"
    text = shown(home["blocks"])
    assert "Claimed by you (1)" in text and "first" in text
    assert "Waiting for someone to claim them (1)" in text and "second" in text
    assert "inloop:claim" in buttons(home["blocks"])

    # Claim #2 from the Home tab: the tab is published again, now with both
    await slack.press("UANN", "claim", "2", where=None, view={"id": "VH", "type": "home"})
    await slack.until(lambda: "Claimed by you (2)" in shown(fake.homes["UANN"]["blocks"]))


async def test_commit_time_from_the_home_tab_through_a_form(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.send_event(
        {"type": "app_home_opened", "user": "UANN", "channel": "DANN", "tab": "home"}
    )
    await slack.until(lambda: "UANN" in fake.homes)
    assert buttons(fake.homes["UANN"]["blocks"])[0] == "inloop_form_open:commit"

    modal = await slack.open_form("UANN", None, "commit", "", view={"id": "VH", "type": "home"})
    assert [b["block_id"] for b in modal["blocks"]] == ["days", "start", "duration", "tz"]
    typed = {"days": "mon, wed", "start": "09:00", "duration": "30m", "tz": None}
    published = fake.count("views.publish")
    assert await slack.fill_form("UANN", modal, typed) == {}  # the time zone may stay empty
    # the Home tab is published again, as after any of its buttons
    await slack.until(lambda: fake.count("views.publish") > published)
    # her own time zone (Slack's, Europe/Rome) since she left it empty
    assert any(
        t.startswith("Commitment 1: Mon, Wed at 09:00 for 30m (Europe/Rome).")
        for t in fake.told("UANN")
    )


async def test_a_retried_event_is_handled_once(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    body = message("UCUST", SHARED, "are you there?", "600.1")
    await slack.send_event(body, event_id="EvSAME")
    # Slack did not see the ack in time and sends the same event again, twice
    await slack.send_event(body, event_id="EvSAME")
    await slack.send_event(body, event_id="EvSAME")
    assert len(fake.in_channel(OWNER)) == 1


async def test_a_lost_socket_mode_connection_reconnects(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    opened = fake.count("apps.connections.open")
    await fake.drop_connections()
    await eventually(lambda: fake.connections == 2)
    assert fake.count("apps.connections.open") == opened + 1
    await slack.customer_card("still there?", ts="700.1")


async def test_show_full_text_opens_a_modal_with_all_of_it(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    long_text = "parcel " * 700 + "THE END"
    await slack.customer_card(long_text, ts="800.1")
    _, blocks = slack.card(1)
    assert "THE END" not in shown(blocks)
    assert "inloop_show_full" in buttons(blocks)

    before = slack.handled
    envelope = await fake.push(
        "interactive", button("UANN", OWNER, "inloop_show_full", "1", "trig-full")
    )
    await fake.acked(envelope)
    await eventually(lambda: slack.handled > before)
    await slack.app.settle()
    assert fake.count("views.open") == 1 and fake.count("views.update") == 1
    (modal,) = fake.views.values()
    assert modal["type"] == "modal"
    assert "THE END" in shown(modal["blocks"])
    assert all(len(b["text"]["text"]) <= 3000 for b in modal["blocks"])


async def test_a_429_storm_during_a_burst_of_200_mentions(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    # the 100th and 200th posts start a storm of 429s (Retry-After: 0), longer than the
    # client's own retry: the outbox has to retry too
    fake.storm = (100, 2, 0)
    for n in range(200):
        await fake.push(
            "events_api",
            {
                "type": "event_callback",
                "team_id": "T1",
                "event_id": f"EvBurst{n}",
                "event": message("UCUST", SHARED, f"burst {n}", f"900.{n:03d}"),
            },
        )
    await eventually(lambda: len(fake.in_channel(OWNER)) == 200, within=60)
    await slack.app.settle()
    cards = fake.in_channel(OWNER)
    numbers = [int(shown(c.blocks).split(" ")[0].lstrip("#")) for c in cards]
    assert numbers == list(range(1, 201))  # all of them, in order, none twice
    texts = [shown(c.blocks) for c in cards]
    assert all(f"burst {n - 1}" in t for n, t in zip(numbers, texts, strict=True))
    assert sum(1 for m, _ in fake.calls if m == "chat.postMessage") > 200  # there were 429s


async def test_a_card_slack_kept_despite_a_500_is_not_posted_twice(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    # Slack keeps the card but answers 500: Inloop cannot know it got through
    fake.fail("chat.postMessage", "internal_error", status=500, after_effect=True)
    await slack.write("UCUST", "Where is my parcel?", SHARED, ts="300.1")
    assert len(fake.in_channel(OWNER)) == 1

    # after the outbox's first backoff (1 s) it looks for the card's key, finds it
    await slack.until(lambda: fake.count("conversations.history") == 1)
    await slack.app.settle()
    assert len(fake.in_channel(OWNER)) == 1, "the card was posted twice"
    # and it knows where the card is: a claim updates it in place
    await slack.press("UANN", "claim", "1")
    assert len(fake.in_channel(OWNER)) == 1
    assert "Ann" in shown(slack.card(1)[1])


async def test_a_card_is_not_lost_when_slack_refuses_the_look_up(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    fake.scopes = fake.scopes - {"channels:history"}  # an app made from an older manifest
    fake.fail("chat.postMessage", "internal_error", status=500, after_effect=True)
    await slack.write("UCUST", "Where is my parcel?", SHARED, ts="302.1")

    # it cannot look, so it posts again: twice is the lesser harm than never
    await slack.until(lambda: len(fake.in_channel(OWNER)) == 2)
    await slack.press("UANN", "claim", "1")
    assert "Ann" in shown(fake.in_channel(OWNER)[-1].blocks)


async def test_a_card_whose_look_up_keeps_failing_is_sent_before_it_is_given_up(
    database_url: str, fake: FakeSlack
) -> None:
    slack = await SlackChat(database_url, fake, OUTBOX_MAX_ATTEMPTS="3").start()
    try:
        await slack.setup_team()
        fake.fail("chat.postMessage", "internal_error", status=500)  # nothing was kept
        fake.fail("conversations.history", "internal_error", status=500, times=10)
        await slack.write("UCUST", "Where is my parcel?", SHARED, ts="303.1")
        # the look-up fails, but the row's last try sends it rather than lose it
        await slack.until(lambda: len(fake.in_channel(OWNER)) == 1)
        assert fake.count("conversations.history") == 1
    finally:
        await slack.stop()


async def test_a_row_taken_by_another_instance_while_being_looked_up_is_left_to_it(
    slack: SlackChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, db = slack.fake, slack.app.db
    await slack.setup_team()
    look_up = slack.platform.find_sent

    async def slow_look_up(*args: Any, **kwargs: Any) -> str | None:
        found = await look_up(*args, **kwargs)
        # meanwhile our lease lapsed and another instance leased the row
        async with db.transaction() as session:
            await session.execute(
                update(OutboxRow)
                .where(col(OutboxRow.state) == OutboxState.PENDING)
                .values(leased_until=utc_now() + LEASE)
            )
        return found

    monkeypatch.setattr(slack.platform, "find_sent", slow_look_up)
    fake.fail("chat.postMessage", "internal_error", status=500)  # not kept, but unsure
    await slack.write("UCUST", "Where is my parcel?", SHARED, ts="304.1")
    await slack.until(lambda: fake.count("conversations.history") == 1)
    await slack.app.settle()

    assert fake.in_channel(OWNER) == []  # the other instance posts it, not this one
    async with db.read() as session:
        (row,) = (
            await session.scalars(
                select(OutboxRow).where(col(OutboxRow.target) == f"slack:{OWNER}")
            )
        ).all()
    assert (row.state, row.attempts) == (OutboxState.PENDING, 1)


async def test_a_card_posted_just_before_a_crash_is_not_posted_again(
    slack: SlackChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, outbox = slack.fake, slack.app.outbox
    await slack.setup_team()
    book = outbox._sent

    async def die(delivered: object) -> None:
        raise RuntimeError("the process died between posting and booking it")

    monkeypatch.setattr(outbox, "_sent", die)
    await slack.customer_card("Where is my parcel?", ts="301.1")
    monkeypatch.setattr(outbox, "_sent", book)

    # The dead worker's lease lapses a minute later (LEASE); then the row goes again.
    monkeypatch.setattr(outbox, "_clock", lambda: utc_now() + LEASE + timedelta(seconds=1))
    await slack.app.settle()
    assert fake.count("conversations.history") == 1
    assert len(fake.in_channel(OWNER)) == 1, "the card was posted twice"
    await slack.press("UANN", "claim", "1")
    assert len(fake.in_channel(OWNER)) == 1
    assert "Ann" in shown(slack.card(1)[1])


# -- HTTP mode --------------------------------------------------------------------------

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
async def http_app(database_url: str, fake: FakeSlack) -> AsyncIterator[App]:
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "INLOOP_ADMINS": "slack:UADMIN",
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_HTTP_PORT": "0",
            "SLACK_API_URL": fake.api_url,
        }
    )
    fake.users["UADMIN"] = user("UADMIN", "Ada")
    app = App(settings, build_platforms(settings))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def _post_command(
    app: App, text: str, *, age: float = 0, secret: str = SECRET, where: str = OWNER
) -> int:
    body = urlencode(command("UADMIN", where, text, f"trig-{text}")).encode()
    return await _post_signed(app, body, "application/x-www-form-urlencoded", age, secret)


async def _post_signed(
    app: App, body: bytes, content_type: str, age: float = 0, secret: str = SECRET
) -> int:
    platform = app.platforms["slack"]
    assert isinstance(platform, SlackPlatform)
    stamp = int(time.time() - age)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": sign(secret, body, stamp),
    }
    url = f"http://127.0.0.1:{platform.http_port}/slack/events"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status


async def test_http_mode_takes_signed_requests_only(http_app: App, fake: FakeSlack) -> None:
    assert fake.count("apps.connections.open") == 0  # no Socket Mode without an app token

    assert await _post_command(http_app, "help") == 200
    await eventually(lambda: bool(fake.told("UADMIN")))
    await http_app.settle()
    assert "/inloop" in fake.told("UADMIN")[-1]

    told = len(fake.told("UADMIN"))
    assert await _post_command(http_app, "queue", secret="not-the-signing-secret") == 401
    # Slack refuses requests older than five minutes (replays): so does Inloop
    assert await _post_command(http_app, "queue", age=6 * 60) == 401
    await asyncio.sleep(0.1)
    await http_app.settle()
    assert len(fake.told("UADMIN")) == told


async def test_http_mode_stores_a_channel_message_before_answering_slack(
    http_app: App, fake: FakeSlack
) -> None:
    """HTTP mode has no Socket Mode shortcut: Bolt's middleware stores the message with
    its group before Slack gets its 200, as Socket Mode does before its ack."""
    fake.users["UCUST"] = user("UCUST", "Giulia", guest=True)
    for text, where in [("team add support", OWNER), ("team watch", SHARED)]:
        told = len(fake.told("UADMIN"))
        assert await _post_command(http_app, text, where=where) == 200
        # this command's own answer (the first one's would satisfy a look for "support")
        await eventually(lambda told=told: len(fake.told("UADMIN")) > told)  # type: ignore[misc]
        await http_app.settle()

    body = slack_event(message("UCUST", SHARED, "where is my parcel?", "400.1"), "EvHttp")
    assert await _post_signed(http_app, json.dumps(body).encode(), "application/json") == 200
    async with http_app.db.read() as session:
        cards = (
            await session.scalars(
                select(OutboxRow).where(col(OutboxRow.target) == f"slack:{OWNER}")
            )
        ).all()
        left = await inbox.waiting(session)

    assert len(cards) == 1  # stored (with its card) when Slack was answered
    assert left == 0  # and no inbox row was needed
    await http_app.settle()
    assert len(fake.in_channel(OWNER)) == 1


# -- starting up ------------------------------------------------------------------------


async def test_a_rejected_token_stops_the_start(fake: FakeSlack) -> None:
    platform = SlackPlatform(
        bot_token="xoxb-revoked", app_token=fake.app_token, api_url=fake.api_url
    )

    with pytest.raises(StartError) as raised:
        await platform.start(SlackChat.null_sink())

    assert "SLACK_BOT_TOKEN" in str(raised.value) and "invalid_auth" in str(raised.value)
    assert fake.count("apps.connections.open") == 0  # no retry loop, no connection


async def test_inloop_run_with_a_bad_token_says_so_in_one_line(
    tmp_path: Path, fake: FakeSlack
) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INLOOP_", "DATABASE_"))
    }
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}",
        SLACK_BOT_TOKEN="xoxb-revoked",
        SLACK_APP_TOKEN="xapp-test",
        SLACK_API_URL=fake.api_url,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 2
    errors = [line for line in stderr.decode().splitlines() if "ERROR" in line or "inloop:" in line]
    assert errors == [
        "inloop: Slack rejected SLACK_BOT_TOKEN (invalid_auth): copy the Bot User OAuth Token again"
    ]
    assert "Traceback" not in stderr.decode()


async def test_a_form_submission_is_validated_inline_then_runs_its_command(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    slack.platform.forms["claim"] = Form(
        form_id="claim",
        title="Claim",
        submit="Claim",
        fields=(FormField("number", "Conversation number"),),
        command="claim {number}",
    )

    modal = {
        "callback_id": "inloop_form:claim",
        "private_metadata": tr.form_metadata(OWNER, ""),
    }
    ack = await slack.fill_form("UANN", modal, {"number": None})
    assert ack == {"response_action": "errors", "errors": {"number": "Please fill this in."}}

    assert await slack.fill_form("UANN", modal, {"number": "42"}) == {}  # the modal closes
    assert "#42" in fake.told("UANN")[-1]  # the command ran: there is no #42


async def test_messages_of_a_channel_reach_the_core_in_arrival_order() -> None:
    line = Turnstile(patience=0.2)
    for n in range(5):
        line.take(f"e{n}", "C1")
    line.take("lost", "C1")  # Bolt dropped this one: the line must not stop for good
    line.take("last", "C1")
    order: list[str] = []

    async def handle(event_id: str, delay: float) -> None:
        await asyncio.sleep(delay)  # they reach the turnstile in a scrambled order
        async with line.turn(event_id):
            await asyncio.sleep(0.01)
            order.append(event_id)

    delays = {"e0": 0.03, "e1": 0.0, "e2": 0.02, "e3": 0.01, "e4": 0.0, "last": 0.0}
    await asyncio.gather(*(handle(e, d) for e, d in delays.items()))

    assert order == ["e0", "e1", "e2", "e3", "e4", "last"]


async def test_when_the_modal_cannot_open_the_full_text_comes_as_a_reply(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.customer_card("word " * 200 + "THE END", ts="810.1")
    fake.fail("views.open", "expired_trigger_id")

    before = slack.handled
    envelope = await fake.push(
        "interactive", button("UANN", OWNER, "inloop_show_full", "1", "trig-late")
    )
    await fake.acked(envelope)
    await eventually(lambda: slack.handled > before)
    await slack.app.settle()

    assert fake.views == {}
    assert "THE END" in fake.told("UANN")[-1]


async def test_http_mode_answers_slacks_url_verification(http_app: App) -> None:
    platform = http_app.platforms["slack"]
    assert isinstance(platform, SlackPlatform)
    body = b'{"type": "url_verification", "token": "x", "challenge": "c-123"}'
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": sign(SECRET, body, stamp),
    }
    url = f"http://127.0.0.1:{platform.http_port}/slack/events"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        assert r.status == 200
        assert (await r.json())["challenge"] == "c-123"  # Slack accepts the request URL


def test_slack_is_paced_to_one_message_a_second_per_channel() -> None:
    settings = load_settings(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "INLOOP_ADMINS": "slack:U1"}
    )
    platforms = build_platforms(settings)
    assert list(platforms) == ["slack"]  # Slack is set: the console does not start
    assert platforms["slack"].pace_seconds == 1.0
    assert platforms["slack"].command_prefix == "/inloop"


async def test_a_dm_to_the_app_works_like_the_slash_command(slack: SlackChat) -> None:
    await slack.send_event(message("UANN", "DANN", "claim 99", "950.1", channel_type="im"))
    assert "#99" in slack.fake.told("UANN")[-1]


async def test_slacks_refusals_become_the_outboxs_delivery_errors(fake: FakeSlack) -> None:
    platform = SlackPlatform(
        bot_token=fake.bot_token,
        app_token=fake.app_token,
        api_url=fake.api_url,
        rate_limit_retries=0,  # the client gives up at once: the outbox takes over
    )
    await platform.start(SlackChat.null_sink())
    try:
        fake.fail("chat.postMessage", "ratelimited", status=429, retry_after=7)
        with pytest.raises(DeliveryError) as limited:
            await platform.send(ChannelId("slack:C1"), Notice("hi"), "k1")
        assert limited.value.retry_after == 7 and not limited.value.permanent

        fake.outside.add("GPRIVATE")  # a private channel can't be joined: it needs /invite
        with pytest.raises(DeliveryError) as outside:
            await platform.send(ChannelId("slack:GPRIVATE"), Notice("hi"), "k1")
        assert outside.value.permanent
        assert outside.value.reason == (
            "not_in_channel, and joining failed: method_not_supported_for_channel_type"
        )

        fake.fail("chat.postMessage", "channel_not_found")
        with pytest.raises(DeliveryError) as gone:
            await platform.send(ChannelId("slack:C1"), Notice("hi"), "k2")
        assert gone.value.permanent  # retrying cannot help

        fake.fail("chat.postMessage", "internal_error", status=500)
        with pytest.raises(DeliveryError) as hiccup:
            await platform.send(ChannelId("slack:C1"), Notice("hi"), "k3")
        assert not hiccup.value.permanent

        # Slack in trouble: the message was kept, but the answer is an error or never comes
        written = utc_now()
        for status in (500, 200):  # Slack says internal_error with either
            fake.fail("chat.postMessage", "internal_error", status=status, after_effect=True)
            with pytest.raises(DeliveryError) as unsure:
                await platform.send(ChannelId("slack:C1"), Notice("hi"), f"k4-{status}")
            assert unsure.value.uncertain and not unsure.value.permanent
        # before resending, the outbox asks: the message is found by its key
        kept = fake.in_channel("C1")[-1]
        assert await platform.find_sent("slack:C1", "k4-200", since=written) == kept.ts
        assert await platform.find_sent("slack:C1", "k5", since=written) is None
        in_thread = await platform.find_sent("slack:C1", "k4-200", since=written, thread=kept.ts)
        assert in_thread == kept.ts
        # however much the channel said since, in pages
        fake.posted += [
            Posted("C1", f"{float(kept.ts) + n + 1:.6f}", "chat", []) for n in range(450)
        ]
        assert await platform.find_sent("slack:C1", "k4-200", since=written) == kept.ts
        assert fake.count("conversations.history") == 2 + 3
    finally:
        await platform.stop()


async def test_the_digest_chart_is_uploaded_and_advice_goes_in_the_card_thread(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.customer_card("Where is my parcel?", ts="310.1")
    await slack.say("UADMIN", "claim 1")
    await slack.say("UADMIN", "role <@UANN|ann> consultant")
    await slack.say("UADMIN", "ask 1 What do I tell them? slack:UANN")
    await slack.say("UANN", "answer 1-A1 Give them the tracking link.")
    card_ts = fake.in_channel(OWNER)[0].ts
    thread = [p for p in fake.in_channel(OWNER) if p.thread_ts == card_ts]
    assert [p.text for p in thread] == [
        "Advice for the owner, not a reply to the customer. "
        "1-A1 from Ann: Give them the tracking link."
    ]
    # the customers' channel never sees the consultant's words
    assert all("tracking link" not in p.text for p in fake.in_channel(SHARED))

    await slack.say("UADMIN", "digest this")
    await slack.until(lambda: len(fake.shared) == 1)

    channel_id, file_id, title = fake.shared[0]
    assert channel_id == "DUADMIN"
    png, filename = fake.files[file_id]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and filename.endswith(".png")
    assert title.startswith("Inloop ")


async def test_ask_an_expert_opens_a_form_whose_question_asks_the_consultant(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.customer_card("Where is my parcel?", ts="311.1")
    await slack.say("UADMIN", "role <@UBOB|bob> consultant")
    await slack.say("UADMIN", "consultants here", where="CPOOL")
    await slack.press("UANN", "claim", "1")

    modal = await slack.open_form("UANN", OWNER, "ask", "1")
    assert modal["callback_id"] == "inloop_form:ask" and modal["title"]["text"] == "Ask an expert"
    typed = {"question": "What do I tell them?\nThey are upset."}
    assert await slack.fill_form("UANN", modal, typed) == {}  # the modal closes
    assert any("1-A1" in t for t in fake.told("UANN"))  # asked, with its number
    # the consultants' pool has the question, line breaks and all
    pool = [shown(p.blocks) for p in fake.in_channel("CPOOL")]
    assert any("What do I tell them?\nThey are upset." in text for text in pool)


async def test_the_consultant_answers_through_a_form_and_the_owner_reads_it_in_the_thread(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.customer_card("Where is my parcel?", ts="312.1")
    await slack.say("UADMIN", "claim 1")
    await slack.say("UADMIN", "role <@UBOB|bob> consultant")
    await slack.say("UADMIN", "ask 1 What do I tell them? slack:UBOB")

    (request,) = [p for p in fake.in_channel("UBOB") if "1-A1" in p.text]  # Bob's DM
    # (no "Show full text": it shows conversations, and 1-A1 is a request)
    assert buttons(request.blocks) == ["inloop_form_open:answer"]
    modal = await slack.open_form("UBOB", "DUBOB", "answer", "1-A1")
    assert await slack.fill_form("UBOB", modal, {"advice": "Give them the tracking link."}) == {}
    card_ts = fake.in_channel(OWNER)[0].ts
    thread = [p.text for p in fake.in_channel(OWNER) if p.thread_ts == card_ts]
    assert any("1-A1 from Bob: Give them the tracking link." in t for t in thread)


async def test_a_lost_connection_is_retried_unless_the_retry_could_post_twice() -> None:
    retry = ConnectionRetry()

    def call(method: str) -> HttpRequest:
        return HttpRequest(method="POST", url=f"https://slack.com/api/{method}", headers={})

    async def retried(method: str, error: Exception) -> bool:
        return await retry.can_retry_async(
            state=RetryState(), request=call(method), response=None, error=error
        )

    cut = aiohttp.ServerDisconnectedError()  # Slack may have taken the post already
    never = aiohttp.ClientConnectorError(None, OSError(111, "refused"))  # type: ignore[arg-type]
    assert await retried("users.info", cut)  # reading twice is harmless
    assert not await retried("chat.postMessage", cut)
    assert await retried("chat.postMessage", never)  # it never reached Slack
