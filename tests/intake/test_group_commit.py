"""The group commit: requests that arrive together share one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from bot.events import ChannelId, Event, EventId, Message, PersonId
from bot.inbox import NoInbox
from bot.intake.group_commit import GroupCommit

#: what one transaction takes here
TRANSACTION = 0.05


class SlowSink:
    """Stores nothing, in TRANSACTION seconds, and remembers each group's size."""

    inbox = NoInbox()

    def __init__(self) -> None:
        self.groups: list[int] = []

    async def handle(self, event: Event) -> bool:
        return (await self.handle_many([event]))[0]

    async def handle_many(self, events: Sequence[Event]) -> list[bool]:
        await asyncio.sleep(TRANSACTION)
        self.groups.append(len(events))
        return [True] * len(events)

    async def settle(self) -> None:
        return None


def said(n: int) -> Message:
    return Message(EventId(f"e{n}"), PersonId("slack:UCUST"), ChannelId("slack:C1"), f"m{n}")


async def test_a_busy_writer_gathers_what_keeps_coming_and_an_idle_one_waits_for_nothing() -> None:
    """A busy channel's messages keep arriving one by one: after a transaction that others
    waited for, the writer takes those that follow closely into the next, instead of
    paying a transaction for each one or two (issue 18: Slack's watched channels)."""
    sink = SlowSink()
    group = GroupCommit(sink, None, most=200, gather=0.04)
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = group.submit([said(0)])
    await asyncio.sleep(0.01)
    group.submit([said(1)])  # while the first's transaction runs
    await first
    alone = loop.time() - started
    for n in range(2, 6):  # then one every 15 ms
        await asyncio.sleep(0.015)
        group.submit([said(n)])
    await group.drain()

    assert alone < TRANSACTION + 0.03  # the first, on an idle writer, went at once
    assert sink.groups == [1, 5]  # one by one, they would have taken three or four


async def test_a_request_finding_the_writer_idle_waits_for_more_only_when_told_so() -> None:
    """A watched channel in a burst: each card the bot posts answers a customer's message
    and more follow. The first of a wave finds the writer idle; told that more are on the
    way (the adapter is posting), it waits for those that follow closely and shares their
    transaction, instead of paying one alone. Not told, it goes at once as before."""
    for posting, expected in ((True, [3]), (False, [1, 2])):
        sink = SlowSink()
        group = GroupCommit(sink, None, most=200, gather=0.02, busy=partial(bool, posting))
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = group.submit([said(0)])
        for n in (1, 2):  # one every 10 ms, the first already on its way
            await asyncio.sleep(0.01)
            group.submit([said(n)])
        await first
        took = loop.time() - started
        await group.drain()

        assert sink.groups == expected
        if posting:
            # waited for the wave: 20 ms, then its gather (20 ms) ran out, then its commit
            assert took >= 0.02 + 0.02 + TRANSACTION - 0.005
        else:
            assert took < TRANSACTION + 0.03  # an idle writer went at once
