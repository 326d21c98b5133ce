"""Where each channel's burst card is, so that a restarted worker updates the card it
had posted rather than post another, and a reaction to it is understood.

A burst card is an outbox row of its own kind (`OutboxKind.BURST`; born sent: no worker
ever delivers it), one per channel at a time (its key is the channel's, `_key`), with
the message's reference in `context` once posted, and the time the burst began in
`created_at`. The row lives while the burst does: it is deleted when the burst card says
every card is posted.

With several instances on one database, each sees the same backlog at the same moment:
the row is taken (`take`) before the card is posted or updated, and held (`leased_by`,
`leased_until`) by the one instance that shows it, so a channel gets one burst card per
burst, not one per instance. A holder that stopped showing it (dead, or its lease
lapsed) is succeeded by the next instance that takes it, which goes on with the same
card.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import table, upsert
from storage.duties import gone
from storage.models import OutboxKind, OutboxRow, OutboxState


@dataclass(frozen=True)
class BurstCard:
    channel: str
    #: the platform's reference of the message
    ref: str
    #: when the burst began: the card counts what arrived since
    since: datetime


@dataclass(frozen=True)
class Taken:
    """A channel's burst card, taken by one worker to show it."""

    #: where it is; None: not known to be posted (the taker posts it)
    ref: str | None
    #: when the burst began
    since: datetime
    #: the idempotency key its post carries (the same for every holder of this burst,
    #: so that a holder that died between posting it and noting where it went is found)
    post_key: str
    #: the row is new: nobody can have posted its card yet
    new: bool


def _key(channel: str) -> str:
    """The key of a channel's burst row: one row per channel at a time."""
    return "burst:" + hashlib.sha1(channel.encode()).hexdigest()


async def take(
    session: AsyncSession,
    platform: str,
    channel: str,
    *,
    by: str | None,
    since: datetime,
    now: datetime,
    until: datetime,
    instances: bool,
) -> Taken | None:
    """Hold `channel`'s burst card until `until`, in the name of instance `by`: a new one
    (beginning `since`), or the one going on if it is free: with `instances`
    (PostgreSQL), held by `by` already, or its lease lapsed at `now`, or its holder is
    no longer alive; else (one instance) always. None: another instance holds it now,
    and shows it."""
    outbox = table(OutboxRow)
    post_key = uuid.uuid4().hex
    new = await session.execute(
        upsert(session, outbox)
        .values(
            key=_key(channel),
            platform=platform,
            kind=OutboxKind.BURST,
            target=channel,
            # what it shows, once posted; until then the key its post carries
            payload=json.dumps({"post_key": post_key}),
            state=OutboxState.SENT,
            attempts=0,
            next_attempt_at=now,
            created_at=since,
            leased_by=by,
            leased_until=until,
            maybe_sent=False,
        )
        .on_conflict_do_nothing()
        .returning(outbox.c.id)
    )
    if new.first() is not None:
        return Taken(None, since, post_key, new=True)
    holder = col(OutboxRow.leased_by)
    free = or_(
        holder.is_not_distinct_from(by),
        col(OutboxRow.leased_until).is_(None),
        col(OutboxRow.leased_until) < now,
        holder.is_not(None) & gone(holder),
    )
    found = (
        await session.execute(
            update(OutboxRow)
            # One instance (SQLite): another holder can only be its predecessor.
            .where(col(OutboxRow.key) == _key(channel), free if instances else true())
            .values(leased_by=by, leased_until=until)
            .returning(col(OutboxRow.context), col(OutboxRow.created_at), col(OutboxRow.payload))
        )
    ).first()
    if found is None:
        return None
    ref, began, payload = found
    if ref is None:  # not posted, or posted by a holder that died before noting it
        post_key = str(json.loads(payload).get("post_key") or post_key)
    return Taken(ref, began, post_key, new=False)


async def going_on(session: AsyncSession) -> list[BurstCard]:
    """Every channel's burst card still going on."""
    rows = await session.scalars(
        select(OutboxRow).where(col(OutboxRow.kind) == OutboxKind.BURST).order_by(col(OutboxRow.id))
    )
    latest = {row.target: row for row in rows if row.context is not None}
    return [BurstCard(r.target, r.context, r.created_at) for r in latest.values() if r.context]


async def channel_of(session: AsyncSession, ref: str) -> str | None:
    """The channel whose burst card (still going on) is the message `ref`."""
    channel: str | None = await session.scalar(
        select(col(OutboxRow.target)).where(
            col(OutboxRow.kind) == OutboxKind.BURST, col(OutboxRow.context) == ref
        )
    )
    return channel


async def posted(
    session: AsyncSession, channel: str, ref: str, view: dict[str, object], now: datetime
) -> None:
    """`channel`'s burst card (taken, `take`) was posted: it is the message `ref`."""
    await session.execute(
        update(OutboxRow)
        .where(col(OutboxRow.kind) == OutboxKind.BURST, col(OutboxRow.key) == _key(channel))
        .values(
            context=ref,
            payload=json.dumps(view, ensure_ascii=False),
            attempts=OutboxRow.attempts + 1,
            sent_at=now,
        )
    )


async def shown(session: AsyncSession, ref: str, view: dict[str, object], now: datetime) -> None:
    """The burst card `ref` now shows `view`."""
    await session.execute(
        update(OutboxRow)
        .where(col(OutboxRow.kind) == OutboxKind.BURST, col(OutboxRow.context) == ref)
        .values(payload=json.dumps(view, ensure_ascii=False), sent_at=now)
    )


async def over(session: AsyncSession, channel: str) -> None:
    """`channel`'s burst is over (its card says so, or it ended before it was posted): a
    new burst gets a new card."""
    await session.execute(
        delete(OutboxRow).where(
            col(OutboxRow.kind) == OutboxKind.BURST, col(OutboxRow.target) == channel
        )
    )
