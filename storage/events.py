"""Inbound event ids already handled (Slack retries, Matrix re-syncs, webhook re-deliveries)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ProcessedEvent


async def first_time(session: AsyncSession, event_id: str, now: datetime) -> bool:
    """Record the event id; False if it was recorded before. One statement, no savepoint."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(ProcessedEvent).values(event_id=event_id, at=now).on_conflict_do_nothing()
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1
