"""An instance killed (SIGKILL) between handing a message to Slack and booking it sent.

A card or a DM carries its outbox key, so the instance that takes the row over looks for
it in the channel before sending it again. An ephemeral answer (what `/inloop claim 1`
says to the person who typed it) cannot be looked up: Slack keeps no copy. Such an answer
that may have been shown is not sent again (once at most is better than twice), while
one whose worker died before handing it to Slack is still sent.

The instance that dies is a process of its own (tests/test_failover.py `Doomed`); the
one that takes over is another instance on PostgreSQL, or the next process on SQLite.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import col
from test_failover import Doomed, team

from bot.views import Notice, view_to_dict
from fake_slack import FakeSlack, command, event, message
from harness import eventually
from slack_chat import OWNER, SHARED, SlackChat
from storage.database import Database
from storage.models import OutboxKind, OutboxRow


async def nothing_pending(url: str, within: float) -> None:
    db = Database(url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            async with db.read() as session:
                pending = await session.scalar(
                    select(func.count()).where(col(OutboxRow.state) == "pending")
                )
            if pending == 0:
                return
            assert loop.time() < deadline, f"{pending} outbox rows still pending"
            await asyncio.sleep(0.1)
    finally:
        await db.dispose()


async def test_an_ephemeral_answer_shown_before_its_instance_was_killed_is_not_shown_again(
    database_url: str, fake: FakeSlack
) -> None:
    await team(database_url, fake)
    doomed = await Doomed(database_url, fake).start()
    taker: SlackChat | None = None
    try:
        body = message("UCUST", SHARED, "the box arrived crushed", "1700000000.000001")
        await fake.acked(await fake.push("events_api", event(body, "EvCard1")))
        await eventually(lambda: len(fake.in_channel(OWNER)) == 1, within=20)
        # Ada claims #1: Slack shows her the answer at once, and answers the bot late;
        # the instance is killed before it hears back (before it booked the answer).
        shown = fake.answer_slowly("chat.postEphemeral", 120)
        claim = command("UADMIN", OWNER, "claim 1", "trig-claim")
        await fake.acked(await fake.push("slash_commands", claim))
        await asyncio.wait_for(shown.wait(), 20)
        await doomed.kill()
        assert [t for t in fake.told("UADMIN") if "#1 is yours" in t], fake.told("UADMIN")

        taker = await SlackChat(database_url, fake).start()
        # the answer's row is taken over once the dead instance's liveness ended (6 s)
        await nothing_pending(database_url, within=20)
        await taker.app.settle()
        await asyncio.sleep(0.5)  # time for a second copy

        assert len([t for t in fake.told("UADMIN") if "#1 is yours" in t]) == 1
    finally:
        await doomed.kill()
        if taker is not None:
            await taker.stop()


async def test_an_ephemeral_answer_whose_instance_died_before_sending_it_is_sent(
    database_url: str, fake: FakeSlack
) -> None:
    """The other side of the rule: a lease that lapsed before the send is no "maybe"."""
    await team(database_url, fake)
    db = Database(database_url)
    try:
        # What a killed instance leaves: the answer leased in its name, never handed over.
        now = datetime.now(UTC)
        async with db.transaction() as session:
            session.add(
                OutboxRow(
                    key="answer-never-sent",
                    platform="slack",
                    kind=OutboxKind.PRIVATE,
                    target="slack:UADMIN",
                    context=f"slack:{OWNER}",
                    payload=json.dumps(view_to_dict(Notice("the answer left behind"))),
                    next_attempt_at=now,
                    created_at=now,
                    leased_until=now + timedelta(seconds=60),
                    leased_by="elsewhere:4242:dead00",
                )
            )
    finally:
        await db.dispose()
    taker = await SlackChat(database_url, fake).start()
    try:
        await eventually(lambda: "the answer left behind" in fake.told("UADMIN"), within=15)
        await taker.app.settle()
        await asyncio.sleep(0.5)  # time for a second copy

        assert fake.told("UADMIN").count("the answer left behind") == 1
    finally:
        await taker.stop()


async def test_a_raised_hand_on_a_card_whose_poster_was_killed_before_booking_it_claims_it(
    database_url: str, fake: FakeSlack
) -> None:
    """The ✋ names a message nobody has booked yet: it waits for the card's look-up."""
    await team(database_url, fake)
    doomed = await Doomed(database_url, fake).start()
    taker: SlackChat | None = None
    try:
        # The card reaches the channel; the instance dies before it hears where it went.
        posted = fake.answer_slowly("chat.postMessage", 120)
        body = message("UCUST", SHARED, "the box arrived crushed", "1700000000.000001")
        await fake.acked(await fake.push("events_api", event(body, "EvCard1")))
        await asyncio.wait_for(posted.wait(), 20)
        await doomed.kill()
        [card] = fake.in_channel(OWNER)

        # The instance that takes the card's row over looks for it slowly (a busy channel).
        looked = fake.answer_slowly("conversations.history", 3)
        taker = await SlackChat(database_url, fake).start()
        # Ada's ✋ arrives before anyone knows that message is card #1.
        hand = {
            "type": "reaction_added",
            "user": "UADMIN",
            "reaction": "raised_hand",
            "item": {"type": "message", "channel": OWNER, "ts": card.ts},
            "event_ts": "1700000001.000001",
        }
        await fake.acked(await fake.push("events_api", event(hand, "EvHand1")))
        await asyncio.wait_for(looked.wait(), 20)

        await eventually(lambda: any("#1 is yours" in t for t in fake.told("UADMIN")), within=30)
        await taker.app.settle()
        await asyncio.sleep(0.5)  # time for a second answer

        assert len([t for t in fake.told("UADMIN") if "#1 is yours" in t]) == 1
        assert len(fake.in_channel(OWNER)) == 1  # the card once, now Ada's
    finally:
        await doomed.kill()
        if taker is not None:
            await taker.stop()
