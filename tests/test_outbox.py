"""The outbox: nothing lost, nothing twice, in order, through crashes and rate limits."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from bot.clock import utc_now
from bot.events import Command, EventId
from bot.outbox import LEASE
from harness import Chat, channel, eventually, person
from recording import Crash, field_value
from storage.models import OutboxRow, OutboxState


async def _states(chat: Chat) -> list[str]:
    async with chat.app.db.transaction() as session:
        return list((await session.scalars(select(col(OutboxRow.state)))).all())


async def test_a_crash_between_send_and_bookkeeping_sends_nothing_twice(
    database_url: str,
) -> None:
    chat = await Chat(database_url).start()
    await chat.say("boss", "team add support")
    # Stop the worker so the card waits in the outbox, as if the process died before it.
    await chat.app.outbox.stop()
    await chat.mention("Giulia", "La scatola era rotta", settle=False)
    assert chat.platform.in_channel(channel("support")) == []
    platform = chat.platform

    # The card reaches the platform, then the process "dies" before marking the row sent.
    platform.crash_after_next_send = True
    with contextlib.suppress(Crash):
        await chat.app.outbox.deliver_due()
    await chat.app.db.dispose()
    assert len(platform.in_channel(channel("support"))) == 1

    # Restart on the same database and the same chat platform.
    restarted = Chat(database_url)
    restarted.platform = platform
    restarted.app.platforms["console"] = platform
    # The dead worker's lease on the row lapses a minute later (LEASE); then it is resent.
    restarted.app.outbox._clock = lambda: utc_now() + LEASE + timedelta(seconds=1)
    await restarted.start()
    await restarted.app.settle()

    cards = platform.in_channel(channel("support"))
    assert len(cards) == 1, "the card was posted twice"
    assert platform.calls.count(cards[0].key) == 2, "the pending row was not retried"
    assert await _states(restarted) == [OutboxState.SENT] * len(await _states(restarted))
    # and the restarted bot knows the card, so a claim updates it in place
    await restarted.say("ann", "claim 1")
    assert field_value(platform.card(1), "Owner") == "Ann"
    assert len(platform.card_messages(1)) == 1
    await restarted.stop()


async def test_rows_written_before_a_crash_are_delivered_after_restart(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}"
    chat = await Chat(url).start()
    await chat.say("boss", "team add support")
    await chat.app.outbox.stop()  # the worker is gone: rows pile up, committed
    for n in range(5):
        await chat.mention(f"Customer{n}", f"message {n}", settle=False)
    await chat.app.db.dispose()
    assert len(chat.platform.in_channel(channel("support"))) == 0

    restarted = Chat(url)
    await restarted.start()
    await restarted.app.settle()

    titles = [d.view.title for d in restarted.platform.in_channel(channel("support"))]  # type: ignore[union-attr]
    assert titles == [f"#{n} · twitter · Customer{n - 1} (@customer{n - 1})" for n in range(1, 6)]
    await restarted.stop()


async def test_rate_limits_are_waited_out_and_order_is_kept(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    chat.platform.rate_limited = 3
    chat.platform.retry_after = 0.05
    # the worker backs off for at least a second on its own; keep the test quick
    chat.app.outbox._backoff = type(chat.app.outbox._backoff)(first=0.01)

    for n in range(10):
        await chat.mention(f"Customer{n}", f"message {n}")
    await eventually(lambda: len(chat.platform.in_channel(channel("support"))) == 10)

    cards = chat.platform.in_channel(channel("support"))
    assert [c.view.title.split(" · ")[0] for c in cards] == [f"#{n}" for n in range(1, 11)]  # type: ignore[union-attr]
    assert len({c.key for c in cards}) == 10


async def test_a_message_that_cannot_be_delivered_does_not_block_the_others(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    chat.app.outbox._max_attempts = 2
    chat.app.outbox._backoff = type(chat.app.outbox._backoff)(first=0.01)
    chat.platform.failing = 2  # the first row fails twice: given up

    await chat.mention("Giulia", "first")
    await chat.mention("Marco", "second")
    await eventually(lambda: len(chat.platform.in_channel(channel("support"))) == 1)

    titles = [c.view.title for c in chat.platform.in_channel(channel("support"))]  # type: ignore[union-attr]
    assert titles == ["#2 · twitter · Marco (@marco)"]
    assert sorted(await _states(chat)).count(OutboxState.FAILED) == 1
    assert (
        await chat.say("ann", "claim 2")
        == "#2 is yours. Reply to Marco on twitter, then `replied 2`."
    )


async def test_a_retried_event_is_handled_once(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "Ordine rotto")
    claim = Command(EventId("slack-retry-1"), person("ann"), channel("support"), "claim 1")

    await chat.app.handle(claim)
    await chat.app.handle(claim)  # the platform delivers the same event again
    await chat.app.settle()

    assert chat.platform.private(person("ann")) == [
        "#1 is yours. Reply to Giulia on twitter, then `replied 1`."
    ]


async def test_two_instances_on_one_database_deliver_each_message_once(
    database_url: str,
) -> None:
    first = await Chat(database_url).start()
    second = Chat(database_url)
    second.platform = first.platform
    second.app.platforms["console"] = first.platform
    await second.start()
    await first.say("boss", "team add support")
    # both workers stop polling on their own; a burst is written, then both deliver at once
    await first.app.outbox.stop()
    await second.app.outbox.stop()
    for n in range(20):
        await first.mention(f"Customer{n}", f"message {n}", settle=False)

    while True:
        waits = await asyncio.gather(
            first.app.outbox.deliver_due(), second.app.outbox.deliver_due()
        )
        if all(w is None for w in waits):
            break

    keys = [d.key for d in first.platform.in_channel(channel("support"))]
    assert len(keys) == 20
    # every card was handed to the platform exactly once, by one of the two instances
    assert sorted(first.platform.calls.count(k) for k in keys) == [1] * 20
    await first.stop()
    await second.stop()


async def test_a_backlog_in_a_channel_goes_out_in_one_pass_and_a_failure_holds_the_rest(
    chat: Chat,
) -> None:
    await chat.say("boss", "team add support")
    await chat.app.outbox.stop()  # rows pile up, as during a burst
    chat.app.outbox._backoff = type(chat.app.outbox._backoff)(first=0.01)
    for n in range(5):
        await chat.mention(f"Customer{n}", f"message {n}", settle=False)

    await chat.app.outbox.deliver_due()
    assert len(chat.platform.in_channel(channel("support"))) == 5

    for n in range(5, 10):
        await chat.mention(f"Customer{n}", f"message {n}", settle=False)
    chat.platform.rate_limited = 1  # the first of them is refused once
    chat.platform.retry_after = 0.5
    await chat.app.outbox.deliver_due()
    await chat.app.outbox.deliver_due()  # at once: the head is backing off, so nothing jumps it
    assert len(chat.platform.in_channel(channel("support"))) == 5

    await asyncio.sleep(0.6)
    await chat.app.outbox.deliver_due()  # the rows behind it were not left leased
    cards = chat.platform.in_channel(channel("support"))
    assert [c.view.title.split(" · ")[0] for c in cards] == [f"#{n}" for n in range(1, 11)]  # type: ignore[union-attr]


async def test_a_slow_answer_does_not_hold_back_the_next_cards_of_an_unpaced_channel(
    chat: Chat,
) -> None:
    """A channel with no pace (the console; Slack where its limit leaves room) has its
    new cards on their way several at once, in order: one card per answer's round trip
    capped a busy channel at a few hundred cards a second (issue 18)."""
    await chat.say("boss", "team add support")
    await chat.app.outbox.stop()  # rows pile up, as during a burst
    for n in range(8):
        await chat.mention(f"Customer{n}", f"message {n}", settle=False)
    chat.platform.slow[channel("support")] = 0.25  # each answer takes a quarter second

    loop = asyncio.get_running_loop()
    started = loop.time()
    await chat.app.outbox.deliver_due()
    took = loop.time() - started

    cards = chat.platform.in_channel(channel("support"))
    assert [c.view.title.split(" · ")[0] for c in cards] == [f"#{n}" for n in range(1, 9)]  # type: ignore[union-attr]
    # the first goes alone (it finds out whether the channel takes posts), then the rest
    # together: two answers' time, where one after another took eight
    assert took < 1.2, f"8 cards took {took:.2f} s"


async def test_a_busy_unpaced_channels_backlog_goes_out_in_one_pass(chat: Chat) -> None:
    """Forty cards waiting in an unpaced channel (held by a 429) go in one pass once the
    wait is over, in order: read twenty at a time, a busy channel's cards went in small
    waves, and the messages they answer came back so, each wave routed in a transaction
    of its own (bench.slack --throughput, issue 18)."""
    await chat.say("boss", "team add support")
    await chat.app.outbox.stop()  # rows pile up, as during a burst
    for n in range(40):
        await chat.mention(f"Customer{n}", f"message {n}", settle=False)
    chat.platform.rate_limited = 1  # the first is refused once
    chat.platform.retry_after = 0.2
    await chat.app.outbox.deliver_due()
    assert chat.platform.in_channel(channel("support")) == []

    await asyncio.sleep(0.3)
    await chat.app.outbox.deliver_due()  # one pass

    cards = chat.platform.in_channel(channel("support"))
    assert [c.view.title.split(" · ")[0] for c in cards] == [f"#{n}" for n in range(1, 41)]  # type: ignore[union-attr]


async def test_admins_are_told_once_a_day_when_a_channel_refuses_the_bot(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    chat.platform.gone.add(channel("support"))  # someone removed the bot from #support

    await chat.mention("Giulia", "hello?")
    told = chat.platform.private(person("boss"))[-1]
    assert told.startswith(
        "I could not post in the channel of team support and gave up on a message there "
        "(channel_not_found)."
    )
    await chat.mention("Marco", "anyone?")
    assert chat.platform.private(person("boss"))[-1] == told
    assert sum("could not post" in t for t in chat.platform.private(person("boss"))) == 1
