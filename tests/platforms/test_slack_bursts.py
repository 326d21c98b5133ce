"""Bursts on Slack, against a fake Slack that enforces Slack's posting limit (429 and
Retry-After past about one message per second per channel, short bursts allowed)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from bot.events import Event, Message
from fake_slack import FakeSlack, Posted, RateLimit, event, message, read
from harness import eventually
from slack_chat import OWNER, SHARED, SlackChat


def _cards(fake: FakeSlack) -> list[int]:
    """The conversation numbers whose cards were posted in the owner channel, in order."""
    return [
        int(found.group(1))
        for p in fake.in_channel(OWNER)
        if (found := re.match(r"#(\d+) ", p.text))
    ]


def _burst_cards(fake: FakeSlack) -> list[Posted]:
    return [p for p in fake.in_channel(OWNER) if "new mentions" in p.versions[0][0]]


async def _customers_write(slack: SlackChat, count: int, first: int = 0) -> None:
    """`count` customers' messages arrive in the watched channel at once."""
    before = slack.handled
    for n in range(first, first + count):
        await slack.fake.push(
            "events_api", event(message("UCUST", SHARED, f"help {n}", f"{500 + n}.1"), f"EvB{n}")
        )
    await eventually(lambda: slack.handled >= before + count, within=30)


async def test_a_429_storm_in_a_channel_does_not_delay_private_answers(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    await slack.setup_team()
    # Slack refuses past one post every two seconds in a channel (after two at once);
    # the outbox here posts as fast as it can (tests keep its pace tiny): a 429 storm.
    fake.rate_limit = RateLimit(per_second=0.5, burst=2)
    await _customers_write(slack, 6)
    await eventually(lambda: ("chat.postMessage", OWNER) in fake.rate_limit.refused)  # type: ignore[union-attr]
    posted = len(fake.in_channel(OWNER))

    # Ann asks for her queue while the owner channel waits out its Retry-After.
    answer = await slack.say("UANN", "queue", where="CELSEWHERE")

    assert "#1" in answer
    assert len(fake.in_channel(OWNER)) == posted, "the answer waited for the owner channel"
    # and the channel's cards all arrive, each once, in order
    await eventually(lambda: len(_cards(fake)) == 6, within=30)
    assert _cards(fake) == [1, 2, 3, 4, 5, 6]


async def test_a_burst_stays_within_slacks_limit_with_a_burst_card_and_claim_next(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    await slack.setup_team()
    fake.rate_limit = RateLimit(per_second=5, burst=2)
    slack.app.outbox._pacing["slack"] = 0.2  # the limit, scaled down five times
    slack.app.outbox._burst_after = 1.0

    await _customers_write(slack, 20)
    await eventually(lambda: bool(_burst_cards(fake)), within=10)
    burst = _burst_cards(fake)[0]
    assert re.match(r"\d+ new mentions in the last 1 min", burst.versions[0][0])
    buttons = [
        e
        for block in burst.blocks
        if block.get("type") == "actions"
        for e in block.get("elements", [])
    ]
    assert [(b["action_id"], b.get("value")) for b in buttons] == [
        ("inloop:claim", "next"),
        ("inloop:queue", None),
    ]

    # Every conversation is claimable at once: Claim next hands out the oldest, and
    # a number its own, card posted or not.
    assert (await slack.press("UANN", "claim", "next")).startswith("#1 is yours")
    assert (await slack.press("UBOB", "claim", "next")).startswith("#2 is yours")
    assert (await slack.say("UBOB", "claim 20")).startswith("#20 is yours")
    assert "#3" in await slack.press("UANN", "queue", "")

    await eventually(lambda: len(_cards(fake)) == 20, within=60)
    cards = _cards(fake)
    assert sorted(cards) == list(range(1, 21))  # nothing lost, nothing twice
    assert cards.index(20) < cards.index(19)  # the claimed card went ahead
    (twenty,) = [p for p in fake.in_channel(OWNER) if p.text.startswith("#20 ")]
    assert "Bob" in str(twenty.versions[0][1])  # posted once, already showing its owner
    assert fake.rate_limit.refused == []  # the channel never got a 429
    await eventually(lambda: "has its card below" in _burst_cards(fake)[0].text, within=15)
    assert len(_burst_cards(fake)) == 1  # one burst card, updated in place
    await asyncio.sleep(0)


async def test_a_channels_messages_that_arrive_together_are_stored_together(
    slack: SlackChat,
) -> None:
    """A busy watched channel costs a transaction per group of messages, not per message
    (issue 18): those that arrive while one is stored share the next. Each still gets
    its own conversation and card, numbered in the order Slack sent them."""
    fake = slack.fake
    await slack.setup_team()
    groups: list[int] = []
    handle_many = slack.app.handle_many

    async def recording(events: Sequence[Event]) -> list[bool]:
        # the customers' messages only: the scheduler's timers go through here too
        if customers := [e for e in events if isinstance(e, Message)]:
            groups.append(len(customers))
        return await handle_many(events)

    setattr(slack.app, "handle_many", recording)  # noqa: B010
    await _customers_write(slack, 20)
    await slack.app.settle()

    assert sum(groups) == 20
    assert max(groups) > 1, groups  # the customer's look-up held the first: the rest queued
    assert _cards(fake) == list(range(1, 21))
    texts = [read(p.text, p.blocks) for p in fake.in_channel(OWNER)]
    assert [next(i for i, t in enumerate(texts) if f"help {n}" in t) for n in range(20)] == list(
        range(20)
    )
