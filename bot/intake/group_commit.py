"""Group commit: requests that arrive while a transaction runs share the next one.

Listening tools often send one mention per request, several at once. Each alone
would pay a whole transaction (on SQLite, the single writer's lock and a commit)
for a few rows. Here the first request starts a transaction at once, so an idle
intake adds no wait; the requests that arrive meanwhile are stored together in
the next, so under load the cost of a commit is shared by everyone waiting.

Every request in a group is answered with the group's outcome: if its transaction
fails, nothing of any of them was kept, and each is told so.

The webhook groups mentions and reads their conversation numbers back (its answer
carries them); the Slack adapter groups a watched channel's messages the same way,
with nothing to read back (`db` None).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bot.events import Event, MentionReceived
from bot.platform import EventSink
from storage import conversations
from storage.database import Database

MentionKey = tuple[str, str]


#: a busy writer gathers for at most this many times its `gather` (see `_gathered`)
GATHER_ROUNDS = 8


class NotStored(Exception):
    """The transaction failed: nothing of the group was kept."""


class NotReadBack(Exception):
    """Stored, but reading the conversation numbers back failed."""


@dataclass(frozen=True)
class Stored:
    #: for each mention, whether it was new (False: stored before, a re-delivery)
    fresh: list[bool]
    #: (source, external_id) → conversation number, for the group's mentions
    #: (empty where nothing is read back)
    numbers: dict[MentionKey, int]


def _answer() -> asyncio.Future[Stored]:
    done: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
    # A client that hung up leaves its answer unread: that is not worth a warning.
    done.add_done_callback(lambda f: f.cancelled() or f.exception())
    return done


@dataclass
class _Waiting:
    events: Sequence[Event]
    done: asyncio.Future[Stored] = field(default_factory=_answer)


class GroupCommit:
    def __init__(
        self,
        sink: EventSink,
        db: Database | None,
        *,
        most: int,
        gather: float = 0.0,
        busy: Callable[[], bool] = lambda: False,
    ):
        self._sink = sink
        #: where the mentions' conversation numbers are read back (None: not read)
        self._db = db
        #: mentions per transaction at most (a request bigger than this goes alone)
        self._most = most
        #: seconds a busy writer waits for the next request before its next transaction
        #: (see `_gather`; 0: none)
        self._gather = gather
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        #: set by each request handed in, for `_gather`
        self._arrived = asyncio.Event()
        #: the caller's sign that more requests are on the way (see `_write`)
        self._busy = busy

    async def store(self, events: Sequence[Event]) -> Stored:
        """Store the events durably (raises NotStored or NotReadBack)."""
        return await self.submit(events)

    def submit(self, events: Sequence[Event]) -> Awaitable[Stored]:
        """Queue the events now, in the caller's order; the result is their outcome (as
        `store`). For a caller that must hand events in in order but not wait in line:
        the Slack adapter's turnstile is passed on as soon as a message is queued."""
        waiting = _Waiting(events)
        self._queue.append(waiting)
        self._arrived.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="group commit")
        # Shielded: a client hanging up must not cancel the group's transaction.
        return asyncio.shield(waiting.done)

    async def drain(self) -> None:
        """Wait until every request handed in is stored (or has failed)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write(self) -> None:
        # A request finding the writer idle is stored at once, unless the caller says
        # more are on the way (a Slack adapter busy posting cards: each answers a wave
        # of customer messages, whose first would otherwise pay a transaction alone).
        busy = self._busy()
        while self._queue:
            if busy and self._gather:
                await self._gathered()
            group = self._next_group()
            failure = await self._store(group)
            busy = bool(self._queue)  # requests came in while it ran: under load
            if failure is None:
                continue
            if len(group) == 1:
                _fail(group, failure)
                continue
            # Whose request made it fail? Each alone: the others are then kept.
            for waiting in group:
                if (failure := await self._store([waiting])) is not None:
                    _fail([waiting], failure)

    async def _gathered(self) -> None:
        """Under load (requests came in while the last transaction ran), wait while more
        keep coming, each within `gather` seconds of the one before, up to a full group
        or GATHER_ROUNDS times `gather` in all: one transaction then carries what would
        otherwise take several, each paying its statements and commit for a few rows.
        An idle writer never waits: a request alone is stored at once."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self._gather * GATHER_ROUNDS
        while len(self._queue) < self._most:
            left = until - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                async with asyncio.timeout(min(self._gather, left)):
                    await self._arrived.wait()
            except TimeoutError:
                return

    async def _store(self, group: list[_Waiting]) -> NotStored | None:
        """One transaction for the group, whose requests are answered; if it fails,
        nothing of it was kept and the caller decides whom to tell."""
        events: list[Event] = [e for w in group for e in w.events]
        try:
            fresh = await self._sink.handle_many(events)
        except Exception as exc:
            failure = NotStored(str(exc))
            failure.__cause__ = exc
            return failure
        try:
            numbers = await self._numbers(events)
        except Exception as exc:
            not_read = NotReadBack(str(exc))
            not_read.__cause__ = exc
            _fail(group, not_read)
            return None
        start = 0
        for w in group:
            w.done.set_result(Stored(fresh[start : start + len(w.events)], numbers))
            start += len(w.events)
        return None

    async def _numbers(self, events: Sequence[Event]) -> dict[MentionKey, int]:
        mentions = [(e.source, e.external_id) for e in events if isinstance(e, MentionReceived)]
        if self._db is None or not mentions:
            return {}
        async with self._db.read() as session:
            return await conversations.numbers_of(session, mentions)

    def _next_group(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        total = 0
        while self._queue and (not group or total + len(self._queue[0].events) <= self._most):
            total += len(self._queue[0].events)
            group.append(self._queue.pop(0))
        return group


def _fail(group: list[_Waiting], error: Exception) -> None:
    for w in group:
        w.done.set_exception(error)
