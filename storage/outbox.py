"""Queries about the outbox (the worker itself lives in bot/outbox.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import OutboxKind, OutboxRow


async def card_queued(session: AsyncSession, conversation_id: int) -> bool:
    """Whether a row that posts this conversation's card exists (sent or not)."""
    row = await session.scalar(
        select(col(OutboxRow.id)).where(
            col(OutboxRow.conversation_id) == conversation_id,
            col(OutboxRow.kind) == OutboxKind.SEND,
        )
    )
    return row is not None
