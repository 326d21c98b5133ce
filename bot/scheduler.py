"""Timers for commitments: when each block starts, and when a session needs attention.

Modelled on python-telegram-bot's JobQueue: a thin wrapper around APScheduler 3.x's
`AsyncIOScheduler` (UTC, asyncio executor, one job at a time, errors to the one
error hook). The timers themselves are not APScheduler jobs, though:

- the commitments table is the truth. At start the timers are rebuilt from it:
  one heap entry per active commitment, holding its next start. Occurrences
  that fell while Inloop was down are fired too, once each, and the handler
  sends them late (less than 15 minutes) or records them missed;
- sessions (the rows of occurrences already under way) carry their own `next_at`
  (snooze over, check-in due, check-in unanswered) and are read from the table;
- everything due is fired as neutral events (`OccurrenceDue`, `SessionDue`) through
  the router, in batches, like any other event: deduplicated by event id, one
  transaction per batch, each listener in a savepoint.

`run_due(now)` does one pass. APScheduler calls it at the next due instant (a
`date` job, re-armed after every pass) and every `poll_seconds` (which also picks up
commitments made on another instance). Tests drive a fake clock and call
`run_due` themselves, so nothing waits for real minutes.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import Clock, utc_now
from bot.events import Event, EventId, OccurrenceDue, SessionDue, Tick
from bot.recurrence import Weekly, weekly
from storage import commitments
from storage.database import Database

ErrorHook = Callable[[BaseException, str], None]

#: after a long downtime, occurrences older than this are not looked for
LOOKBACK = timedelta(days=35)


class Sink(Protocol):
    async def handle_many(self, events: Sequence[Event]) -> list[bool]: ...


@dataclass
class _Entry:
    rule: Weekly
    generation: int


NextAfter = Callable[[datetime], "datetime | None"]


@dataclass
class _Recurring:
    next_after: NextAfter
    #: at start, a moment missed by less than this is fired late (once)
    catch_up: timedelta
    next: datetime | None = None


class Scheduler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        on_error: ErrorHook,
        *,
        poll_seconds: float = 30.0,
        batch: int = 200,
        real_clock: Clock = utc_now,
    ):
        self._db = db
        self._clock = clock
        self._on_error = on_error
        self._poll = poll_seconds
        self._batch = batch
        #: APScheduler waits on real time; the domain clock may be a test's fake one
        self._real_clock = real_clock
        self._sink: Sink | None = None
        self._heap: list[tuple[datetime, int, int]] = []
        self._entries: dict[int, _Entry] = {}
        self._generation = 0
        self._max_id = 0
        self._next_session: datetime | None = None
        self._retry: list[Event] = []
        self._lock = asyncio.Lock()
        self._aps: AsyncIOScheduler | None = None
        self._recurring: dict[str, _Recurring] = {}

    # -- life cycle ----------------------------------------------------------------------

    async def start(self, sink: Sink, *, run_timers: bool = True) -> None:
        """Rebuild the timers from the database and fire what fell during a downtime.

        `run_timers=False` leaves the APScheduler jobs out: the caller drives
        `run_due` (tests, benchmarks).
        """
        self._sink = sink
        async with self._lock:
            now = self._clock()
            async with self._db.read() as session:
                plans = await commitments.plans(session)
            await self._fire(self._adopt(plans, now))
            await self._due_sessions(now)
            await self._fire(self._catch_up(now))
        if run_timers:
            self._aps = AsyncIOScheduler(
                timezone=UTC,
                executors={"default": AsyncIOExecutor()},
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            )
            self._aps.add_listener(self._job_failed, EVENT_JOB_ERROR)
            self._aps.add_job(self._tick, "interval", seconds=self._poll, id="inloop-poll")
            self._aps.start()
            self._arm()

    async def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None

    # -- what handlers tell it ---------------------------------------------------------------

    def plan(self, commitment_id: int, rule: Weekly, after: datetime) -> None:
        """Time a (new) commitment: its first block is the first start after `after`."""
        generation = self._enter(commitment_id, rule)
        start = rule.next_after(after)
        if start is not None:
            heapq.heappush(self._heap, (start, commitment_id, generation))
        self._arm()

    def _enter(self, commitment_id: int, rule: Weekly) -> int:
        """Take a commitment's rule (anew); the generation its heap entries carry."""
        self._generation += 1
        self._entries[commitment_id] = _Entry(rule, self._generation)
        self._max_id = max(self._max_id, commitment_id)
        return self._generation

    def every(
        self, name: str, next_after: NextAfter, *, catch_up: timedelta = timedelta(0)
    ) -> None:
        """Fire `Tick(name)` at each moment `next_after` gives (call before start)."""
        self._recurring[name] = _Recurring(next_after, catch_up)

    def forget(self, commitment_id: int) -> None:
        self._entries.pop(commitment_id, None)  # its heap entry is dropped when it surfaces

    def wake_at(self, when: datetime) -> None:
        """A session's `next_at` was set: make sure a pass runs then."""
        if self._next_session is None or when < self._next_session:
            self._next_session = when
        self._arm()

    @property
    def timers(self) -> int:
        return len(self._entries)

    # -- one pass ------------------------------------------------------------------------------

    async def run_due(self, now: datetime) -> int:
        """Fire everything due at `now`; the number of events fired."""
        async with self._lock:
            events: list[Event] = self._retry
            self._retry = []
            due: list[tuple[datetime, int]] = []
            while self._heap and self._heap[0][0] <= now:
                item = heapq.heappop(self._heap)
                if self._stale(item):
                    continue  # uncommitted, or planned again
                start, cid, generation = item
                due.append((start, cid))
                following = self._entries[cid].rule.next_after(start)
                if following is not None:
                    heapq.heappush(self._heap, (following, cid, generation))
            fired = await self._fire(events + self._occurrences(due) + self._ticks(now))
            fired += await self._due_sessions(now)
            # Commitments made on another instance since the last pass.
            async with self._db.read() as session:
                fresh = await commitments.plans(session, above_id=self._max_id)
            fired += await self._fire(self._adopt(fresh, now))
        self._arm()
        return fired

    def _adopt(self, plans: Sequence[commitments.Plan], now: datetime) -> list[Event]:
        """Take commitments into the heap; the occurrences they have left unrecorded."""
        missed: list[tuple[datetime, int]] = []
        for p in plans:
            rule = weekly(p.days, p.start, p.timezone)
            generation = self._enter(p.id, rule)
            since = max(p.last_start or p.created_at, p.created_at, now - LOOKBACK)
            missed += [(s, p.id) for s in rule.between(since, now)]
            start = rule.next_after(now)
            if start is not None:
                self._heap.append((start, p.id, generation))
        heapq.heapify(self._heap)  # once, for thousands at start-up
        return self._occurrences(missed)

    def _catch_up(self, now: datetime) -> list[Event]:
        """At start: the recurring moments missed within their catch-up window, once each."""
        events: list[Event] = []
        for name, item in self._recurring.items():
            missed = item.next_after(now - item.catch_up) if item.catch_up else None
            if missed is not None and missed <= now:
                events.append(tick(name, missed))
            item.next = item.next_after(now)
        return events

    def _ticks(self, now: datetime) -> list[Event]:
        """Recurring moments that came; after a long pause only the latest of each counts,
        and not at all if it is older than its catch-up window (a week-old Monday post)."""
        events: list[Event] = []
        for name, item in self._recurring.items():
            latest = None
            while item.next is not None and item.next <= now:
                latest, item.next = item.next, item.next_after(item.next)
            if latest is None:
                continue
            if item.catch_up and now - latest > item.catch_up:
                continue
            events.append(tick(name, latest))
        return events

    def _occurrences(self, due: list[tuple[datetime, int]]) -> list[Event]:
        """One event per start instant and batch of commitments."""
        by_start: dict[datetime, list[int]] = {}
        for start, cid in sorted(due):
            by_start.setdefault(start, []).append(cid)
        events: list[Event] = []
        for start, ids in by_start.items():
            for i in range(0, len(ids), self._batch):
                events.append(occurrence(start, ids[i : i + self._batch]))
        return events

    async def _due_sessions(self, now: datetime) -> int:
        # One read per pass, bounded: a row whose handler failed stays due (its event
        # id is spent), and must not keep a pass looping on it.
        async with self._db.read() as session:
            due = await commitments.due_sessions(session, now, self._batch * 10)
            if not due:  # the common pass: one read
                self._next_session = await commitments.next_session_at(session)
                return 0
        fired = await self._fire(
            [SessionDue(EventId(f"session:{sid}:{at.isoformat()}"), sid, at) for sid, at in due]
        )
        async with self._db.read() as session:
            self._next_session = await commitments.next_session_at(session)
        return fired

    async def _fire(self, events: list[Event]) -> int:
        """Hand events to the router: one transaction per batch of blocks (an
        OccurrenceDue holds up to a batch already) or of sessions."""
        assert self._sink is not None, "start() first"
        fired = 0
        i = 0
        while i < len(events):
            size = 1 if isinstance(events[i], OccurrenceDue) else self._batch
            chunk = events[i : i + size]
            try:
                await self._sink.handle_many(chunk)
                fired += len(chunk)
                i += size
            except Exception as exc:
                # The database did not take them: try again at the next pass. The
                # handler then decides whether it is still on time, late, or missed.
                self._on_error(exc, f"scheduler: {len(chunk)} due events")
                self._retry += events[i:]
                break
        return fired

    # -- APScheduler ---------------------------------------------------------------------------

    def _arm(self) -> None:
        """(Re)set the one `date` job to the next due instant, in real time."""
        if self._aps is None:
            return
        while self._heap and self._stale(self._heap[0]):
            heapq.heappop(self._heap)
        candidates = [
            t for t in (self._heap[0][0] if self._heap else None, self._next_session) if t
        ] + [r.next for r in self._recurring.values() if r.next is not None]
        if not candidates:
            return
        delay = max(0.0, (min(candidates) - self._clock()).total_seconds())
        if delay >= self._poll:
            return  # the poll job comes first anyway
        self._aps.add_job(
            self._tick,
            "date",
            run_date=self._real_clock() + timedelta(seconds=delay),
            id="inloop-wake",
            replace_existing=True,
        )

    def _stale(self, item: tuple[datetime, int, int]) -> bool:
        entry = self._entries.get(item[1])
        return entry is None or entry.generation != item[2]

    async def _tick(self) -> None:
        try:
            await self.run_due(self._clock())
        except Exception as exc:
            self._on_error(exc, "scheduler pass")

    def _job_failed(self, event: JobExecutionEvent) -> None:
        if event.exception is not None:
            self._on_error(event.exception, f"scheduler job {event.job_id}")


def tick(name: str, at: datetime) -> Tick:
    return Tick(EventId(f"tick:{name}:{at:%Y%m%dT%H%M%SZ}"), name, at)


def occurrence(start: datetime, commitment_ids: Sequence[int]) -> OccurrenceDue:
    """The same blocks at the same instant get the same event id on every instance."""
    ids = ",".join(str(i) for i in commitment_ids)
    digest = hashlib.sha256(ids.encode()).hexdigest()[:32]
    return OccurrenceDue(
        EventId(f"occurrence:{start:%Y%m%dT%H%M%SZ}:{digest}"), start, tuple(commitment_ids)
    )


__all__ = ["LOOKBACK", "Scheduler", "occurrence", "tick"]
