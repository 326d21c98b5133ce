"""Queries about advice requests and the consultants' pools."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import AdviceMessage, AdviceRequest, AdviceStatus

ACTIVE = (AdviceStatus.OPEN, AdviceStatus.TAKEN, AdviceStatus.ANSWERED)


async def lock(session: AsyncSession, conversation_id: int, seq: int) -> AdviceRequest | None:
    """The request `N-A<seq>`, locked like a conversation is for a claim."""
    return (
        await session.scalars(
            select(AdviceRequest)
            .where(
                col(AdviceRequest.conversation_id) == conversation_id,
                col(AdviceRequest.seq) == seq,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()


async def next_seq(session: AsyncSession, conversation_id: int) -> int:
    highest = await session.scalar(
        select(func.max(AdviceRequest.seq)).where(
            col(AdviceRequest.conversation_id) == conversation_id
        )
    )
    return int(highest or 0) + 1


async def asked_of(session: AsyncSession, consultant_id: int, conversation_id: int) -> bool:
    """Whether this consultant was asked about this conversation (their whole scope)."""
    found = await session.scalar(
        select(col(AdviceRequest.id)).where(
            col(AdviceRequest.consultant_id) == consultant_id,
            col(AdviceRequest.conversation_id) == conversation_id,
        )
    )
    return found is not None


async def open_for(session: AsyncSession, person_id: int) -> Sequence[AdviceRequest]:
    """Requests still going that this person asked or must answer, oldest first."""
    return (
        await session.scalars(
            select(AdviceRequest)
            .where(
                col(AdviceRequest.status).in_(ACTIVE),
                or_(
                    col(AdviceRequest.consultant_id) == person_id,
                    col(AdviceRequest.asked_by) == person_id,
                ),
            )
            .order_by(col(AdviceRequest.created_at), col(AdviceRequest.id))
        )
    ).all()


async def untaken(session: AsyncSession) -> Sequence[AdviceRequest]:
    """Requests waiting in the consultants' pool that no consultant took yet, oldest first."""
    return (
        await session.scalars(
            select(AdviceRequest)
            .where(
                col(AdviceRequest.status) == AdviceStatus.OPEN,
                col(AdviceRequest.consultant_id).is_(None),
            )
            .order_by(col(AdviceRequest.created_at), col(AdviceRequest.id))
        )
    ).all()


async def first_questions(session: AsyncSession, request_ids: Sequence[int]) -> dict[int, str]:
    """The question each request was asked with, in one query (a list shows many)."""
    if not request_ids:
        return {}
    first = (
        select(func.min(col(AdviceMessage.id)))
        .where(col(AdviceMessage.request_id).in_(request_ids))
        .group_by(col(AdviceMessage.request_id))
    )
    rows = await session.execute(
        select(col(AdviceMessage.request_id), col(AdviceMessage.text)).where(
            col(AdviceMessage.id).in_(first)
        )
    )
    return dict(rows.all())


async def overdue(session: AsyncSession, asked_before: datetime) -> Sequence[AdviceRequest]:
    """Requests unanswered since before `asked_before` that nobody was reminded of yet."""
    return (
        await session.scalars(
            select(AdviceRequest)
            .where(
                col(AdviceRequest.status).in_((AdviceStatus.OPEN, AdviceStatus.TAKEN)),
                col(AdviceRequest.created_at) <= asked_before,
                col(AdviceRequest.reminded_at).is_(None),
            )
            .order_by(col(AdviceRequest.id))
            .with_for_update()
        )
    ).all()
