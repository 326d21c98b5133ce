"""Queries about commitments, dialogue sessions and away periods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Away, Commitment, Conversation, DialogueSession, SessionOutcome, Status


@dataclass(frozen=True)
class Plan:
    """What the scheduler needs of one active commitment."""

    id: int
    days: str
    start: str
    timezone: str
    created_at: datetime
    #: the latest occurrence already recorded, if any
    last_start: datetime | None


async def plans(session: AsyncSession, above_id: int = 0) -> list[Plan]:
    """Every active commitment with id > above_id, with its latest recorded occurrence."""
    last = (
        select(
            col(DialogueSession.commitment_id).label("cid"),
            func.max(col(DialogueSession.occurrence_start)).label("last_start"),
        )
        .where(col(DialogueSession.commitment_id) > above_id)
        .group_by(col(DialogueSession.commitment_id))
        .subquery()
    )
    rows = await session.execute(
        select(
            col(Commitment.id),
            col(Commitment.days),
            col(Commitment.start),
            col(Commitment.timezone),
            col(Commitment.created_at),
            last.c.last_start,
        )
        .outerjoin(last, last.c.cid == col(Commitment.id))
        .where(col(Commitment.ended_at).is_(None), col(Commitment.id) > above_id)
        .order_by(col(Commitment.id))
    )
    # raw column values: the UTC type decorator is applied to the model columns
    # only, so the aggregate may come back naive on SQLite
    out = []
    for cid, days, start, tz, created, last_start in rows:
        out.append(Plan(cid, days, start, tz, created, _aware(last_start)))
    return out


def _aware(value: object) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands an aggregate of a DATETIME back as text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def of_person(session: AsyncSession, person_id: int) -> Sequence[Commitment]:
    return (
        await session.scalars(
            select(Commitment)
            .where(col(Commitment.person_id) == person_id, col(Commitment.ended_at).is_(None))
            .order_by(col(Commitment.id))
        )
    ).all()


async def record_occurrence(session: AsyncSession, row: DialogueSession) -> int | None:
    """Insert the occurrence's row unless it exists: its id, or None if another got there first.

    One statement (INSERT … ON CONFLICT DO NOTHING on the unique (commitment,
    start)), so two instances, or a restart racing a running bot, cannot both win.
    """
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = DialogueSession.__table__  # type: ignore[attr-defined]
    values = {c.name: getattr(row, c.name) for c in table.columns if c.name != "id"}
    result = await session.execute(
        insert(DialogueSession)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["commitment_id", "occurrence_start"])
        .returning(col(DialogueSession.id))
    )
    return result.scalar()


async def lock_session(session: AsyncSession, session_id: int) -> DialogueSession | None:
    return (
        await session.scalars(
            select(DialogueSession)
            .where(col(DialogueSession.id) == session_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()


async def due_sessions(
    session: AsyncSession, now: datetime, limit: int
) -> list[tuple[int, datetime]]:
    rows = await session.execute(
        select(col(DialogueSession.id), col(DialogueSession.next_at))
        .where(col(DialogueSession.next_at) <= now)
        .order_by(col(DialogueSession.next_at), col(DialogueSession.id))
        .limit(limit)
    )
    return [(sid, at) for sid, at in rows if sid is not None and at is not None]


async def next_session_at(session: AsyncSession) -> datetime | None:
    value = await session.scalar(select(func.min(col(DialogueSession.next_at))))
    return _aware(value)


async def last_outcome(session: AsyncSession, commitment_id: int) -> DialogueSession | None:
    return (
        await session.scalars(
            select(DialogueSession)
            .where(col(DialogueSession.commitment_id) == commitment_id)
            .order_by(col(DialogueSession.occurrence_start).desc())
            .limit(1)
        )
    ).first()


async def away_until(session: AsyncSession, person_id: int) -> str | None:
    away = await session.get(Away, person_id)
    return away.until if away else None


async def claimed_unreplied(session: AsyncSession, person_id: int) -> Sequence[Conversation]:
    """Conversations the person claimed and has not answered yet, oldest first."""
    return (
        await session.scalars(
            select(Conversation)
            .where(
                col(Conversation.owner_id) == person_id,
                col(Conversation.status) == Status.CLAIMED,
            )
            .order_by(col(Conversation.created_at), col(Conversation.id))
        )
    ).all()


PENDING = (
    SessionOutcome.REMINDED,
    SessionOutcome.SNOOZED,
    SessionOutcome.STARTED,
    SessionOutcome.CHECKIN,
)
