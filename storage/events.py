"""Inbound event ids already handled (Slack retries, Matrix re-syncs, webhook re-deliveries)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import upsert
from storage.models import ProcessedEvent


async def first_time(session: AsyncSession, event_id: str, now: datetime) -> bool:
    """Record the event id; False if it was recorded before. One statement, no savepoint."""
    return (await first_times(session, [event_id], now))[0]


async def first_times(session: AsyncSession, event_ids: Sequence[str], now: datetime) -> list[bool]:
    """Record the ids in one statement; for each, whether this is its first time.

    An id twice in `event_ids` is new only the first time, like a retry.
    """
    if not event_ids:
        return []
    result = await session.execute(
        upsert(session, ProcessedEvent)
        .values([{"event_id": e, "at": now} for e in dict.fromkeys(event_ids)])
        .on_conflict_do_nothing()
        .returning(col(ProcessedEvent.event_id))
    )
    new = set(result.scalars())
    fresh = []
    for event_id in event_ids:
        fresh.append(event_id in new)
        new.discard(event_id)
    return fresh
