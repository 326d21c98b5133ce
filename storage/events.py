"""Inbound event ids already handled (Slack retries, Matrix re-syncs, webhook re-deliveries)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import Select
from sqlmodel import col

from storage.dialect import table, upsert
from storage.models import Person, ProcessedEvent
from storage.people import find


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


async def first_time_by(
    session: AsyncSession, event_id: str, sender: str, now: datetime
) -> tuple[bool, Person | None]:
    """`first_times` of one event, and its sender's row (None: not met yet, or the event
    is not new). On PostgreSQL in one statement, a round trip less for every command;
    SQLite cannot put an INSERT in a WITH (and crosses no network): two there."""
    if session.get_bind().dialect.name == "sqlite":
        [new] = await first_times(session, [event_id], now)
        return new, (await find(session, sender) if new else None)
    found = (
        await session.execute(
            _first_time_by_statement(), {"event_id": event_id, "at": now, "ref": sender}
        )
    ).first()
    if found is None:
        return False, None  # nothing inserted: handled before
    return True, found[1]


@cache
def _first_time_by_statement() -> Select[str, Person]:
    events = table(ProcessedEvent)
    fresh = (
        postgresql.insert(events)
        .values(event_id=bindparam("event_id"), at=bindparam("at"))
        .on_conflict_do_nothing()
        .returning(events.c.event_id)
        .cte("fresh")
    )
    # One row if the event is new, with the sender or NULLs; none if it is not.
    return (
        select(fresh.c.event_id, Person)
        .select_from(fresh)
        .outerjoin(Person, col(Person.ref) == bindparam("ref"))
    )
