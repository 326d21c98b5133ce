"""Where each channel's burst card is, so that a restarted worker updates the card it
had posted rather than post another, and a reaction to it is understood.

A burst card is an outbox row of its own kind (`OutboxKind.BURST`), written once the
worker has posted it (born sent: no worker ever delivers it), with the message's
reference in `context`, and the time the burst began in `created_at`. The row lives
while the burst does: it is deleted when the burst card says every card is posted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import OutboxKind, OutboxRow, OutboxState


@dataclass(frozen=True)
class BurstCard:
    channel: str
    #: the platform's reference of the message
    ref: str
    #: when the burst began: the card counts what arrived since
    since: datetime


async def of_channel(session: AsyncSession, channel: str) -> BurstCard | None:
    """The channel's burst card still going on, if one is."""
    row = await session.scalar(
        select(OutboxRow)
        .where(col(OutboxRow.kind) == OutboxKind.BURST, col(OutboxRow.target) == channel)
        .order_by(col(OutboxRow.id).desc())
        .limit(1)
    )
    if row is None or row.context is None:
        return None
    return BurstCard(row.target, row.context, row.created_at)


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
    session: AsyncSession,
    platform: str,
    channel: str,
    ref: str,
    key: str,
    since: datetime,
    view: dict[str, object],
    now: datetime,
) -> None:
    """The burst card `ref` was posted in `channel` of `platform` (with idempotency key
    `key`)."""
    session.add(
        OutboxRow(
            key=key,
            platform=platform,
            kind=OutboxKind.BURST,
            target=channel,
            context=ref,
            payload=json.dumps(view, ensure_ascii=False),
            state=OutboxState.SENT,
            attempts=1,
            next_attempt_at=now,
            created_at=since,
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


async def over(session: AsyncSession, ref: str) -> None:
    """The burst of card `ref` is over (its card says so): a new burst gets a new card."""
    await session.execute(
        delete(OutboxRow).where(
            col(OutboxRow.kind) == OutboxKind.BURST, col(OutboxRow.context) == ref
        )
    )
