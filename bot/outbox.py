"""The outbox: every message the bot sends is a durable row first, delivered by a worker.

Handlers add rows through `OutboxWriter` in the same transaction as the state
change they announce, so a crash can never leave a change unannounced or announce
a change that was rolled back. `OutboxWorker` delivers the rows:

- in order within a lane (one channel, or one person's private messages): a row
  waits while an earlier row of its lane is pending, so a card is always posted
  before its updates and a burst reaches a channel in the order it was written;
- with retries and exponential backoff, honouring the platform's Retry-After;
- with the row's idempotency key, so a resend after a crash between "sent" and
  "marked sent" is deduplicated by platforms that support it, and is first looked
  up (`Platform.find_sent`) on those that don't;
- pacing each lane to the platform's documented rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.dml import UpdateBase
from sqlmodel import col

from bot.clock import Clock
from bot.events import ChannelId, PersonId, Undeliverable, bounded, platform_of
from bot.metrics import Metrics
from bot.platform import DeliveryError, Platform
from bot.views import View, view_from_dict, view_to_dict
from storage.database import Database
from storage.dialect import table
from storage.models import Conversation, OutboxKind, OutboxRow, OutboxState

log = logging.getLogger(__name__)

ErrorHook = Callable[[BaseException, str], None]
#: how long a worker holds the rows it is delivering
LEASE = timedelta(seconds=60)
#: seconds a row's look-up for an earlier send may take (`Platform.find_sent`)
LOOK_UP_BUDGET = 10.0


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


class _LeaseLost(Exception):
    """Another worker took the row while this one was looking it up: it is theirs now."""


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0
    factor: float = 2.0
    cap: float = 300.0

    def delay(self, attempts: int) -> float:
        return min(self.cap, self.first * self.factor ** max(0, attempts - 1))


class OutboxWorker:
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
        batch: int = 200,
        metrics: Metrics | None = None,
        gave_up: Callable[[Undeliverable], Awaitable[object]] | None = None,
    ):
        self._db = db
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
        self._batch = batch
        #: told of a channel message given up on for good (the core tells the admins)
        self._gave_up = gave_up
        self._last_sent: dict[str, float] = {}
        self._written: set[int] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        #: counts kicks, so the worker only reports idle after seeing the latest one
        self._kicks = 0
        self._task: asyncio.Task[None] | None = None

    def kick(self, written: Iterable[int] = ()) -> None:
        """New rows were committed: deliver them now rather than at the next poll.

        `written` are their ids, when known: those are leased and sent straight away,
        without first reading what is pending (the latency of every answer).
        """
        self._written.update(written)
        self._kicks += 1
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def settle(self) -> None:
        """Wait until nothing is due right now (rows waiting on a backoff don't count)."""
        if self._task is None:
            while await self.deliver_due() == 0:
                pass
            return
        self.kick()
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            seen = self._kicks
            self._wake.clear()
            try:
                wait = await self.deliver_due()
            except Exception as exc:  # the worker must outlive a database hiccup
                self._on_error(exc, "outbox worker")
                wait = self._backoff.first
            if (wait is None or wait > 0) and seen == self._kicks:
                self._idle.set()
            if wait == 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait if wait is not None else 5.0)

    async def deliver_due(self) -> float | None:
        """Deliver what is due, lanes concurrently, each lane in order.

        An unpaced lane sends all its due rows in one pass (a burst of a hundred cards
        costs two transactions, not two hundred); a paced one sends its head only.
        Returns 0 if more may be due at once, else the seconds until the next row
        becomes due (None when nothing is pending).
        """
        if self._written:
            written, self._written = sorted(self._written), set()
            await self._deliver_written(written)
            return 0  # and now whatever else may be due
        now = self._clock()
        # Reading takes no write lock (idle polls are free on SQLite); the lease below
        # re-checks each row, so with several instances on one database each row is
        # delivered by one of them.
        async with self._db.read() as session:
            rows = (
                await session.scalars(
                    select(OutboxRow)
                    .where(col(OutboxRow.state) == OutboxState.PENDING)
                    .order_by(col(OutboxRow.id))
                    .limit(self._batch)
                )
            ).all()
            # An update edits the card an earlier row posted: sent by now, or in this
            # pass ahead of it in its lane (then `_send_lane` notes the reference).
            cards = await _card_refs(session, rows)
        lanes = _by_lane(rows)
        due, waits = self._due(lanes, now)
        if not due:
            return max(0.01, min(waits)) if waits else None
        async with self._db.transaction() as session:
            taken = await self._lease(session, [r for q in due.values() for r in q], now)
        # A lane goes only as far as its first row another instance holds.
        leased = {
            lane: cut for lane, q in due.items() if (cut := _leading(q, lambda r: r.id in taken))
        }
        mine = [r for q in due.values() for r in q if r.id in taken]
        passes = await self._send_leased(leased, mine, cards)
        if not leased:
            return 1.0  # another instance is delivering them
        if len(rows) == self._batch or any(
            len(sent) < len(lanes[lane]) for lane, sent in zip(leased, passes, strict=True)
        ):
            return 0  # more may be due now
        return max(0.01, min(waits)) if waits else None

    async def _deliver_written(self, ids: list[int]) -> None:
        """Send rows just committed, if each heads its lane (nothing older of its lane is
        pending) and its lane's pace allows: one transaction leases them, no read first.
        What cannot go now is left to the ordinary pass, which follows."""
        # ids arrive sorted; the statement lets an earlier row of the same lane through
        # only if it is among them, hence all of them or none.
        now = self._clock()
        async with self._db.transaction() as session:
            leased = await session.scalars(
                _lease_written_statement(), {"ids": ids, "until": now + LEASE}
            )
            rows = leased.all()
            cards = await _card_refs(session, rows)
        if len(rows) < len(ids):
            # One of them could not go now (another instance holds it, or it is backing
            # off): rows of its lane behind it must not jump it. The ordinary pass, which
            # sees whole lanes, sorts that out.
            await self._release(list(rows))
            return
        due, _ = self._due(_by_lane(sorted(rows, key=lambda r: r.id or 0)), now)
        await self._send_leased(due, rows, cards)

    async def _send_leased(
        self,
        due: dict[str, list[OutboxRow]],
        leased: Sequence[OutboxRow],
        cards: dict[int, str],
    ) -> list[list[tuple[OutboxRow, str | None]]]:
        """Send the due lanes (each in order, lanes at once) and book the pass; leased rows
        that are not due now are handed back. What each lane sent, by lane."""
        sending = {row.id for q in due.values() for row in q}
        await self._release([row for row in leased if row.id not in sending])
        passes = await asyncio.gather(*(self._send_lane(q, cards) for q in due.values()))
        await self._sent([sent for lane_sent in passes for sent in lane_sent])
        return passes

    def _due(
        self, lanes: dict[str, list[OutboxRow]], now: datetime
    ) -> tuple[dict[str, list[OutboxRow]], list[float]]:
        """The rows to send now, by lane, and the seconds other lanes must wait."""
        loop_now = asyncio.get_running_loop().time()
        due: dict[str, list[OutboxRow]] = {}
        waits = []
        for lane, queued in lanes.items():
            head = queued[0]
            wait = max(
                self._backoff_wait(head, now), self._pace_wait(head.platform, lane, loop_now)
            )
            if wait > 0:
                waits.append(wait)
            elif self._pacing.get(head.platform, 0.0):
                due[lane] = [head]
            else:
                due[lane] = _leading(queued, lambda r: self._backoff_wait(r, now) <= 0)
        return due, waits

    @staticmethod
    def _backoff_wait(row: OutboxRow, now: datetime) -> float:
        # A new row is due at once: its next_attempt_at is the handler's (domain)
        # clock, which a test may have moved days ahead; retries use real time.
        return (row.next_attempt_at - now).total_seconds() if row.attempts else 0.0

    async def _lease(
        self, session: AsyncSession, rows: list[OutboxRow], now: datetime
    ) -> set[int | None]:
        """Take the rows for this worker: with several instances on one database, each row
        is delivered by one of them. A lease outlives a crash by LEASE, then lapses and the
        row is resent, marked `maybe_sent`."""
        result = await session.execute(
            _lease_due_statement(),
            {"ids": [row.id for row in rows], "now": now, "until": now + LEASE},
        )
        taken: dict[int | None, bool] = dict(result.all())  # id → maybe_sent
        for row in rows:
            if row.id in taken:
                # What the statement set: the row's lease may have lapsed on a dead worker.
                row.maybe_sent = taken[row.id]
                row.leased_until = now + LEASE
        return set(taken)

    async def _send_lane(
        self, rows: list[OutboxRow], cards: dict[int, str]
    ) -> list[tuple[OutboxRow, str | None]]:
        """Send a lane's rows in order, stopping at the first failure (order is the lane's
        promise): the rows after it are handed back, to go after it when it is retried."""
        sent: list[tuple[OutboxRow, str | None]] = []
        loop = asyncio.get_running_loop()
        # Stop well before the lease lapses: another instance would then take the rest.
        deadline = loop.time() + LEASE.total_seconds() / 2
        try:
            for i, row in enumerate(rows):
                try:
                    ok, ref = await self._deliver(row, cards)
                except _LeaseLost:
                    break  # the rows behind it lapsed with it: theirs too, not ours
                if ok:
                    sent.append((row, ref))
                    if row.kind in _POSTS_CARD and row.conversation_id and ref:
                        cards[row.conversation_id] = ref
                if not ok or loop.time() > deadline:
                    await self._release(rows[i + 1 :])
                    break
        except Exception as exc:
            # A database error booking a failure: what was sent must still be booked
            # as sent (or it would go out again when the lease lapses).
            self._on_error(exc, "outbox lane")
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
                        .values(leased_until=None)
                    )

    def _pace_wait(self, platform: str, lane: str, loop_now: float) -> float:
        """Seconds before this lane may send again (the platform's per-channel rate)."""
        interval = self._pacing.get(platform, 0.0)
        last = self._last_sent.get(lane)
        return 0.0 if not interval or last is None else last + interval - loop_now

    async def _deliver(self, row: OutboxRow, cards: dict[int, str]) -> tuple[bool, str | None]:
        """Send one row; (True, message ref) when it got through. Failures are booked here."""
        lane = _lane(row)
        try:
            return True, await self._send(row, cards)
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
            self._last_sent[lane] = asyncio.get_running_loop().time()
        return False, None

    async def _send(self, row: OutboxRow, cards: dict[int, str]) -> str | None:
        platform = self._platforms.get(row.platform)
        if platform is None:
            raise DeliveryError(f"platform {row.platform!r} is not running", permanent=True)
        view = view_from_dict(json.loads(row.payload))
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
            # Lanes go together and a pass is booked when all are done: a slow look-up
            # (pages of a busy channel, rate limits) must not hold up every channel.
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
        """Book a whole pass as sent in one transaction, and remember where cards went."""
        self._metrics.delivered(row.platform for row, _ in delivered)  # metrics
        if not delivered:
            return
        now = self._clock()
        posted = [
            {"number": row.conversation_id, "channel": row.target, "ref": ref}
            for row, ref in delivered
            if row.kind in _POSTS_CARD and row.conversation_id and ref
        ]
        async with self._db.transaction() as session:
            await session.execute(
                _rows_sent_statement(), {"ids": [row.id for row, _ in delivered], "now": now}
            )
            if posted:
                await session.execute(_card_posted_statement(), posted)  # one executemany

    async def _failed(self, row: OutboxRow, error: DeliveryError) -> None:
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
                "delivery to %s failed (%s); attempt %d, retrying in %.1fs",
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


# The statements are built once (`cache`): composing one costs more than running it on
# SQLite.


@cache
def _lease_due_statement() -> UpdateBase:
    """Lease rows by id (`ids`, until `until`) still pending and free at `now`."""
    return (
        update(OutboxRow)
        .where(
            col(OutboxRow.id).in_(bindparam("ids", expanding=True)),
            col(OutboxRow.state) == OutboxState.PENDING,
            or_(
                col(OutboxRow.leased_until).is_(None),
                col(OutboxRow.leased_until) < bindparam("now"),
            ),
        )
        .values(
            leased_until=bindparam("until"),
            # a lease still set has lapsed (checked above): its worker died mid-send
            maybe_sent=or_(col(OutboxRow.maybe_sent), col(OutboxRow.leased_until).is_not(None)),
        )
        .returning(col(OutboxRow.id), col(OutboxRow.maybe_sent))
    )


@cache
def _lease_written_statement() -> UpdateBase:
    """Lease rows by id (`ids`, until `until`) that are new, free, and head their lane:
    no older row of the same lane, outside `ids`, is pending."""
    earlier = aliased(OutboxRow)
    private = OutboxKind.PRIVATE
    lane_waits = exists().where(
        col(earlier.state) == OutboxState.PENDING,
        col(earlier.target) == col(OutboxRow.target),
        (col(earlier.kind) == private) == (col(OutboxRow.kind) == private),
        col(earlier.id) < col(OutboxRow.id),
        col(earlier.id).not_in(bindparam("ids", expanding=True)),
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
        .values(leased_until=bindparam("until"))
        .returning(OutboxRow)
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


def _lane(row: OutboxRow) -> str:
    return f"{row.kind == OutboxKind.PRIVATE}:{row.target}"
