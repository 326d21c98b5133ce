"""The inbox's rows (bot/inbox.py): requests acknowledged to a platform, not yet handled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import table, upsert
from storage.duties import gone
from storage.models import InboxRow


async def record(
    session: AsyncSession, key: str, platform: str, body: str, receiver: str, now: datetime
) -> None:
    """Keep the request `key` (a second delivery of it keeps the first row)."""
    rows = table(InboxRow)
    await session.execute(
        upsert(session, rows)
        .values(key=key, platform=platform, body=body, receiver=receiver, received_at=now)
        .on_conflict_do_nothing()
    )


async def done(session: AsyncSession, key: str) -> None:
    await session.execute(delete(InboxRow).where(col(InboxRow.key) == key))


#: the receiver of a request kept for a retry (`later`): no instance is named so, so the
#: next sweep of any instance takes it (`take_orphans`)
LATER = "later"


async def later(session: AsyncSession, key: str, *, received_after: datetime) -> bool:
    """Keep the request `key` for a retry, if it was received after `received_after`;
    else drop it. Whether it was kept."""
    kept = await session.execute(
        update(InboxRow)
        .where(col(InboxRow.key) == key, col(InboxRow.received_at) > received_after)
        .values(receiver=LATER)
    )
    if kept.rowcount == 1:  # type: ignore[attr-defined]
        return True
    await done(session, key)
    return False


async def take_orphans(
    session: AsyncSession,
    platform: str,
    receiver: str,
    *,
    before: datetime,
    instances: bool,
) -> list[tuple[str, str, datetime]]:
    """Take for `receiver` the `platform`'s rows received before `before` by an instance
    that is gone: with `instances` (PostgreSQL), one whose liveness has ended; else (one
    instance, SQLite) any other than `receiver`, which can only be its predecessor.
    Returns (key, body, received_at) of each, oldest first."""
    other = col(InboxRow.receiver) != receiver
    orphaned = gone(col(InboxRow.receiver)) if instances else other
    taken = await session.execute(
        update(InboxRow)
        .where(
            col(InboxRow.platform) == platform,
            col(InboxRow.received_at) < before,
            other,
            orphaned,
        )
        .values(receiver=receiver)
        .returning(col(InboxRow.key), col(InboxRow.body), col(InboxRow.received_at))
    )
    return sorted(((k, b, at) for k, b, at in taken.all()), key=lambda row: (row[2], row[0]))


async def waiting(session: AsyncSession) -> int:
    """How many requests wait to be handled (acknowledged, not yet handled)."""
    return len((await session.scalars(select(col(InboxRow.key)))).all())
