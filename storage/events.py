"""Inbound event ids already handled (Slack retries, Matrix re-syncs, webhook re-deliveries)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.dialect import table, upsert
from storage.models import ProcessedEvent


async def first_times(session: AsyncSession, event_ids: Sequence[str], now: datetime) -> list[bool]:
    """Record the ids in one statement; for each, whether this is its first time.

    An id twice in `event_ids` is new only the first time, like a retry.
    """
    if not event_ids:
        return []
    events = table(ProcessedEvent)
    # Parameters as a list (executemany), not .values([...]): the statement stays the
    # same whatever the batch size, so SQLAlchemy compiles it once.
    result = await session.execute(
        upsert(session, events).on_conflict_do_nothing().returning(events.c.event_id),
        # Sorted: two batches inserting the same new ids take their locks in one order
        # (PostgreSQL would otherwise deadlock them).
        [{"event_id": e, "at": now} for e in sorted(set(event_ids))],
    )
    new = set(result.scalars())
    fresh = []
    for event_id in event_ids:
        fresh.append(event_id in new)
        new.discard(event_id)
    return fresh
