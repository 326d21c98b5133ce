"""Queries about commitments, dialogue sessions and away periods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import upsert
from storage.models import (
    Away,
    Commitment,
    Conversation,
    DialogueSession,
    Person,
    SessionOutcome,
    Status,
)


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
    return [Plan(*row) for row in rows]


async def occurrence_contexts(
    session: AsyncSession, commitment_ids: Sequence[int]
) -> list[tuple[Commitment, Person, str | None]]:
    """Commitments with their person and that person's last day away, in one query,
    ordered by commitment (the order the rows are then inserted in)."""
    rows = await session.execute(
        select(Commitment, Person, col(Away.until))
        .join(Person, col(Person.id) == col(Commitment.person_id))
        .outerjoin(Away, col(Away.person_id) == col(Commitment.person_id))
        .where(col(Commitment.id).in_(commitment_ids))
        .order_by(col(Commitment.id))
    )
    return [(c, p, until) for c, p, until in rows.all()]


async def of_person(session: AsyncSession, person_id: int) -> Sequence[Commitment]:
    return (
        await session.scalars(
            select(Commitment)
            .where(col(Commitment.person_id) == person_id, col(Commitment.ended_at).is_(None))
            .order_by(col(Commitment.id))
        )
    ).all()


async def record_occurrences(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> dict[int, int]:
    """Insert the occurrences' rows, skipping those that exist: {commitment id: row id}
    of the rows this call inserted.

    One statement (INSERT … ON CONFLICT DO NOTHING on the unique (commitment,
    start) … RETURNING), so two instances, or a restart racing a running bot,
    can never both win one occurrence. `rows` are `DialogueSession` columns as
    plain dicts: a thousand of them come in the minute when everyone's blocks start.
    """
    if not rows:
        return {}
    result = await session.execute(
        upsert(session, DialogueSession)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["commitment_id", "occurrence_start"])
        .returning(col(DialogueSession.commitment_id), col(DialogueSession.id))
    )
    return {cid: sid for cid, sid in result.all() if cid is not None and sid is not None}


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
    return await session.scalar(select(func.min(col(DialogueSession.next_at))))


async def last_outcomes(session: AsyncSession, commitment_ids: Sequence[int]) -> dict[int, str]:
    """The outcome of each commitment's latest occurrence, in one query."""
    if not commitment_ids:
        return {}
    latest = (
        select(col(DialogueSession.commitment_id), func.max(col(DialogueSession.occurrence_start)))
        .where(col(DialogueSession.commitment_id).in_(commitment_ids))
        .group_by(col(DialogueSession.commitment_id))
    )
    rows = await session.execute(
        select(col(DialogueSession.commitment_id), col(DialogueSession.outcome)).where(
            tuple_(col(DialogueSession.commitment_id), col(DialogueSession.occurrence_start)).in_(
                latest
            )
        )
    )
    return {cid: outcome for cid, outcome in rows if cid is not None}


async def claimed_unreplied(session: AsyncSession) -> dict[int, list[Conversation]]:
    """Everyone's claimed conversations not answered yet, by owner, oldest first.

    All at once: reminders come in batches, and conversations waiting on their
    owner are few next to the people reminded in one minute.
    """
    rows = await session.scalars(
        select(Conversation)
        .where(col(Conversation.status) == Status.CLAIMED)
        .order_by(col(Conversation.created_at), col(Conversation.id))
    )
    found: dict[int, list[Conversation]] = {}
    for conversation in rows:
        if conversation.owner_id is not None:
            found.setdefault(conversation.owner_id, []).append(conversation)
    return found


PENDING = (
    SessionOutcome.REMINDED,
    SessionOutcome.SNOOZED,
    SessionOutcome.STARTED,
    SessionOutcome.CHECKIN,
)
