"""The outbox: every message the bot sends is a durable row first, delivered by a worker.

Handlers add rows through `OutboxWriter` in the same transaction as the state
change they announce, so a crash can never leave a change unannounced or announce
a change that was rolled back. `OutboxWorker` delivers the rows:

- each lane (one channel, or one person's private messages) on its own task, so
  a lane that is paced, slow or rate-limited holds up no other lane;
- in order within a lane, except that changes to cards and notices go ahead of a
  channel's backlog of new cards: a card is always posted before its updates (an
  update of a card whose post is still queued brings the post forward, carrying
  the latest view), and new cards reach a channel in the order they were written
  (an unpaced channel has up to IN_FLIGHT of them on their way at once: only a
  failure among them lets a later one show first);
- with retries and exponential backoff; a 429 makes its lane alone wait the
  platform's Retry-After, and never counts as a failed attempt;
- with the row's idempotency key, so a resend after a crash between "sent" and
  "marked sent" is deduplicated by platforms that support it, and is first looked
  up (`Platform.find_sent`) on those that don't;
- pacing each channel to the platform's documented rate, with a burst card (the
  handler's words, `burst_view`) when its new cards arrive faster than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Integer, and_, bindparam, case, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select
from sqlmodel import col

from bot.account_limit import AccountBucket, Urgency
from bot.clock import Clock
from bot.duties import Liveness
from bot.events import ChannelId, PersonId, Undeliverable, bounded, platform_of
from bot.metrics import Metrics
from bot.platform import DeliveryError, Platform
from bot.views import View, view_from_dict, view_to_dict
from storage import bursts
from storage.database import Database
from storage.dialect import table
from storage.duties import gone as instances_gone
from storage.models import Conversation, OutboxKind, OutboxRow, OutboxState

log = logging.getLogger(__name__)

ErrorHook = Callable[[BaseException, str], None]
#: how long a worker holds the rows it is delivering. With an instance's liveness
#: (bot/duties.py `Liveness`, PostgreSQL), rows whose instance is no longer alive are
#: free sooner: within the liveness lease (6 s) of a kill -9. On SQLite a start takes
#: over what its predecessor held at once.
LEASE = timedelta(seconds=60)
#: seconds after which rows another instance held (or that this one could not lease
#: yet: its liveness not renewed) are tried again
HELD_RECHECK = 1.0
#: seconds a row's look-up for an earlier send may take (`Platform.find_sent`)
LOOK_UP_BUDGET = 10.0
#: a paced channel whose new cards would take longer than this to show gets a burst card
BURST_AFTER = 3.0
#: the burst card is shown again (updated in place) at most this often
BURST_REFRESH = 10.0
#: how long the instance showing a channel's burst card holds it after showing it (then,
#: or once that instance is no longer alive, another instance may go on with the card)
BURST_HOLD = timedelta(seconds=60)
#: the channels' backlogs of new cards are counted at most this often
BACKLOG_EVERY = 0.5
#: on a platform limited per account whose limit was shown lifted, this many new cards
#: waiting in one channel make a burst (Synapse's default burst: ten messages)
SHARED_BURST_CARDS = 10
#: a lane due sooner than this keeps the worker busy (not idle: `settle` waits for it)
IDLE_AFTER = 0.05
#: the running worker reads every lane at most this often on kicks alone (a burst of
#: intake commits kicks a hundred times a second; a lane that finishes reads at once)
FULL_PASS_GAP = 0.04
#: new cards an unpaced channel has on their way at once (Slack takes bursts): a lane
#: that waits for each answer before the next post caps its channel at one card per
#: round trip, however many arrive; as many as a pass reads (`OVERLAPPED_READ`), so that
#: the messages those cards answer come back together (the first still goes alone)
IN_FLIGHT = 50
#: rows read in a pass of a lane whose new cards go several at once (an unpaced channel:
#: `OutboxWorker._overlaps`), instead of `batch`: a busy channel's cards then go out in
#: waves of this many, and the messages they answer come back together, to be routed
#: in one transaction instead of several (bench.slack --throughput: with 20, groups
#: stayed at 6-10 messages, each paying the routing transaction's fixed cost)
OVERLAPPED_READ = 50


class OutboxWriter:
    """Adds outbox rows to the caller's transaction."""

    def __init__(self, session: AsyncSession, now: datetime):
        self._session = session
        #: the unit of work's time: its rows are due from then
        self.now = now
        self._added: list[OutboxRow] = []
        self._inserted: list[int] = []

    def written(self) -> list[int]:
        """The ids of the rows written, for the worker to send at once after the commit."""
        return [row.id for row in self._added if row.id is not None] + self._inserted

    def post(self, channel: ChannelId, view: View, *, card_of: int | None = None) -> None:
        self._add(OutboxKind.SEND, channel, view, card_of=card_of)

    def update_card(self, channel: ChannelId, view: View, conversation_id: int) -> None:
        self._add(OutboxKind.UPDATE, channel, view, card_of=conversation_id)

    def reply_to_card(self, channel: ChannelId, view: View, conversation_id: int) -> None:
        """A message in the thread under the conversation's card (notes about it)."""
        self._add(OutboxKind.REPLY, channel, view, card_of=conversation_id)

    def tell(self, person: PersonId, view: View, context: ChannelId | None = None) -> None:
        self._add(OutboxKind.PRIVATE, person, view, context=context)

    async def post_cards(self, cards: Sequence[tuple[ChannelId, View, int]]) -> None:
        """Post many conversations' cards (channel, card, number) in one statement."""
        if cards:
            rows = [self._row(OutboxKind.SEND, ch, view, card_of=n) for ch, view, n in cards]
            outbox = table(OutboxRow)
            ids = await self._session.scalars(insert(outbox).returning(outbox.c.id), rows)
            self._inserted += ids.all()

    async def update_cards(self, cards: Sequence[tuple[ChannelId, View, int]]) -> None:
        """Edit many conversations' cards (channel, card, number) in one statement."""
        if cards:
            rows = [self._row(OutboxKind.UPDATE, ch, view, card_of=n) for ch, view, n in cards]
            outbox = table(OutboxRow)
            ids = await self._session.scalars(insert(outbox).returning(outbox.c.id), rows)
            self._inserted += ids.all()

    def _add(
        self,
        kind: OutboxKind,
        target: str,
        view: View,
        *,
        card_of: int | None = None,
        context: str | None = None,
    ) -> None:
        row = OutboxRow(**self._row(kind, target, view, card_of, context))
        self._session.add(row)
        self._added.append(row)

    def _row(
        self,
        kind: OutboxKind,
        target: str,
        view: View,
        card_of: int | None = None,
        context: str | None = None,
    ) -> dict[str, Any]:
        return {
            "key": uuid.uuid4().hex,
            "platform": platform_of(target),
            "kind": kind,
            "target": target,
            "context": context,
            "conversation_id": card_of,
            "payload": json.dumps(view_to_dict(view), ensure_ascii=False),
            "next_attempt_at": self.now,
            "created_at": self.now,
        }


#: rows whose message reference, when they return one, is where the card now is (an
#: update posts the card when it was never posted)
_POSTS_CARD = frozenset({OutboxKind.SEND, OutboxKind.UPDATE})


@dataclass(frozen=True)
class Leased:
    """Rows a transaction wrote (`ids`), and those of them it leased to this instance
    before committing (`rows`, with the references of the cards they change, by
    conversation): `OutboxWorker.lease`, then `deliver` once it has committed."""

    ids: tuple[int, ...] = ()
    rows: tuple[OutboxRow, ...] = ()
    cards: Mapping[int, str] = field(default_factory=dict)


class _LeaseLost(Exception):
    """Another worker took the row while this one was looking it up: it is theirs now."""


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0
    factor: float = 2.0
    cap: float = 300.0

    def delay(self, attempts: int) -> float:
        return min(self.cap, self.first * self.factor ** max(0, attempts - 1))


@dataclass
class _Unit:
    """One message to a lane: a row, maybe carrying a later row's view (`payload`), and
    the rows it makes moot (`also`: earlier views of the same card, booked with it)."""

    row: OutboxRow
    payload: str
    also: list[OutboxRow] = field(default_factory=list)

    @property
    def rows(self) -> list[OutboxRow]:
        return [self.row, *self.also]


@dataclass
class _Burst:
    """A burst card shown in a channel while its new cards wait for the pace."""

    #: when the burst began: the card counts what arrived since
    since: datetime
    ref: str | None = None
    #: what the backlog was when the card was last shown (how many, the newest row)
    shown: tuple[int, int] = (0, 0)
    #: loop time of the last post or update
    at: float = 0.0
    #: making or showing it failed unexpectedly: the lane goes on without it
    broken: bool = False
    #: the key its post carries (`storage.bursts.Taken.post_key`)
    post_key: str | None = None
    #: an earlier holder may have posted it without noting where: look for it first
    look_up: bool = False


#: renders a channel's burst card from what waits there since a time (the handler's rule)
BurstView = Callable[[ChannelId, datetime], Awaitable[View]]


class OutboxWorker:
    """Delivers outbox rows, each lane (a channel; a person's private messages) on its own.

    A pass reads what is pending, lane by lane, and hands each lane that is due to a
    task of its own: the pass never waits for a lane to finish, so a lane that is
    paced, rate-limited (429) or slow holds up nobody else. A 429 makes its lane wait
    alone until the time the platform gave ("not before"); the client never sleeps
    inside a call.

    Within a lane, changes to cards (claim, release, resolve: updates, thread
    replies) and notices go ahead of the backlog of new cards; successive updates of
    one card still waiting go as one (the latest view), and an update of a card whose
    post is still queued makes the post carry the latest view, at once. When a paced
    channel's new cards would take more than BURST_AFTER seconds to show, the channel
    gets a burst card (`burst_view`, the handler's), updated in place as the backlog
    changes, while the cards themselves still go out at the pace.
    """

    def __init__(
        self,
        db: Database,
        platforms: Mapping[str, Platform],
        clock: Clock,
        on_error: ErrorHook,
        *,
        max_attempts: int = 12,
        backoff: Backoff = Backoff(),
        pacing: Mapping[str, float] | None = None,
        batch: int = 20,
        metrics: Metrics | None = None,
        gave_up: Callable[[Undeliverable], Awaitable[object]] | None = None,
        burst_view: BurstView | None = None,
        burst_after: float = BURST_AFTER,
        liveness: Liveness | None = None,
        delivers: Callable[[str], bool] = lambda platform: True,
    ):
        self._db = db
        #: this instance's own lease: rows are leased in its name while it is alive, and
        #: sent only within it (None: no instance name, only the time lease)
        self._liveness = liveness
        #: a later look at rows this worker could not lease is planned
        self._recheck: asyncio.TimerHandle | None = None
        #: whether this instance delivers a platform's rows now: a platform that is a duty
        #: (Matrix) only where it runs; the others' rows are left to that instance
        self._delivers = delivers
        #: what operators watch: deliveries by result (the only lines that count them
        #: are marked `metrics`)
        self._metrics = metrics or Metrics()
        self._platforms = platforms
        self._clock = clock
        self._on_error = on_error
        self._max_attempts = max_attempts
        self._backoff = backoff
        #: minimum seconds between two messages of one lane, per platform
        self._pacing = dict(pacing or {})
        #: rows read per lane in a pass: a paced lane sends one message a pass, and any
        #: lane's task is followed by a pass at once, so a few suffice; reading two
        #: hundred of a channel's backlog at every pass, ten passes a second, blocked the
        #: event loop (SQLite runs inline) for 40% of a burst (bench.burst's profile)
        self._batch = batch
        #: told of a channel message given up on for good (the core tells the admins)
        self._gave_up = gave_up
        self._burst_view = burst_view
        self._burst_after = burst_after
        self._last_sent: dict[str, float] = {}
        #: loop time before which a lane sends nothing (the platform's Retry-After)
        self._not_before: dict[str, float] = {}
        #: lanes being delivered now, by their own task
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._bursts: dict[str, _Burst] = {}
        #: rows whose send has reached the platform's call (a stop then may have let it
        #: through)
        self._handing: set[int | None] = set()
        #: lanes whose burst card another instance shows, until when (loop time) this
        #: one leaves it to them before trying to take it again
        self._bursts_elsewhere: dict[str, float] = {}
        #: whether the burst cards an earlier worker left going on were taken over
        self._resumed = False
        #: the channels' backlogs of new cards as last counted, and when (loop time)
        self._counted: tuple[float, dict[str, tuple[int, int]]] = (float("-inf"), {})
        #: platforms whose rate limit counts every channel and private message together
        #: (from the platform's documented default: Matrix's)
        self._shared = {
            name: AccountBucket(limit)
            for name, platform in platforms.items()
            if (limit := platform.account_limit) is not None
        }
        #: when the last full pass began (loop time), and whether a lane finished since
        self._last_full = 0.0
        self._lane_done = False
        #: rows leased in the transactions that wrote them, committed since the last pass
        self._leased: list[Leased] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        #: counts kicks, so the worker only reports idle after seeing the latest one
        self._kicks = 0
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        """New rows were committed: look at what is pending now rather than at the next
        poll."""
        self._kicks += 1
        self._idle.clear()
        self._wake.set()

    async def lease(self, session: AsyncSession, written: Sequence[int]) -> Leased:
        """In the transaction that wrote them, before it commits: lease the rows just
        written that head their lane (nothing older of it pending), for `deliver` to
        send once it has committed, without reading what is pending first (the latency
        of every answer). Leased in the writer's transaction, the lease takes no
        transaction of its own: on SQLite that was a second write lock taken on every
        answer's way, 0.7 ms (`bench.slack --durable`). A transaction that rolls back
        takes its lease with it; one committed by an instance that dies before sending
        leaves its rows leased to the dead, free again as any other lease it held."""
        ids = tuple(sorted(written))
        if self._busy or self._leased or not ids or not self._may_lease():
            # Sending already, or other transactions' rows not handed on yet (a burst):
            # these would mostly find their lane busy and go back. The next pass leases
            # every transaction's rows of that time in one statement instead.
            return Leased(ids)
        return await self._lease_written(session, ids)

    async def _lease_written(self, session: AsyncSession, ids: Sequence[int]) -> Leased:
        """Lease those of `ids` that are new, free, and head their lane (or follow only
        rows of `ids` in it)."""
        found = await session.execute(
            _lease_written_statement(),
            {"ids": list(ids), "until": self._clock() + LEASE, "by": self._holder},
        )
        rows: list[OutboxRow] = []
        cards: dict[int, str] = {}
        for row, card_ref in found:
            rows.append(row)
            if card_ref is not None and row.conversation_id:
                cards[row.conversation_id] = card_ref
        return Leased(tuple(ids), tuple(rows), cards)

    def deliver(self, leased: Leased) -> None:
        """`leased`'s transaction has committed (or wrote nothing): send what it leased
        now, and look at what else is pending."""
        if leased.ids:
            self._leased.append(leased)
        self.kick()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # leased by their transactions and not handed to a lane yet: free for the next
        # run or another instance now, not when the lease lapses
        leased, self._leased = self._leased, []
        with contextlib.suppress(Exception):
            await self._release([row for one in leased for row in one.rows])
        lanes = list(self._busy.values())
        for task in lanes:
            task.cancel()
        # a lane cut short keeps its rows leased: they lapse and are resent (maybe_sent)
        await asyncio.gather(*lanes, return_exceptions=True)

    async def settle(self) -> None:
        """Wait until nothing is due right now (rows waiting on a backoff or the pace
        don't count)."""
        if self._task is None:
            while await self.deliver_due() == 0:
                pass
            return
        self.kick()
        await self._idle.wait()

    async def _run(self) -> None:
        try:
            await self._take_predecessors()
        except Exception as exc:  # their leases lapse on their own
            self._on_error(exc, "outbox: taking over the previous run's leases")
        while True:
            seen = self._kicks
            self._wake.clear()
            try:
                started, wait = await self._pass(throttle=True)
            except Exception as exc:  # the worker must outlive a database hiccup
                self._on_error(exc, "outbox worker")
                started, wait = [], self._backoff.first
            if started or wait == 0:
                continue  # look again at once: the lanes started are skipped while busy
            # A wait shorter than a blink (a test's pace) is not idleness.
            soon = wait is not None and wait < IDLE_AFTER
            if not self._busy and not soon and seen == self._kicks:
                self._idle.set()
            with contextlib.suppress(TimeoutError):
                # At least every 5 s: rows another instance wrote (a Matrix card left to
                # this one, which holds the duty) kick nobody here.
                await asyncio.wait_for(self._wake.wait(), min(wait or 5.0, 5.0))

    async def deliver_due(self) -> float | None:
        """One pass, waiting for the lanes it started (tests and `settle` without a
        running worker). Returns 0 if more may be due at once, else the seconds until
        the next row becomes due (None when nothing is pending)."""
        started, wait = await self._pass()
        if started:
            await asyncio.gather(*started)
            return 0
        return wait

    async def _pass(self, throttle: bool = False) -> tuple[list[asyncio.Task[None]], float | None]:
        """Start a task for each lane that is due and not busy; the seconds until the
        next other lane is due (0: look again at once; None: nothing pending).

        `throttle`: rows just written that could not go at once (their channel has a
        backlog) need no new read of every lane each time; one every FULL_PASS_GAP."""
        if self._leased:
            leased, self._leased = self._leased, []
            return await self._deliver_leased(leased), 0
        loop = asyncio.get_running_loop()
        if throttle and not self._lane_done:
            gap = self._last_full + FULL_PASS_GAP - loop.time()
            if gap > 0:
                return [], gap
        self._lane_done, self._last_full = False, loop.time()
        now = self._clock()
        if not self._resumed and self._burst_view is not None:
            await self._resume_bursts()
        # Lanes busy when reading began are left alone: what is read of them may be
        # stale by the time their task is done (a failure booked meanwhile).
        busy = set(self._busy)
        # Reading takes no write lock (idle polls are free on SQLite); the lease below
        # re-checks each row, so with several instances on one database each row is
        # delivered by one of them.
        async with self._db.read() as session:
            rows = (await session.scalars(_pending_statement(), self._lane_reads())).all()
            rows = [r for r in rows if self._delivers(r.platform)]
            # An update edits the card an earlier row posted: sent by now, or in this
            # pass ahead of it in its lane (then `_send_units` notes the reference).
            cards = await _card_refs(session, rows)
            posts = await _queued_posts(session, rows, cards)
            lanes = _by_lane(rows)
            loop_now = asyncio.get_running_loop().time()
            backlog = await self._backlogs(session, rows, lanes, busy, loop_now)
        waits: list[float] = []
        chosen: dict[str, list[_Unit]] = {}
        bursts: list[str] = []
        for lane, queued in lanes.items():
            if lane in busy or lane in self._busy:
                continue
            units = _units(queued, cards, posts)
            head = units[0].row
            paced = self._one_at_a_time(head)
            wait = max(
                self._backoff_wait(head, now),
                self._pace_wait(head, lane, loop_now),
                self._not_before.get(lane, 0.0) - loop_now,
            )
            # The burst card is not a new card: on a platform limited per account its
            # first post may use the room kept for private answers, its updates that
            # of card changes.
            held = self._held(units[0], loop_now, cards)
            change = max(wait, self._held_burst(lane, head, loop_now))
            burst_due = (
                paced
                and change <= 0
                and self._burst_due(lane, head, backlog.get(head.target), loop_now)
            )
            if paced and 0 < change < held:
                waits.append(change)  # a look then, for the burst card
            wait = max(wait, held)
            if burst_due:
                bursts.append(lane)
                self._count_burst_message(lane, head, loop_now)
            elif wait > 0:
                waits.append(wait)
            elif paced:
                chosen[lane] = units[:1]
                self._take(units[0], loop_now, cards)
            else:
                chosen[lane] = list(
                    itertools.takewhile(lambda u: self._backoff_wait(u.row, now) <= 0, units)
                )
        # A burst that ended (its backlog gone) gets its last update.
        for lane in list(self._bursts):
            if not self._delivers(platform_of(lane.split(":", 1)[1])):
                continue  # its platform went to another instance: not this one's to end
            if lane not in lanes and lane not in busy and lane not in self._busy:
                bursts.append(lane)
        started = [self._spawn(lane, self._show_burst(lane, backlog)) for lane in bursts]
        if chosen:
            started += await self._lease_and_start(chosen, now, cards)
        return started, (max(0.01, min(waits)) if waits else None)

    def _lane_reads(self) -> dict[str, object]:
        """How many rows a pass reads of each lane (`_pending_statement`): `batch`, and
        more of a channel whose new cards may go several at once: on a platform with no
        pace and no limit per account (a 429 waited out is known only once read)."""
        wide = [p for p in self._platforms if not self._pacing.get(p) and p not in self._shared]
        read = max(self._batch, OVERLAPPED_READ)
        return {"per_lane": self._batch, "overlapped": wide, "per_overlapped_lane": read}

    async def _lease_and_start(
        self, chosen: dict[str, list[_Unit]], now: datetime, cards: dict[int, str]
    ) -> list[asyncio.Task[None]]:
        async with self._db.transaction() as session:
            taken = await self._lease(
                session, [r for units in chosen.values() for u in units for r in u.rows], now
            )
        started = []
        for lane, units in chosen.items():
            # A lane goes only as far as its first row another instance holds.
            mine = list(itertools.takewhile(lambda u: all(r.id in taken for r in u.rows), units))
            rest = [r for u in units[len(mine) :] for r in u.rows if r.id in taken]
            if rest:
                await self._release(rest)
            if mine:
                started.append(self._spawn(lane, self._deliver_lane(lane, mine, cards)))
        return started

    def _spawn(self, lane: str, work: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await work
            except Exception as exc:
                self._on_error(exc, "outbox lane")
            finally:
                self._busy.pop(lane, None)
                self._lane_done = True
                self.kick()  # the pass looks at this lane again

        task = asyncio.create_task(run(), name=f"outbox {lane}")
        self._busy[lane] = task
        return task

    async def _deliver_lane(self, lane: str, units: list[_Unit], cards: dict[int, str]) -> None:
        if len(units) > 1 and self._overlaps(units[0].row, lane):
            await self._sent(await self._send_overlapped(units, cards))
        else:
            await self._sent(await self._send_units(units, cards))

    async def _deliver_leased(self, leased: Sequence[Leased]) -> list[asyncio.Task[None]]:
        """Send rows just committed and leased by their transactions (`lease`), if each
        heads its lane and its lane is free and due. What cannot go now is released to
        the ordinary pass, which follows."""
        ids = sorted(i for one in leased for i in one.ids)
        rows = [row for one in leased for row in one.rows]
        cards = {n: ref for one in leased for n, ref in one.cards.items()}
        if len(rows) < len(ids) and self._may_lease():
            # Several transactions' rows for one lane (a burst): each could lease only
            # what headed the lane when it committed; together they may go now.
            async with self._db.at_once_session() as session:
                more = await self._lease_written(session, ids)
            rows += more.rows
            cards.update(more.cards)
        lanes = _by_lane(sorted(rows, key=lambda r: r.id or 0))
        loop_now = asyncio.get_running_loop().time()
        elsewhere = any(not self._delivers(r.platform) for r in rows)
        if elsewhere or len(rows) < len(ids) or any(lane in self._busy for lane in lanes):
            # One of them could not go now (another instance or task holds its lane, or
            # it is backing off): rows of its lane behind it must not jump it. The
            # ordinary pass, which sees whole lanes, sorts that out.
            await self._release(list(rows))
            return []
        started = []
        for lane, queued in lanes.items():
            head = queued[0]
            units = _units(queued, cards, {})
            late = max(
                self._pace_wait(head, lane, loop_now),
                self._not_before.get(lane, 0.0) - loop_now,
                self._held(units[0], loop_now, cards),
            )
            if late > 0:
                await self._release(queued)
                continue
            if self._one_at_a_time(head):
                await self._release([r for u in units[1:] for r in u.rows])
                units = units[:1]
                self._take(units[0], loop_now, cards)
            started.append(self._spawn(lane, self._deliver_lane(lane, units, cards)))
        return started

    @staticmethod
    def _backoff_wait(row: OutboxRow, now: datetime) -> float:
        # A new row is due at once: its next_attempt_at is the handler's (domain)
        # clock, which a test may have moved days ahead; retries use real time.
        return (row.next_attempt_at - now).total_seconds() if row.attempts else 0.0

    # -- burst cards --------------------------------------------------------------------

    async def _backlogs(
        self,
        session: AsyncSession,
        rows: Sequence[OutboxRow],
        lanes: Mapping[str, list[OutboxRow]],
        busy: set[str],
        loop_now: float,
    ) -> dict[str, tuple[int, int]]:
        """Each channel's backlog of new cards, for the burst cards: counted when one may
        be due (a paced lane free to send), at most every BACKLOG_EVERY seconds, except
        that a burst that ended is told at once (counting every pending row at each
        pass, ten a second in a burst, was a sixth of the bot's time)."""
        if self._burst_view is None:
            return {}
        ended = any(lane not in lanes for lane in self._bursts)
        due = any(self._one_at_a_time(r) and _lane(r) not in busy for r in rows)
        if not (ended or due or self._bursts):
            return {}
        counted_at, counted = self._counted
        if ended or loop_now - counted_at >= BACKLOG_EVERY:
            counted = await _backlogs(session)
            self._counted = (loop_now, counted)
        return counted

    def _burst_due(
        self, lane: str, head: OutboxRow, backlog: tuple[int, int] | None, loop_now: float
    ) -> bool:
        """Whether the lane's next slot goes to its burst card: to post it, when the new
        cards waiting would take more than BURST_AFTER seconds at the pace; to update
        it, when the backlog changed and the card was last shown BURST_REFRESH ago.
        (BURST_AFTER: `burst_after`.)"""
        if head.kind == OutboxKind.PRIVATE:
            return False
        burst = self._bursts.get(lane)
        if burst is not None and burst.broken:
            return False
        if backlog is None:
            return burst is not None  # every card is out: its last update
        bucket = self._shared.get(head.platform)
        if burst is None:
            if bucket is not None:
                if not self._account_burst(bucket, backlog[0], loop_now):
                    return False
            elif backlog[0] * self._pace(head) <= self._burst_after:
                return False
            if loop_now < self._bursts_elsewhere.get(lane, 0.0):
                return False  # another instance shows this channel's burst card
            self._bursts[lane] = _Burst(since=self._clock() - timedelta(seconds=self._burst_after))
            return True
        if burst.ref is None:
            return True  # its post failed: try again
        # Under a limit per account each update costs what a card costs: fewer of them.
        refresh = BURST_REFRESH
        if bucket is not None and bucket.holds:
            refresh = max(refresh, bucket.reserve / bucket.per_second)
        return backlog != burst.shown and loop_now - burst.at >= refresh

    def _account_burst(self, bucket: AccountBucket, waiting: int, loop_now: float) -> bool:
        """Whether `waiting` new cards in one channel are a burst on a platform limited
        per account: more than the account's bucket lets through within BURST_AFTER
        seconds, above its reserve; where the limit was shown lifted (no rate known),
        more than its default burst at once."""
        if not bucket.holds:
            return waiting >= SHARED_BURST_CARDS
        room = bucket.room_for_cards(loop_now) + self._burst_after * bucket.per_second
        return waiting > room

    async def _show_burst(self, lane: str, backlogs: Mapping[str, tuple[int, int]]) -> None:
        """Post or update the lane's burst card (its last update, once the backlog is
        gone). It is made afresh from what waits, not delivered from a row: a crash only
        leaves the last one shown as it was. Where it is, is stored (`storage.bursts`):
        after a restart the same card is updated, and a reaction to it is understood."""
        burst = self._bursts.get(lane)
        assert burst is not None and self._burst_view is not None
        target = lane.split(":", 1)[1]
        backlog = backlogs.get(target, (0, 0))
        platform = self._platforms.get(platform_of(target))
        if platform is None:
            del self._bursts[lane]
            return
        channel = ChannelId(target)
        loop = asyncio.get_running_loop()
        started = loop.time()
        if burst.broken:
            del self._bursts[lane]
            return
        try:
            # One instance shows a channel's burst card: the others see the same backlog.
            if not await self._take_burst(target, burst):
                del self._bursts[lane]
                self._bursts_elsewhere[lane] = started + BURST_REFRESH
                return
            view = await self._burst_view(channel, burst.since)
        except Exception as exc:
            # A burst card is a convenience: a bug making it must not stop the cards.
            burst.broken = True
            self._on_error(exc, f"burst card in {target}")
            return
        try:
            # an update takes a key of its own each time (Matrix drops a second event
            # with one key); the post, the burst's own (found by it after a crash)
            key = uuid.uuid4().hex
            if burst.ref is None:
                if backlog[0] == 0:
                    del self._bursts[lane]  # over before it was shown
                    async with self._db.transaction() as session:
                        await bursts.over(session, target)
                    return
                earlier = (
                    await self._posted_burst(platform, target, burst) if burst.look_up else None
                )
                if earlier is not None:
                    burst.ref = earlier
                    await platform.update(channel, earlier, view, key)
                else:
                    burst.ref = await platform.send(channel, view, burst.post_key or key)
                posted = True
            else:
                await platform.update(channel, burst.ref, view, key)
                posted = False
                # the last update says the burst is over also in the card's thread
                self._take_more(platform, view, Urgency.CHANGE, loop.time())
            burst.shown = backlog
            self._spent(platform_of(target), loop.time())
            if backlog[0] == 0:
                del self._bursts[lane]
            await self._note_burst(target, burst, view, posted=posted, over=backlog[0] == 0)
        except DeliveryError as exc:
            # a 429 is the platform pacing us (logged as a lane's), not a failure
            level = logging.INFO if exc.retry_after is not None else logging.WARNING
            log.log(level, "burst card in %s: %s", target, exc.reason)
            if exc.retry_after is not None:
                self._not_before[lane] = loop.time() + exc.retry_after
                self._limited(platform_of(target), exc.retry_after)
            if exc.permanent:
                self._bursts.pop(lane, None)
        except Exception as exc:  # an adapter bug: the cards go on without it
            burst.broken = True
            self._on_error(exc, f"burst card in {target}")
        finally:
            burst.at = self._last_sent[lane] = started

    async def _resume_bursts(self) -> None:
        """Take over the burst cards a worker stopped before (a restart) left going on:
        they are updated as the backlog changes, and told when it is gone."""
        async with self._db.read() as session:
            going_on = await bursts.going_on(session)
        for card in going_on:
            lane = f"{False}:{card.channel}"  # a channel's lane (`_lane`)
            burst = _Burst(card.since, card.ref)
            if lane not in self._bursts and await self._take_burst(card.channel, burst):
                self._bursts[lane] = burst
        self._resumed = True

    async def _take_burst(self, channel: str, burst: _Burst) -> bool:
        """Hold the channel's burst card to show it now (`storage.bursts.take`), going on
        with the one another worker posted if there is one. False: another instance
        holds it, and shows it."""
        now = self._clock()
        async with self._db.transaction() as session:
            taken = await bursts.take(
                session,
                platform_of(channel),
                channel,
                by=self._holder,
                since=burst.since,
                now=now,
                until=now + BURST_HOLD,
                instances=self._names_instances,
            )
        if taken is None:
            return False
        burst.post_key = taken.post_key
        if taken.ref is not None:  # posted already (by an earlier holder, or this one)
            burst.ref, burst.since = taken.ref, taken.since
        elif not taken.new:
            burst.since, burst.look_up = taken.since, True
        return True

    async def _posted_burst(self, platform: Platform, channel: str, burst: _Burst) -> str | None:
        """Where the burst card an earlier holder posted (and died before noting) went,
        found by its post's key; None if it is not there (or cannot be told in time)."""
        assert burst.post_key is not None
        try:
            async with asyncio.timeout(LOOK_UP_BUDGET):
                found = await platform.find_sent(channel, burst.post_key, since=burst.since)
        except (TimeoutError, DeliveryError) as exc:
            log.warning("burst card in %s: cannot look for an earlier post (%s)", channel, exc)
            return None
        burst.look_up = False
        return found or None

    async def _note_burst(
        self, target: str, burst: _Burst, view: View, *, posted: bool, over: bool
    ) -> None:
        """Store where the burst card is and what it shows (deleted once it is over)."""
        assert burst.ref is not None
        shown = view_to_dict(view)
        now = self._clock()
        try:
            async with self._db.transaction() as session:
                if over:
                    await bursts.over(session, target)
                elif posted:
                    await bursts.posted(session, target, burst.ref, shown, now)
                else:
                    await bursts.shown(session, burst.ref, shown, now)
        except Exception as exc:  # the card is shown: only a restart would miss it
            self._on_error(exc, f"storing the burst card in {target}")

    # -- sending ------------------------------------------------------------------------

    async def _lease(
        self, session: AsyncSession, rows: list[OutboxRow], now: datetime
    ) -> set[int | None]:
        """Take the rows for this worker: with several instances on one database, each row
        is delivered by one of them. A lease outlives a crash by LEASE, or, on PostgreSQL,
        until its instance is no longer alive; then the row is resent, marked `maybe_sent`."""
        if not self._may_lease():
            return set()
        result = await session.execute(
            _lease_due_statement(self._names_instances),
            {
                "ids": [row.id for row in rows],
                "now": now,
                "until": now + LEASE,
                "by": self._holder,
            },
        )
        taken = {id_: (maybe, attempts) for id_, maybe, attempts in result.all()}
        for row in rows:
            if row.id in taken:
                # What the statement set: the row's lease may have lapsed on a dead worker;
                # and what another instance booked since it was read.
                row.maybe_sent, row.attempts = taken[row.id]
                row.leased_until = now + LEASE
                row.leased_by = self._holder
        if len(taken) < len(rows):
            self._look_again()  # another instance holds some: free once it is gone
        return set(taken)

    @property
    def _holder(self) -> str | None:
        """The name rows are leased in: this instance's, when it has a liveness."""
        return self._liveness.instance if self._liveness is not None else None

    @property
    def _names_instances(self) -> bool:
        """Whether leases name live instances (PostgreSQL): then a row whose instance is
        no longer alive is free. On SQLite the one instance takes its predecessor's rows
        at start instead (`_take_predecessors`)."""
        return self._liveness is not None and not self._liveness.always

    def _may_lease(self) -> bool:
        """Whether this instance may lease rows now: it counts as alive in the others'
        eyes (on PostgreSQL, from its first liveness renewal on)."""
        if self._liveness is None or self._liveness.alive():
            return True
        self._look_again()
        return False

    def _look_again(self) -> None:
        """Look at the pending rows again in HELD_RECHECK seconds (once, however often
        asked): what another instance holds becomes free when it dies, with no commit
        here to kick the worker."""
        if self._task is None or (self._recheck is not None and not self._recheck.cancelled()):
            return
        loop = asyncio.get_running_loop()

        def look() -> None:
            self._recheck = None
            self.kick()

        self._recheck = loop.call_later(HELD_RECHECK, look)

    async def _take_predecessors(self) -> None:
        """On SQLite there is one instance: rows still leased at its start were leased by
        the process before it, which died (or was stopped mid-send). They are taken
        over at once, as maybe sent, instead of waiting out LEASE."""
        if not self._db.is_sqlite:
            return
        async with self._db.transaction() as session:
            taken = await session.execute(_predecessors_statement())
        count = taken.rowcount  # type: ignore[attr-defined]
        if count:
            log.info("outbox: %d row(s) leased by the previous run taken over", count)

    async def _send_bounded(
        self, row: OutboxRow, cards: dict[int, str], payload: str
    ) -> str | None:
        """`_send`, only while this instance counts as alive: once it may not, another
        instance may take the row, and this send stops (as a failure that may have got
        through: the row is looked up before it is sent again)."""
        try:
            if self._liveness is None:
                return await self._send(row, cards, payload)
            async with self._liveness.bound():
                return await self._send(row, cards, payload)
        except TimeoutError:
            if self._liveness is None or self._liveness.alive():
                raise  # the send's own (an adapter's bug): not this instance's liveness
            raise DeliveryError(
                "this instance's liveness was not renewed in time",
                # stopped before the platform was asked: nothing can have got through
                uncertain=row.id in self._handing,
            ) from None
        finally:
            self._handing.discard(row.id)

    async def _send_units(
        self, units: list[_Unit], cards: dict[int, str]
    ) -> list[tuple[OutboxRow, str | None]]:
        """Send a lane's units in order, stopping at the first failure (order is the lane's
        promise): the rows after it are handed back, to go after it when it is retried."""
        sent: list[tuple[OutboxRow, str | None]] = []
        loop = asyncio.get_running_loop()
        # Stop well before the lease lapses: another instance would then take the rest.
        deadline = loop.time() + LEASE.total_seconds() / 2
        try:
            for i, unit in enumerate(units):
                row = unit.row
                try:
                    ok, ref = await self._deliver(row, cards, unit.payload)
                except _LeaseLost:
                    break  # the rows behind it lapsed with it: theirs too, not ours
                if ok:
                    # the views it carried the latest of are done with it
                    done = [(row, ref), *((moot, None) for moot in unit.also)]
                    if row.kind == OutboxKind.PRIVATE:
                        # Booked at once, not with the lane's other sends: a private
                        # answer may be one that cannot be looked up after a crash
                        # (Slack's ephemeral messages), and would then be sent again;
                        # the window between its send and its booking is one statement.
                        await self._sent(done)
                    else:
                        sent += done
                    if row.kind in _POSTS_CARD and row.conversation_id and ref:
                        cards[row.conversation_id] = ref
                else:
                    await self._release(unit.also)
                if not ok or loop.time() > deadline:
                    await self._release([r for u in units[i + 1 :] for r in u.rows])
                    break
        except Exception as exc:
            # A database error booking a failure: what was sent must still be booked
            # as sent (or it would go out again when the lease lapses).
            self._on_error(exc, "outbox lane")
        return sent

    def _overlaps(self, row: OutboxRow, lane: str) -> bool:
        """Whether the lane's new cards may be on their way several at once: a channel
        with no pace, on a platform not limited per account, and no 429 waited out."""
        return (
            row.kind != OutboxKind.PRIVATE
            and not self._one_at_a_time(row)
            and not self._pace(row)
            and lane not in self._not_before
        )

    async def _send_overlapped(
        self, units: list[_Unit], cards: dict[int, str]
    ) -> list[tuple[OutboxRow, str | None]]:
        """`_send_units` for an unpaced channel: new cards go IN_FLIGHT at a time, each
        started in the lane's order without waiting for the answers before it. Anything
        else (a change to a card, a post looked up first) waits for those on their way
        and goes alone, so a card is still posted before its updates and thread replies;
        so does the first of the pass, which finds out whether the channel takes posts
        now. A failure stops the lane as in `_send_units`; cards started before it was
        known (at most IN_FLIGHT - 1) may then be shown ahead of the failed one, which
        is retried after them."""
        sent: list[tuple[OutboxRow, str | None]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEASE.total_seconds() / 2
        flying: dict[asyncio.Task[tuple[bool, str | None]], _Unit] = {}
        stop = False

        async def land(every: bool) -> None:
            nonlocal stop
            done, _ = await asyncio.wait(
                flying, return_when=asyncio.ALL_COMPLETED if every else asyncio.FIRST_COMPLETED
            )
            for task in done:
                unit = flying.pop(task)
                try:
                    ok, ref = task.result()
                except _LeaseLost:
                    ok, ref = False, None
                except Exception as exc:  # booking a failure failed: book what was sent
                    self._on_error(exc, "outbox lane")
                    ok, ref = False, None
                if ok:
                    sent.extend([(unit.row, ref), *((moot, None) for moot in unit.also)])
                    if unit.row.kind in _POSTS_CARD and unit.row.conversation_id and ref:
                        cards[unit.row.conversation_id] = ref
                else:
                    stop = True
                    await self._release(unit.also)

        started = 0
        try:
            for unit in units:
                if stop or loop.time() > deadline:
                    break
                # The first goes alone: it finds out whether the channel takes posts now
                # (a 429, a refusal, an outage stop the lane before anything overtakes).
                alone = not started or not _is_new_card(unit) or unit.row.maybe_sent
                while flying and (alone or len(flying) >= IN_FLIGHT):
                    await land(every=alone)
                if stop:
                    break
                work = self._deliver(unit.row, cards, unit.payload)
                flying[asyncio.ensure_future(work)] = unit
                started += 1
                if alone:
                    await land(every=True)
            if flying:
                await land(every=True)
        finally:
            for task in flying:  # the lane was stopped: so are its sends (leases lapse)
                task.cancel()
        await self._release([r for u in units[started:] for r in u.rows])
        return sent

    async def _release(self, rows: list[OutboxRow]) -> None:
        """Hand rows back, those this worker still holds (a lease that lapsed may be
        another instance's now)."""
        held: dict[datetime | None, list[int | None]] = {}
        for row in rows:
            held.setdefault(row.leased_until, []).append(row.id)
        if held:
            async with self._db.transaction() as session:
                for mine, ids in held.items():
                    await session.execute(
                        update(OutboxRow)
                        .where(col(OutboxRow.id).in_(ids), col(OutboxRow.leased_until) == mine)
                        .values(leased_until=None, leased_by=None)
                    )

    def _pace(self, row: OutboxRow) -> float:
        """Seconds between two messages of the row's lane: the platform's rate per channel.
        Private answers are not paced: a person gets few, and must get them at once."""
        return 0.0 if row.kind == OutboxKind.PRIVATE else self._pacing.get(row.platform, 0.0)

    def _one_at_a_time(self, row: OutboxRow) -> bool:
        """Whether the row's lane sends one message per pass: a paced channel, and every
        lane of a platform limited per account, so that each pass can put its burst
        card, or a change to a card, ahead of the next new card, and give the account's
        next message to the lane whose turn it is."""
        bucket = self._shared.get(row.platform)
        if bucket is not None and row.kind != OutboxKind.PRIVATE:
            return True
        if bucket is not None:  # a person's answers take turns unless the limit is lifted
            return bucket.holds
        if row.kind == OutboxKind.PRIVATE:
            return False
        return bool(self._pace(row))

    def _held(self, unit: _Unit, loop_now: float, cards: Mapping[int, str]) -> float:
        """Seconds a message waits on a platform limited per account: a private answer
        for room in the account's bucket, a card change or a new card for room above
        its reserve (bot/account_limit.py)."""
        bucket = self._shared.get(unit.row.platform)
        if bucket is None:
            return 0.0
        return bucket.wait(loop_now, _urgency(unit), self._messages(unit, cards))

    def _burst_urgency(self, lane: str) -> Urgency:
        """A channel's first burst card may use the reserve (it is what a burst shows
        first); its updates are changes."""
        burst = self._bursts.get(lane)
        return Urgency.ANSWER if burst is None or burst.ref is None else Urgency.CHANGE

    def _held_burst(self, lane: str, row: OutboxRow, loop_now: float) -> float:
        """Seconds the channel's burst card waits on a platform limited per account."""
        bucket = self._shared.get(row.platform)
        return bucket.wait(loop_now, self._burst_urgency(lane)) if bucket is not None else 0.0

    def _take(self, unit: _Unit, loop_now: float, cards: Mapping[int, str]) -> None:
        """The unit goes now: counted in its account's bucket at once (the next lane
        chosen in this pass sees it: lanes waiting for the same room take turns)."""
        bucket = self._shared.get(unit.row.platform)
        if bucket is not None:
            bucket.take(loop_now, _urgency(unit), self._messages(unit, cards))

    def _messages(self, unit: _Unit, cards: Mapping[int, str]) -> int:
        """How many messages the unit sends: an edit of a posted card may be more than
        one (Matrix: and a line in its thread)."""
        row = unit.row
        if row.kind != OutboxKind.UPDATE or row.conversation_id not in cards:
            return 1
        platform = self._platforms.get(row.platform)
        if platform is None:
            return 1
        return platform.messages_per_update(view_from_dict(json.loads(unit.payload)))

    def _count_burst_message(self, lane: str, row: OutboxRow, loop_now: float) -> None:
        """The burst card's message, counted against the account's bucket."""
        bucket = self._shared.get(row.platform)
        if bucket is not None:
            bucket.take(loop_now, self._burst_urgency(lane))

    def _take_more(self, platform: Platform, view: View, urgency: Urgency, now: float) -> None:
        """An update that turned out to send more than the one message counted."""
        bucket = self._shared.get(platform.name)
        more = platform.messages_per_update(view) - 1
        if bucket is not None and more > 0:
            bucket.take(now, urgency, more)

    def _spent(self, platform: str, loop_now: float) -> None:
        bucket = self._shared.get(platform)
        if bucket is not None:
            bucket.sent(loop_now)

    def _limited(self, platform: str, retry_after: float) -> None:
        bucket = self._shared.get(platform)
        if bucket is not None:
            bucket.refused(asyncio.get_running_loop().time(), retry_after)

    def _pace_wait(self, row: OutboxRow, lane: str, loop_now: float) -> float:
        """Seconds before this lane may send again (the platform's per-channel rate)."""
        interval = self._pace(row)
        last = self._last_sent.get(lane)
        return 0.0 if not interval or last is None else last + interval - loop_now

    async def _deliver(
        self, row: OutboxRow, cards: dict[int, str], payload: str
    ) -> tuple[bool, str | None]:
        """Send one row; (True, message ref) when it got through. Failures are booked here."""
        lane = _lane(row)
        # The pace counts from when a message leaves (as Slack counts when it arrives),
        # not from its answer: a slow answer does not slow the channel down further.
        started = asyncio.get_running_loop().time()
        try:
            ref = await self._send_bounded(row, cards, payload)
            self._spent(row.platform, asyncio.get_running_loop().time())
            return True, ref
        except _LeaseLost:
            log.info("outbox row %s: lease lapsed while looking it up; left to its taker", row.id)
            raise
        except DeliveryError as exc:
            self._count_failure(row, exc)  # metrics
            await self._failed(row, exc)
        except Exception as exc:  # an adapter bug: keep the row, retry later, report it
            self._on_error(exc, f"outbox row {row.id} ({row.platform})")
            bug = DeliveryError(f"{type(exc).__name__}: {exc}")
            self._count_failure(row, bug)  # metrics
            await self._failed(row, bug)
        finally:
            self._last_sent[lane] = started
        return False, None

    async def _send(self, row: OutboxRow, cards: dict[int, str], payload: str) -> str | None:
        """Send the row, with `payload`: its own view, or the latest of its card's."""
        platform = self._platforms.get(row.platform)
        if platform is None:
            raise DeliveryError(f"platform {row.platform!r} is not running", permanent=True)
        view = view_from_dict(json.loads(payload))
        card_ref = cards.get(row.conversation_id or 0)
        # An edit can simply be redone; an update that posts the card (below) cannot.
        if row.maybe_sent and (row.kind != OutboxKind.UPDATE or card_ref is None):
            found = await self._find_sent(platform, row, card_ref)
            if found is not None:
                return found or None
            # Looking can take long (pages of history, a rate limit): if the lease lapsed
            # meanwhile, another instance may be sending the row this very moment.
            if not await self._still_mine(row):
                raise _LeaseLost()
        # From here on the platform may take it (`_send_bounded`).
        self._handing.add(row.id)
        if row.kind == OutboxKind.SEND:
            return await platform.send(ChannelId(row.target), view, row.key)
        if row.kind == OutboxKind.PRIVATE:
            context = ChannelId(row.context) if row.context else None
            await platform.send_private(PersonId(row.target), view, row.key, context)
            return None
        if card_ref is None:
            if row.kind == OutboxKind.UPDATE:
                # The card never made it (its channel refused the bot then): an update
                # carries the whole card, so it is posted now instead.
                return await platform.send(ChannelId(row.target), view, row.key)
            raise DeliveryError("the card was never posted", permanent=True)
        if row.kind == OutboxKind.REPLY:
            return await platform.reply(ChannelId(row.target), card_ref, view, row.key)
        await platform.update(ChannelId(row.target), card_ref, view, row.key)
        return None

    def _count_failure(self, row: OutboxRow, error: DeliveryError) -> None:  # metrics
        last = row.attempts + 1 >= self._max_attempts
        self._metrics.delivery_failed(row.platform, error, last_attempt=last)

    async def _still_mine(self, row: OutboxRow) -> bool:
        """Renew this worker's lease on the row, if it still holds it."""
        until = self._clock() + LEASE
        async with self._db.transaction() as session:
            renewed = await session.execute(
                _lease_renew_statement(), {"row": row.id, "mine": row.leased_until, "until": until}
            )
        if renewed.rowcount != 1:  # type: ignore[attr-defined]
            return False
        row.leased_until = until
        return True

    async def _find_sent(
        self, platform: Platform, row: OutboxRow, card_ref: str | None
    ) -> str | None:
        try:
            # A slow look-up (pages of a busy channel, rate limits) holds up its lane,
            # and its lease must not lapse meanwhile.
            async with asyncio.timeout(LOOK_UP_BUDGET):
                return await platform.find_sent(
                    row.target,
                    row.key,
                    since=row.created_at,
                    thread=card_ref if row.kind == OutboxKind.REPLY else None,
                    private=row.kind == OutboxKind.PRIVATE,
                )
        except TimeoutError:
            failure = DeliveryError(f"looking for an earlier send took over {LOOK_UP_BUDGET} s")
        except DeliveryError as exc:
            failure = exc
        if not failure.permanent and row.attempts + 2 < self._max_attempts:
            raise failure  # asked again at the next attempt
        # Looking is refused for good (e.g. a scope the app lacks), or has failed until
        # the row's last tries: sending again risks a message twice, not sending loses
        # it. Twice is the lesser harm.
        log.warning("cannot look for row %s's earlier send (%s): sending it", row.id, failure)
        return None

    async def _sent(self, delivered: list[tuple[OutboxRow, str | None]]) -> None:
        """Book a whole pass as sent, and remember where cards went: one statement
        committed on its own when no card was posted (on PostgreSQL one round trip, not
        BEGIN + UPDATE + COMMIT), else one transaction (the rows go with the cards')."""
        self._metrics.delivered(row.platform for row, _ in delivered)  # metrics
        if not delivered:
            return
        now = self._clock()
        posted = [
            {"number": row.conversation_id, "channel": row.target, "ref": ref}
            for row, ref in delivered
            if row.kind in _POSTS_CARD and row.conversation_id and ref
        ]
        ids = [row.id for row, _ in delivered]
        if not posted:
            async with self._db.at_once() as connection:
                await connection.execute(_rows_sent_statement(), {"ids": ids, "now": now})
            return
        async with self._db.transaction() as session:
            await session.execute(_rows_sent_statement(), {"ids": ids, "now": now})
            if posted:
                await session.execute(_card_posted_statement(), posted)  # one executemany

    async def _failed(self, row: OutboxRow, error: DeliveryError) -> None:
        if error.retry_after is not None and not error.uncertain and not error.permanent:
            await self._rate_limited(row, error.retry_after, error.reason)
            return
        attempts = row.attempts + 1
        give_up = error.permanent or attempts >= self._max_attempts
        delay = max(error.retry_after or 0.0, self._backoff.delay(attempts))
        values: dict[str, object] = {
            "leased_until": None,
            "attempts": attempts,
            "last_error": error.reason[:1000],
            "next_attempt_at": self._clock() + timedelta(seconds=delay),
            "maybe_sent": row.maybe_sent or error.uncertain,
        }
        if give_up:
            values["state"] = OutboxState.FAILED
            self._on_error(error, f"outbox row {row.id} to {row.target} failed for good")
        else:
            log.warning(
                "delivery of row %s to %s failed (%s); attempt %d, retrying in %.1fs",
                row.id,
                row.target,
                error.reason,
                attempts,
                delay,
            )
        async with self._db.transaction() as session:
            booked = await session.execute(
                update(OutboxRow)
                # Only while this worker holds it: if its lease lapsed meanwhile, the row
                # is another instance's now, and so is what becomes of it.
                .where(
                    col(OutboxRow.id) == row.id,
                    col(OutboxRow.leased_until) == row.leased_until,
                )
                .values(**values)
            )
        if booked.rowcount != 1:  # type: ignore[attr-defined]
            return
        if error.refused and row.kind != OutboxKind.PRIVATE and self._gave_up is not None:
            # A channel that takes nothing from the bot any more: its admins are told
            # privately (and a private message given up on is not announced).
            day = self._clock().date().isoformat()
            event_id = bounded(f"undeliverable:{day}:{row.target}")
            try:
                await self._gave_up(Undeliverable(event_id, ChannelId(row.target), error.reason))
            except Exception as exc:
                self._on_error(exc, f"announcing outbox row {row.id} given up")

    async def _rate_limited(self, row: OutboxRow, retry_after: float, reason: str) -> None:
        """A 429: the platform said when to try again. Only this lane waits, in memory
        (`_not_before`), and the row is handed back as it was: a rate limit is the
        platform pacing us, not a failure of the row, so it never uses up its attempts."""
        loop_now = asyncio.get_running_loop().time()
        lane = _lane(row)
        self._not_before[lane] = max(self._not_before.get(lane, 0.0), loop_now + retry_after)
        self._limited(row.platform, retry_after)
        log.info("%s is rate-limited (%s): waiting %.1fs", row.target, reason, retry_after)
        async with self._db.transaction() as session:
            await session.execute(
                update(OutboxRow)
                .where(
                    col(OutboxRow.id) == row.id,
                    col(OutboxRow.leased_until) == row.leased_until,
                )
                .values(leased_until=None, last_error=reason[:1000])
            )


# The statements are built once (`cache`): composing one costs more than running it on
# SQLite.


@cache
def _lease_due_statement(instances: bool) -> UpdateBase:
    """Lease rows by id (`ids`, until `until`, in the name of instance `by`) still pending
    and free at `now`; with `instances` (PostgreSQL), also those whose instance is no
    longer alive."""
    free = [
        col(OutboxRow.leased_until).is_(None),
        col(OutboxRow.leased_until) < bindparam("now"),
    ]
    if instances:
        leased_by = col(OutboxRow.leased_by)
        free.append(and_(leased_by.is_not(None), instances_gone(leased_by)))
    return (
        update(OutboxRow)
        .where(
            col(OutboxRow.id).in_(bindparam("ids", expanding=True)),
            col(OutboxRow.state) == OutboxState.PENDING,
            or_(*free),
        )
        .values(
            leased_until=bindparam("until"),
            leased_by=bindparam("by"),
            # a lease still set has lapsed (checked above): its worker died mid-send
            maybe_sent=or_(col(OutboxRow.maybe_sent), col(OutboxRow.leased_until).is_not(None)),
        )
        .returning(col(OutboxRow.id), col(OutboxRow.maybe_sent), col(OutboxRow.attempts))
    )


@cache
def _lease_written_statement() -> UpdateBase:
    """Lease rows by id (`ids`, until `until`) that are new, free, and head their lane:
    no older row of the same lane, outside `ids`, is pending. Returns each row with the
    reference of the card it changes (an update's, a thread reply's; else NULL), as
    `_card_refs` reads it."""
    earlier = aliased(OutboxRow)
    private = OutboxKind.PRIVATE
    lane_waits = exists().where(
        col(earlier.state) == OutboxState.PENDING,
        col(earlier.target) == col(OutboxRow.target),
        (col(earlier.kind) == private) == (col(OutboxRow.kind) == private),
        col(earlier.id) < col(OutboxRow.id),
        col(earlier.id).not_in(bindparam("ids", expanding=True)),
    )
    changes_card = col(OutboxRow.kind).in_((OutboxKind.UPDATE, OutboxKind.REPLY))
    card_ref = case(
        (
            changes_card,
            select(col(Conversation.card_ref))
            .where(col(Conversation.id) == col(OutboxRow.conversation_id))
            .correlate(OutboxRow)
            .scalar_subquery(),
        ),
        else_=None,
    )
    return (
        update(OutboxRow)
        .where(
            col(OutboxRow.id).in_(bindparam("ids", expanding=True)),
            col(OutboxRow.state) == OutboxState.PENDING,
            col(OutboxRow.attempts) == 0,
            col(OutboxRow.leased_until).is_(None),
            ~lane_waits,
        )
        .values(leased_until=bindparam("until"), leased_by=bindparam("by"))
        .returning(OutboxRow, card_ref)
        # rows the session already holds get the new lease too (`_still_mine` reads it)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


@cache
def _lease_renew_statement() -> UpdateBase:
    """Hold row `row` until `until`, if it is still pending and its lease is still `mine`."""
    return (
        update(OutboxRow)
        .where(
            col(OutboxRow.id) == bindparam("row"),
            col(OutboxRow.state) == OutboxState.PENDING,
            col(OutboxRow.leased_until) == bindparam("mine"),
        )
        .values(leased_until=bindparam("until"))
    )


@cache
def _predecessors_statement() -> UpdateBase:
    """Free every pending row still leased (a start on SQLite: its predecessor's), as
    maybe sent: it may have died after the platform took one."""
    return (
        update(OutboxRow)
        .where(
            col(OutboxRow.state) == OutboxState.PENDING,
            col(OutboxRow.leased_until).is_not(None),
        )
        .values(leased_until=None, leased_by=None, maybe_sent=True)
    )


@cache
def _rows_sent_statement() -> UpdateBase:
    """Book rows (`ids`) as sent at `now`."""
    return (
        update(OutboxRow)
        .where(col(OutboxRow.id).in_(bindparam("ids", expanding=True)))
        .values(state=OutboxState.SENT, sent_at=bindparam("now"), attempts=OutboxRow.attempts + 1)
    )


@cache
def _card_posted_statement() -> UpdateBase:
    """Where a card went (`number`, `channel`, `ref`), executed for many at once."""
    conversations = table(Conversation)
    return (
        update(conversations)
        .where(conversations.c.id == bindparam("number"))
        .values(card_channel=bindparam("channel"), card_ref=bindparam("ref"))
    )


async def _card_refs(session: AsyncSession, rows: Iterable[OutboxRow]) -> dict[int, str]:
    wanted = {
        r.conversation_id
        for r in rows
        if r.kind in (OutboxKind.UPDATE, OutboxKind.REPLY) and r.conversation_id
    }
    if not wanted:
        return {}
    found = await session.execute(
        select(col(Conversation.id), col(Conversation.card_ref)).where(
            col(Conversation.id).in_(wanted)
        )
    )
    return {number: ref for number, ref in found if number is not None and ref is not None}


def _by_lane(rows: Iterable[OutboxRow]) -> dict[str, list[OutboxRow]]:
    lanes: dict[str, list[OutboxRow]] = {}
    for row in rows:
        lanes.setdefault(_lane(row), []).append(row)
    return lanes


def _leading(rows: list[OutboxRow], ok: Callable[[OutboxRow], bool]) -> list[OutboxRow]:
    return list(itertools.takewhile(ok, rows))


def _is_new_card(unit: _Unit) -> bool:
    """A new conversation's card, with no change to it waiting (a claimed card's post
    carries its owner and is no longer merely new)."""
    row = unit.row
    return row.kind == OutboxKind.SEND and bool(row.conversation_id) and not unit.also


def _urgency(unit: _Unit) -> Urgency:
    """How much of an account's bucket the unit may use."""
    if unit.row.kind == OutboxKind.PRIVATE:
        return Urgency.ANSWER
    return Urgency.NEW_CARD if _is_new_card(unit) else Urgency.CHANGE


def _lane(row: OutboxRow) -> str:
    return f"{row.kind == OutboxKind.PRIVATE}:{row.target}"


@cache
def _pending_statement() -> Select[OutboxRow]:
    """Pending rows, up to `per_lane` of each lane, in the order a lane sends them:
    changes (updates, thread replies) and notices first, then new cards, each by id.
    Per lane, so that a backlog of a thousand cards in one channel hides no other lane,
    nor the claim written after the backlog in its own. A channel on a platform among
    `overlapped` (no pace: its new cards go several at once) gets `per_overlapped_lane`."""
    private = col(OutboxRow.kind) == OutboxKind.PRIVATE
    overlapped = and_(
        col(OutboxRow.kind) != OutboxKind.PRIVATE,
        col(OutboxRow.platform).in_(bindparam("overlapped", expanding=True)),
    )
    most = case(
        (overlapped, bindparam("per_overlapped_lane", type_=Integer)),
        else_=bindparam("per_lane", type_=Integer),
    )
    rank = func.row_number().over(
        partition_by=(col(OutboxRow.target), private),
        order_by=(_new_card(), col(OutboxRow.id)),
    )
    ranked = (
        select(col(OutboxRow.id).label("id"), rank.label("rank"))
        .where(col(OutboxRow.state) == OutboxState.PENDING)
        .subquery()
    )
    return (
        select(OutboxRow)
        .join(ranked, ranked.c.id == col(OutboxRow.id))
        .where(ranked.c.rank <= most)
        .order_by(_new_card(), col(OutboxRow.id))
    )


def _new_card() -> Any:
    """1 for a row that posts a new conversation card, else 0 (it goes first)."""
    posts = and_(col(OutboxRow.kind) == OutboxKind.SEND, col(OutboxRow.conversation_id).isnot(None))
    return case((posts, 1), else_=0)


async def _queued_posts(
    session: AsyncSession, rows: Sequence[OutboxRow], cards: Mapping[int, str]
) -> dict[tuple[str, int], OutboxRow]:
    """The pending posts of the cards that rows among `rows` change before they are
    posted, by (channel, conversation): such a post goes first, with the latest view."""
    waiting = {
        r.conversation_id
        for r in rows
        if r.kind in (OutboxKind.UPDATE, OutboxKind.REPLY)
        and r.conversation_id
        and r.conversation_id not in cards
    }
    if not waiting:
        return {}
    found = await session.scalars(
        select(OutboxRow)
        .where(
            col(OutboxRow.conversation_id).in_(waiting),
            col(OutboxRow.kind) == OutboxKind.SEND,
            col(OutboxRow.state) == OutboxState.PENDING,
        )
        .order_by(col(OutboxRow.id))
    )
    posts: dict[tuple[str, int], OutboxRow] = {}
    for row in found:
        assert row.conversation_id is not None
        posts.setdefault((row.target, row.conversation_id), row)
    return posts


async def _backlogs(session: AsyncSession) -> dict[str, tuple[int, int]]:
    """Per channel: how many new cards wait to be posted, and the newest one's row id."""
    found = await session.execute(
        select(col(OutboxRow.target), func.count(), func.max(col(OutboxRow.id)))
        .where(
            col(OutboxRow.state) == OutboxState.PENDING,
            col(OutboxRow.kind) == OutboxKind.SEND,
            col(OutboxRow.conversation_id).isnot(None),
        )
        .group_by(col(OutboxRow.target))
    )
    return {target: (int(n), int(newest or 0)) for target, n, newest in found}


def _units(
    rows: Sequence[OutboxRow],
    cards: Mapping[int, str],
    posts: Mapping[tuple[str, int], OutboxRow],
) -> list[_Unit]:
    """A lane's rows (changes first, see `_pending_statement`) as the messages to send:

    - successive updates of one card are one message, the latest view;
    - a change to a card whose post is still queued (`posts`) brings the post forward,
      carrying the latest view, and a thread reply follows it;
    - an update never goes before its card's post.
    """
    latest: dict[int, list[OutboxRow]] = {}
    for row in rows:
        if row.kind == OutboxKind.UPDATE and row.conversation_id:
            latest.setdefault(row.conversation_id, []).append(row)
    units: list[_Unit] = []
    done: set[int | None] = set()
    for row in rows:
        if row.id in done:
            continue
        number = row.conversation_id
        updates = latest.get(number or 0, [])
        post = posts.get((row.target, number or 0))
        if post is None and row.kind == OutboxKind.SEND and number and number not in cards:
            post = row  # a post reached in order, maybe with updates already waiting
        if post is not None and post.id not in done:
            newest = updates[-1].payload if updates else post.payload
            units.append(_Unit(post, newest, [u for u in updates if u.id not in done]))
            done.update(r.id for r in units[-1].rows)
            if row.id in done:
                continue
        elif row.kind == OutboxKind.UPDATE and number:
            moot = [u for u in updates if u.id not in done]
            units.append(_Unit(moot[-1], moot[-1].payload, moot[:-1]))
            done.update(u.id for u in moot)
            continue
        units.append(_Unit(row, row.payload))
        done.add(row.id)
    return units
