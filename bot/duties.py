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
  other's sync token; the new holder resumes from the token stored in the database.
  (Still to do, in the outbox: leave Matrix rows to the instance that holds `matrix`.)
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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage import duties as leases
from storage.database import Database

log = logging.getLogger(__name__)

ErrorHook = Callable[[BaseException, str], None]
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
        #: a failing renewal is logged once, not every 1.5 s
        self._failing = False

    @property
    def held(self) -> frozenset[str]:
        """The duties whose work runs here now."""
        return frozenset(d.name for d in self._duties.values() if d.held)

    def start(self) -> None:
        """Start renewing and taking over leases (before the first `run`)."""
        if self._db is not None and self._keeper is None:
            self._keeper = asyncio.create_task(self._keep(), name="duties")

    async def run(self, name: str, start: Work, stop: Work) -> None:
        """Run `start` now if this instance gets the duty, else whenever it does; `stop`
        when the lease is lost or at the end.

        A start that fails here raises (Inloop does not start, as without duties);
        one after a take-over is reported and tried again `retry_after` later.
        """
        duty = _Duty(name, start, stop)
        if self._db is None:
            duty.held = True
            self._duties[name] = duty
            await start()
            return
        sent = asyncio.get_running_loop().time()
        async with self._db.transaction() as session:
            got = name in await leases.take(session, [name], self.instance, self._lease)
        self._duties[name] = duty
        if not got:
            log.info("duty %s: another instance runs it; standing by", name)
            return
        self._gained(duty, sent, report=False)
        assert duty.starting is not None
        try:
            await duty.starting
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            # the lease was lost while starting: the keeper stopped it, and stands by

    async def stop(self) -> None:
        """Stop every duty's work and give their leases up."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        # All at once: each stop may take up to `stop_grace`, and Inloop's stop is short.
        await asyncio.gather(
            *(
                duty.stopping if duty.stopping is not None else self._halt(duty)
                for duty in self._duties.values()
                if duty.stopping is not None or duty.held or duty.starting is not None
            ),
            return_exceptions=True,
        )
        self._duties.clear()
        if self._db is None:
            return
        try:
            async with asyncio.timeout(self._timing.stop_grace):
                async with self._db.transaction() as session:
                    await leases.release(session, self.instance)
        except Exception as exc:  # a database out of reach: the leases expire on their own
            log.warning(
                "duties: could not give the leases up (%s); they end within %g s",
                str(exc) or type(exc).__name__,
                self._timing.lease,
            )
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._timing.stop_grace):
                await self._db.dispose()

    # -- keeping the leases -----------------------------------------------------------

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self._timing.lease)

    async def _keep(self) -> None:
        while True:
            try:
                wake = await self._round()
            except Exception as exc:  # a bug here must not leave work running unleased
                self._on_error(exc, "keeping the duty leases")
                self.liveness.renewed(0.0)
                for duty in self._duties.values():
                    if duty.held:
                        self._lose(duty)
                wake = asyncio.get_running_loop().time() + self._timing.renew_every
            await asyncio.sleep(max(0.0, wake - asyncio.get_running_loop().time()))

    async def _round(self) -> float:
        """Renew, take over, stop what was lost; the loop time of the next round."""
        loop = asyncio.get_running_loop()
        timing = self._timing
        sent = loop.time()
        wanted = [d.name for d in self._duties.values() if d.held or d.retry_at <= sent]
        got = await self._renew(wanted, sent)
        if got is not None:
            self.liveness.renewed(sent + timing.lease - timing.margin)
            for name in wanted:
                duty = self._duties.get(name)
                if duty is None:
                    continue
                if name in got:
                    if duty.held:
                        duty.deadline = sent + timing.lease - timing.margin
                    elif duty.stopping is None or duty.stopping.done():
                        log.warning("duty %s: taken over by %s", name, self.instance)
                        self._gained(duty, sent, report=True)
                    else:  # still stopping from an earlier loss: next round
                        await self._give_up([name])
                elif duty.held:
                    log.warning("duty %s: another instance holds it now; stopping it", name)
                    self._lose(duty)
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
        loop = asyncio.get_running_loop()
        deadlines = [d.deadline for d in self._duties.values() if d.held]
        # Never wait past a deadline: the work must stop then, renewal or not.
        within = min([self._timing.renew_every, *(d - sent for d in deadlines)])
        try:
            async with asyncio.timeout_at(loop.time() + max(0.05, within)):
                async with self._db.transaction() as session:
                    await leases.alive(session, self.instance, self._lease)
                    got = await leases.take(session, names, self.instance, self._lease)
        except Exception as exc:
            if not self._failing:
                log.warning("duties: cannot renew the leases (%s)", str(exc) or type(exc).__name__)
            self._failing = True
            return None
        if self._failing:
            log.warning("duties: the leases are renewed again")
            self._failing = False
        return got

    async def _give_up(self, names: Sequence[str]) -> None:
        assert self._db is not None
        try:
            async with self._db.transaction() as session:
                await leases.release(session, self.instance, names)
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
        raised (the first start, which Inloop's own start awaits)."""
        try:
            await duty.start()
        except Exception as exc:
            duty.held = False
            duty.retry_at = asyncio.get_running_loop().time() + self._timing.retry_after
            await self._give_up([duty.name])
            if not report:
                raise
            self._on_error(exc, f"starting duty {duty.name}")
            return
        log.info("duty %s: runs in %s", duty.name, self.instance)

    def _lose(self, duty: _Duty) -> None:
        """Stop the work at once, without holding the keeper up while it stops."""
        duty.held = False
        duty.stopping = asyncio.create_task(self._halt(duty), name=f"stop {duty.name}")

    async def _halt(self, duty: _Duty) -> None:
        starting, duty.starting = duty.starting, None
        if starting is not None:
            starting.cancel()  # a start still under way (no-op once it ended)
            await asyncio.gather(starting, return_exceptions=True)
        try:
            async with asyncio.timeout(self._timing.stop_grace):
                await duty.stop()
        except TimeoutError:
            log.warning("duty %s did not stop within %g s", duty.name, self._timing.stop_grace)
        except Exception as exc:
            self._on_error(exc, f"stopping duty {duty.name}")
        duty.held = False


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


__all__ = ["Duties", "LeaseTiming", "Liveness", "instance_id", "status_lines"]
