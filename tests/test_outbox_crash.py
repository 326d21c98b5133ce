"""An instance killed (SIGKILL) between handing a message to Slack and booking it sent.

A card or a DM carries its outbox key, so the instance that takes the row over looks for
it in the channel before sending it again: what became of a claim (in the person's DM
with the app) is shown once. An ephemeral answer (what `/inloop queue` shows the person
who typed it) cannot be looked up: Slack keeps no copy. So each answer is booked right
after its own send (not with the lane's later sends), leaving one commit in which a kill
makes it go twice; one whose instance died before sending it, or while Slack was still
taking it, is sent by the next.

A ✋ on a card whose post was not booked when its instance died waits (its inbox row is
kept) until the next instance has looked the card up by its key.

The instance that dies is a process of its own (tests/doomed.py); the one that takes over
is another instance on PostgreSQL, or the next process on SQLite.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from bot.views import Notice, view_to_dict
from doomed import Crash, crash
from fake_slack import FakeSlack, event, message
from harness import eventually
from outbox_rows import all_sent
from slack_chat import OWNER, SHARED
from storage.database import Database
from storage.models import OutboxKind, OutboxRow


async def waiting_answers(
    url: str, uid: str, texts: list[str], *, leased_by: str | None = None, kept: bool = False
) -> None:
    """Ephemeral answers to `uid` in the owner channel waiting in the outbox (or answers
    for their DM with the app, if `kept`); leased in the name of `leased_by` (an instance
    that is gone), or by nobody."""
    db = Database(url)
    now = datetime.now(UTC)
    try:
        async with db.transaction() as session:
            for n, said in enumerate(texts):
                session.add(
                    OutboxRow(
                        key=f"answer-{n}-{uid}",
                        platform="slack",
                        kind=OutboxKind.PRIVATE,
                        target=f"slack:{uid}",
                        context=None if kept else f"slack:{OWNER}",
                        payload=json.dumps(view_to_dict(Notice(said))),
                        next_attempt_at=now,
                        created_at=now,
                        leased_until=now + timedelta(seconds=60) if leased_by else None,
                        leased_by=leased_by,
                    )
                )
    finally:
        await db.dispose()


async def killed_while_slack_takes_the_second(it: Crash, method: str) -> None:
    """Two answers wait: the doomed instance sends the first (answered after 3 s: time
    enough, on a loaded machine, to make the next one slow), then is killed while Slack
    takes the second (shown at once, its answer never reaching the instance)."""
    first = it.fake.answer_slowly(method, 3.0)
    await it.doomed.start()
    await asyncio.wait_for(first.wait(), 20)
    second = it.fake.answer_slowly(method, 120)
    await asyncio.wait_for(second.wait(), 20)
    await it.doomed.kill()


async def taken_over(it: Crash) -> None:
    """Another instance takes over and sends what is due; then time for a copy."""
    await it.take_over()
    await all_sent(it.url, within=20)
    await it.settled()


async def test_a_private_answer_is_booked_as_soon_as_it_is_sent_not_after_the_next(
    database_url: str, fake: FakeSlack
) -> None:
    """Two answers wait for Ada; the instance sends the first, then dies while Slack takes
    the second: the first was booked right after its send, and is not shown again."""
    async with crash(database_url, fake) as it:
        await waiting_answers(database_url, "UADMIN", ["the first answer", "the second answer"])
        await killed_while_slack_takes_the_second(it, "chat.postEphemeral")
        await taken_over(it)

        told = fake.told("UADMIN")
        assert told.count("the first answer") == 1, told
        # The second may have been shown: an ephemeral cannot be looked up, so it is sent
        # again rather than lost (its window is one commit long).
        assert "the second answer" in told


async def test_a_claims_answer_shown_by_an_instance_killed_before_booking_it_is_not_shown_again(
    database_url: str, fake: FakeSlack
) -> None:
    """What became of a claim goes to the person's DM with its key: the instance taking
    it over finds it there, so it is shown once, however the first instance died."""

    def claims_told() -> list[str]:
        return [said for said in fake.told("UADMIN") if "yours now" in said]

    async with crash(database_url, fake) as it:
        await waiting_answers(
            database_url, "UADMIN", ["#1 is yours now", "#2 is yours now"], kept=True
        )
        await killed_while_slack_takes_the_second(it, "chat.postMessage")
        assert claims_told() == ["#1 is yours now", "#2 is yours now"]
        await taken_over(it)

        assert claims_told() == ["#1 is yours now", "#2 is yours now"]


async def test_an_ephemeral_answer_whose_instance_died_before_sending_it_is_sent(
    database_url: str, fake: FakeSlack
) -> None:
    async with crash(database_url, fake) as it:
        # What a killed instance leaves: the answer leased in its name, not booked.
        await waiting_answers(
            database_url, "UADMIN", ["the answer left behind"], leased_by="elsewhere:4242:dead00"
        )
        await it.take_over()
        await eventually(lambda: "the answer left behind" in fake.told("UADMIN"), within=15)
        await it.settled()  # time for a second copy

        assert fake.told("UADMIN").count("the answer left behind") == 1


async def test_a_raised_hand_on_a_card_whose_poster_was_killed_before_booking_it_claims_it(
    database_url: str, fake: FakeSlack
) -> None:
    """The ✋ names a message nobody has booked yet: it waits for the card's look-up."""
    async with crash(database_url, fake) as it:
        await it.doomed.start()
        # The card reaches the channel; the instance dies before it hears where it went.
        posted = fake.answer_slowly("chat.postMessage", 120)
        body = message("UCUST", SHARED, "the box arrived crushed", "1700000000.000001")
        await fake.acked(await fake.push("events_api", event(body, "EvCard1")))
        await asyncio.wait_for(posted.wait(), 20)
        await it.doomed.kill()
        [card] = fake.in_channel(OWNER)

        # The instance that takes the card's row over looks for it slowly (a busy channel).
        looked = fake.answer_slowly("conversations.history", 3)
        await it.take_over()
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
        await it.settled()  # time for a second answer

        assert len([t for t in fake.told("UADMIN") if "#1 is yours" in t]) == 1
        assert len(fake.in_channel(OWNER)) == 1  # the card once, now Ada's
