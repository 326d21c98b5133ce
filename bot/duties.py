"""Duties: work that must run in one instance at a time, each under a lease in PostgreSQL.

Several `inloop run` may share one PostgreSQL. Most of Inloop is safe that way (the
outbox leases its rows, events are deduplicated by id, reminders are rows unique per
block), but some work must run in exactly one instance (the composition root,
bot/app.py, names them):

- `timers`: the scheduler (bot/scheduler.py): commitments' blocks and check-ins, the
  Monday digest post, the advice SLA sweep, and every job added to it later. Their
  effects are once already (event ids are the same on every instance, and the router
  drops a second one), but two instances would both do the work and race for it;
  a new holder rebuilds the timers from the tables and fires what fell meanwhile.
- `matrix`: the Matrix adapter (its sync and its sends). Two instances syncing as one
  device would take each other's to-device messages (room keys) and save each
  other's sync token; the new holder resumes from the token stored in the database,
  as the same device with the same encryption keys (bot/platforms/matrix/key_store.py).
  The outbox leaves Matrix rows to the instance that holds `matrix`.
- `feeds`: the feed poller. Two pollers would fetch every feed twice; the new holder
  goes on from each feed's stored ETag, Last-Modified and next poll time.

Slack (each instance its own Socket Mode connection, or any instance in HTTP mode),
the webhook and the outbox run in every instance.

Why a lease row rather than a session advisory lock: an advisory lock lives as long
as its connection, which is perfect after a kill -9 (the kernel closes the socket and
PostgreSQL lets the lock go at once) but not after a lost network: PostgreSQL keeps a
half-open connection, and its lock, until TCP keepalive gives up (two hours by default,
unless every server is tuned), while the holder cannot tell whether it still holds it.
A lease row ends at a time both sides know: the holder renews it every `renew_every`
seconds (`expires_at = now() + lease`, on the database's clock, so that instances whose
clocks differ agree); another instance takes it once `expires_at` has passed; and the
holder stops the duty's work when no renewal has landed `lease - margin` seconds after
it was sent, which is before the row can expire (the database starts counting later).
A dead holder's duty is taken over within `lease + renew_every` seconds (7.5 s), and
a lease row survives connection poolers, which session locks do not. (No lease helps
an event loop blocked for longer than the margin: it can neither renew nor stop in
time.) The cost is one
small UPSERT per instance every 1.5 s, on a connection pool of its own so that a busy
main pool cannot delay a renewal.

On SQLite there is one instance: every duty runs in it, and nothing is leased.

Each instance also holds a lease on itself (`Liveness`, the `instance_lease` row),
renewed in the same statement batch as its duties. What an instance leased in the
outbox, or received in the inbox (bot/inbox.py), is free for the others once that
row has ended: within `lease` seconds of a kill -9, not after the outbox's minute.
The instance itself stops sending (`Liveness.bound`) `margin` seconds before its
row could end, so a slow instance never sends a row another one has taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from storage import duties as leases
from storage.database import Database

log = logging.getLogger(__name__)

ErrorHook = Callable[[BaseException, str], None]
T = TypeVar("T")
Work = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class LeaseTiming:
    """Seconds. A dead holder's duty is taken over within `lease + renew_every`."""

    renew_every: float = 1.5
    lease: float = 6.0
    #: the holder stops this long before its lease could end in the database
    margin: float = 1.0
    #: a duty whose work failed to start is not taken again before this
    retry_after: float = 30.0
    #: a duty's stop may take this long before it is left behind
    stop_grace: float = 3.0


def session_settings(timing: LeaseTiming) -> dict[str, str]:
    """PostgreSQL settings for the duties' own connections.

    A holder whose network goes silent between a renewal's statement and its commit
    leaves a transaction open on the server, holding the lease rows' locks; the server
    keeps such a half-open session until TCP keepalive gives up (two hours by default),
    and every other instance's take of those duties waits on the locks all that time:
    no take-over at all. Ended by the server when idle for half a lease, the session
    lets its locks go before the lease it failed to renew ends (a renewal's transaction
    is never idle for longer: one statement, then COMMIT).
    """
    return {"idle_in_transaction_session_timeout": str(int(timing.lease / 2 * 1000))}


def instance_id() -> str:
    """This process among the instances: host, process id, and a random part (a pid is
    reused, in containers often 1)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Liveness:
    """Whether the other instances still count this one alive (its `instance_lease` row).

    The duties' keeper renews it (`renewed`) with the duty leases; it counts from when
    a renewal was sent, so it ends here `margin` seconds before the row can end in the
    database. Work that another instance takes over once this one is no longer alive
    (sending an outbox row it leased, handling an inbox row it received) runs only while
    `alive()`, and `bound()` cuts it short when that ends mid-way. On SQLite (`always`)
    there is one instance, alive as long as it runs.
    """

    def __init__(self, instance: str, *, always: bool = False):
        self.instance = instance
        self.always = always
        #: loop time until which this instance surely counts as alive in the database
        self._until = math.inf if always else 0.0
        self._bounds: set[asyncio.Timeout] = set()

    def alive(self) -> bool:
        return self.always or asyncio.get_running_loop().time() < self._until

    @contextlib.asynccontextmanager
    async def bound(self) -> AsyncIterator[None]:
        """Run the block only while this instance counts as alive: TimeoutError when it
        stops counting (at once if it does not now), later if renewals stop landing."""
        if self.always:
            yield
            return
        async with asyncio.timeout_at(self._until) as bound:
            self._bounds.add(bound)
            try:
                yield
            finally:
                self._bounds.discard(bound)

    def renewed(self, until: float) -> None:
        """A renewal landed: alive until loop time `until` (or ended at once if earlier)."""
        self._until = until
        for bound in list(self._bounds):
            if not bound.expired():
                bound.reschedule(until)


@dataclass
class _Duty:
    name: str
    start: Work
    stop: Work
    held: bool = False
    #: loop time by which a renewal must have landed, or the work stops
    deadline: float = 0.0
    #: loop time before which it is not taken again (its start failed)
    retry_at: float = 0.0
    #: its start, while it runs (a take-over's, or the first one's)
    starting: asyncio.Task[None] | None = None
    #: its stop after a lost lease, while it runs: not taken again before it ends
    stopping: asyncio.Task[None] | None = None
    #: done at its first outcome here: taken and started (or failed to start), or
    #: left to another instance, or not decided because the database did not answer
    first: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Duties:
    """Runs each duty's work while this instance holds its lease.

    `db` is a Database of its own (a small pool, disposed by `stop`); None on SQLite,
    where every duty simply runs.
    """

    def __init__(
        self,
        db: Database | None,
        instance: str,
        on_error: ErrorHook,
        *,
        timing: LeaseTiming = LeaseTiming(),
    ):
        self._db = db
        self.instance = instance
        self._on_error = on_error
        self._timing = timing
        self._duties: dict[str, _Duty] = {}
        #: this instance's own lease, renewed with the duties' (always alive on SQLite)
        self.liveness = Liveness(instance, always=db is None)
        self._keeper: asyncio.Task[None] | None = None
        #: statements given up on, still unwinding (kept: a task needs a reference)
        self._unwinding: set[asyncio.Task[Any]] = set()
        #: set when a duty is added: the keeper's next round starts at once
        self._wake = asyncio.Event()
        #: a failing renewal is logged once, not every 1.5 s
        self._failing = False

    @property
    def held(self) -> frozenset[str]:
        """The duties whose work runs here now."""
        return frozenset(d.name for d in self._duties.values() if d.held)

    def start(self) -> None:
        """Start renewing and taking over leases (before or after `add`)."""
        if self._db is not None and self._keeper is None:
            self._keeper = asyncio.create_task(self._keep(), name="duties")

    def add(self, name: str, start: Work, stop: Work) -> None:
        """Run `start` as soon as this instance gets the duty (now, if it is free), and
        `stop` when the lease is lost or at the end.

        Every duty is claimed on its own: the keeper takes every free one in one
        statement and starts each in a task of its own, so a slow start (Matrix logging
        in) delays no other duty, at an instance's start as at a take-over. `started`
        waits for the first outcome.
        """
        duty = _Duty(name, start, stop)
        self._duties[name] = duty
        if self._db is None:  # one instance: every duty runs here, unleased
            self._gained(duty, 0.0, report=False)
        else:
            self._wake.set()

    async def started(self, names: Iterable[str] | None = None) -> None:
        """Until these duties (all by default) had their first outcome here: started, or
        left to the instance that holds them, or left for a later round because the
        database did not answer in time (never longer: a database gone silent does not
        hold Inloop's start up). A first start that failed raises (Inloop does not start,
        as without duties); one after a take-over is reported and tried again
        `retry_after` later."""
        wanted = self._duties if names is None else names
        firsts = [self._duties[name].first for name in wanted]
        outcomes = await asyncio.gather(*firsts, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def run(self, name: str, start: Work, stop: Work) -> None:
        """`add` the duty and wait for its first outcome (`started`)."""
        self.add(name, start, stop)
        await self.started([name])

    async def stop(self) -> None:
        """Stop every duty's work and give their leases up, within `stop_grace` in all
        (Inloop's whole stop is short): what does not stop in time is left behind, and
        its lease is not given up but ends on its own."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self._timing.stop_grace
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        # All at once, each in a task (a stop may be slow, a database gone silent).
        halts = {
            duty.name: duty.stopping or asyncio.ensure_future(self._halt(duty))
            for duty in self._duties.values()
            if duty.stopping is not None or duty.held or duty.starting is not None
        }
        if halts:
            await asyncio.wait(halts.values(), timeout=max(0.0, until - loop.time()))
        for duty in self._duties.values():
            _settle(duty.first)  # stopped before it was decided: nothing to wait for
        if self._db is None:
            self._duties.clear()
            return
        stopped = [name for name in self._duties if name not in halts or halts[name].done()]
        self._duties.clear()
        try:
            release = self._release(stopped, stopping=True)
            await self._within(release, max(until, loop.time() + 0.5))
        except Exception as exc:  # a database out of reach: the leases expire on their own
            log.warning(
                "duties: could not give the leases up (%s); they end within %g s",
                str(exc) or type(exc).__name__,
                self._timing.lease,
            )
        for task in self._unwinding:
            task.cancel()
        with contextlib.suppress(Exception):
            await self._within(self._db.dispose(), max(until, loop.time() + 0.5))

    # -- keeping the leases -----------------------------------------------------------

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self._timing.lease)

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                wake = await self._round()
            except Exception as exc:  # a bug here must not leave work running unleased
                self._on_error(exc, "keeping the duty leases")
                self.liveness.renewed(0.0)
                for duty in self._duties.values():
                    if duty.held:
                        self._lose(duty)
                    _settle(duty.first)
                wake = loop.time() + self._timing.renew_every
            # until the next round is due, or a duty is added (taken at once if free)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(wake):
                    await self._wake.wait()

    async def _round(self) -> float:
        """Renew, take over, stop what was lost; the loop time of the next round."""
        loop = asyncio.get_running_loop()
        timing = self._timing
        sent = loop.time()
        wanted = [d.name for d in self._duties.values() if d.held or d.retry_at <= sent]
        got = await self._renew(wanted, sent)
        if got is None:
            for name in wanted:  # not decided: the next round tries again
                _settle(self._duties[name].first)
        else:
            self.liveness.renewed(sent + timing.lease - timing.margin)
            for name in wanted:
                duty = self._duties.get(name)
                if duty is None:
                    continue
                if name in got:
                    if duty.held:
                        duty.deadline = sent + timing.lease - timing.margin
                    elif duty.stopping is None or duty.stopping.done():
                        first = not duty.first.done()
                        if not first:
                            log.warning("duty %s: taken over by %s", name, self.instance)
                        self._gained(duty, sent, report=not first)
                    else:  # still stopping from an earlier loss: next round
                        await self._give_up([name])
                elif duty.held:
                    log.warning("duty %s: another instance holds it now; stopping it", name)
                    self._lose(duty)
                elif not duty.first.done():
                    log.info("duty %s: another instance runs it; standing by", name)
                    duty.first.set_result(None)
        now = loop.time()
        for duty in list(self._duties.values()):
            if duty.held and duty.deadline <= now:
                log.warning(
                    "duty %s: the lease could not be renewed in time; stopping it", duty.name
                )
                self._lose(duty)
        deadlines = [d.deadline for d in self._duties.values() if d.held]
        return min([sent + timing.renew_every, *deadlines])

    async def _renew(self, names: Sequence[str], sent: float) -> set[str] | None:
        """Renew and take leases; None when the database did not answer in time."""
        assert self._db is not None
        timing = self._timing
        deadlines = [d.deadline for d in self._duties.values() if d.held]
        # Never wait past a deadline: the work must stop then, renewal or not. Short of
        # that, wait: an answer that comes late still renews from when it was sent,
        # while giving up on a slow database (a loaded machine) throws its connection
        # away, and a new one is slower still (the standby that took 13 s to take a
        # duty over had its every round cut off at 1.5 s).
        bound = min([sent + timing.lease - timing.margin, *deadlines])
        try:
            got = await self._within(self._take(names), max(bound, sent + 0.05))
        except Exception as exc:
            if not self._failing:
                log.warning("duties: cannot renew the leases (%s)", str(exc) or type(exc).__name__)
            self._failing = True
            return None
        if self._failing:
            log.warning("duties: the leases are renewed again")
            self._failing = False
        return got

    async def _take(self, names: Sequence[str]) -> set[str]:
        assert self._db is not None
        async with self._db.transaction() as session:
            # the instance's own liveness rides in the same statement
            return await leases.take(session, names, self.instance, self._lease)

    async def _release(self, names: Sequence[str], *, stopping: bool = False) -> None:
        assert self._db is not None
        async with self._db.transaction() as session:
            await leases.release(session, self.instance, names, stopping=stopping)

    async def _within(self, work: Coroutine[Any, Any, T], until: float) -> T:
        """`work`'s result, or TimeoutError at loop time `until` sharp.

        A statement cancelled on a connection that went silent takes seconds more to
        unwind (SQLAlchemy says goodbye to the connection, asyncpg waits for its
        cancel request): waiting for that made a cut-off holder stop its duties after
        its lease had ended. So the statement runs in a task of its own, left to
        unwind in the background.
        """
        task = asyncio.create_task(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=until - asyncio.get_running_loop().time())
        except asyncio.CancelledError:
            task.cancel()
            raise
        if done:
            return task.result()
        task.cancel()
        self._unwinding.add(task)
        task.add_done_callback(_forget(self._unwinding))
        raise TimeoutError

    async def _give_up(self, names: Sequence[str]) -> None:
        loop = asyncio.get_running_loop()
        try:
            # bounded: it runs in the keeper's round, and the lease ends on its own
            await self._within(self._release(names), loop.time() + self._timing.lease / 2)
        except Exception as exc:  # it expires on its own
            self._on_error(exc, f"releasing duties {', '.join(names)}")

    # -- starting and stopping the work ------------------------------------------------------

    def _gained(self, duty: _Duty, sent: float, *, report: bool) -> None:
        duty.held = True
        duty.deadline = sent + self._timing.lease - self._timing.margin
        duty.stopping = None
        duty.starting = asyncio.create_task(self._start(duty, report), name=f"duty {duty.name}")

    async def _start(self, duty: _Duty, report: bool) -> None:
        """Start the work; if it fails, give the lease up (another instance may do
        better) and try again `retry_after` later. `report`: to the error hook, else
        to `first` (the first start, which Inloop's own start awaits)."""
        try:
            await duty.start()
        except Exception as exc:
            duty.held = False
            duty.retry_at = asyncio.get_running_loop().time() + self._timing.retry_after
            if self._db is not None:
                await self._give_up([duty.name])
            if report or duty.first.done():
                self._on_error(exc, f"starting duty {duty.name}")
            else:
                duty.first.set_exception(exc)
            return
        finally:
            _settle(duty.first)  # cancelled: the lease was lost while it started
        log.info("duty %s: runs in %s", duty.name, self.instance)

    def _lose(self, duty: _Duty) -> None:
        """Stop the work at once, without holding the keeper up while it stops."""
        duty.held = False
        duty.stopping = asyncio.create_task(self._halt(duty), name=f"stop {duty.name}")

    async def _halt(self, duty: _Duty) -> None:
        starting, duty.starting = duty.starting, None
        if starting is not None and not starting.done():
            starting.cancel()  # a start still under way
            # (a start cut off mid-statement may take long to unwind: not forever here)
            await asyncio.wait({starting}, timeout=self._timing.stop_grace)
        try:
            async with asyncio.timeout(self._timing.stop_grace):
                await duty.stop()
        except TimeoutError:
            log.warning("duty %s did not stop within %g s", duty.name, self._timing.stop_grace)
        except Exception as exc:
            self._on_error(exc, f"stopping duty {duty.name}")
        duty.held = False


def _forget(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: it was given up on, and said so already

    return done


def _settle(first: asyncio.Future[None]) -> None:
    if not first.done():
        first.set_result(None)


async def status_lines(db: Database, duties: Sequence[str], now: datetime) -> list[str]:
    """What `inloop status` prints: who runs each duty, and the outbox's backlog (its
    ages against `now`, the clock the outbox writes with)."""
    lines = []
    if db.is_sqlite:
        lines.append(f"duties: SQLite has one instance, which runs every duty: {', '.join(duties)}")
    else:
        async with db.read() as session:
            rows, db_now = await leases.leases(session)
        by_duty = {lease.duty: lease for lease in rows}
        for name in [*duties, *sorted(set(by_duty) - set(duties))]:
            lease = by_duty.get(name)
            if lease is None:
                lines.append(f"duty {name}: no instance holds it")
            elif lease.expires_at <= db_now:
                ago = _seconds(db_now - lease.expires_at)
                lines.append(
                    f"duty {name}: no instance holds it ({lease.holder}'s lease ended {ago} ago)"
                )
            else:
                lines.append(
                    f"duty {name}: {lease.holder} since {_time(lease.since)},"
                    f" lease until {_time(lease.expires_at)}"
                )
    async with db.read() as session:
        backlog = await leases.backlog(session)
    if not backlog:
        lines.append("outbox: nothing pending")
    for item in backlog:
        lines.append(
            f"outbox {item.platform}: {item.pending} pending,"
            f" the oldest written {_seconds(now - item.oldest)} ago"
        )
    return lines


def _time(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _seconds(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


__all__ = ["Duties", "LeaseTiming", "Liveness", "instance_id", "session_settings", "status_lines"]
