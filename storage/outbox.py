"""Queries about the outbox (the worker itself lives in bot/outbox.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Conversation, Mention, OutboxKind, OutboxRow, OutboxState, Status


async def card_queued(session: AsyncSession, conversation_id: int) -> bool:
    """Whether a row that posts this conversation's card exists (sent or not)."""
    row = await session.scalar(
        select(col(OutboxRow.id)).where(
            col(OutboxRow.conversation_id) == conversation_id,
            col(OutboxRow.kind) == OutboxKind.SEND,
        )
    )
    return row is not None


async def card_on_its_way(session: AsyncSession, channel: str) -> bool:
    """Whether a card in `channel` may be posted and not booked yet: a pending row that
    posts a card and is leased (its worker is sending it) or maybe sent (its worker
    died; the one that took it over looks it up by its key, then books where it went);
    or a burst card being posted (its row has no reference yet, storage/bursts.py)."""
    posting = (
        col(OutboxRow.kind).in_((OutboxKind.SEND, OutboxKind.UPDATE))
        & col(OutboxRow.conversation_id).is_not(None)
        & (col(OutboxRow.state) == OutboxState.PENDING)
        & (col(OutboxRow.maybe_sent) | col(OutboxRow.leased_until).is_not(None))
    )
    burst = (col(OutboxRow.kind) == OutboxKind.BURST) & col(OutboxRow.context).is_(None)
    found = await session.scalar(
        select(col(OutboxRow.id)).where(col(OutboxRow.target) == channel, posting | burst).limit(1)
    )
    return found is not None


@dataclass(frozen=True)
class WaitingCard:
    """A new conversation whose card still waits in the outbox, unclaimed."""

    number: int
    created_at: datetime
    #: the first routing tag of its first mention ("" if it came without one)
    topic: str


async def waiting_cards(session: AsyncSession, channel: str) -> list[WaitingCard]:
    """Open, unclaimed conversations whose card waits to be posted in `channel`, oldest
    first (what a burst card stands for)."""
    found = (
        await session.execute(
            select(col(Conversation.id), col(Conversation.created_at))
            .join(OutboxRow, col(OutboxRow.conversation_id) == col(Conversation.id))
            .where(
                col(OutboxRow.target) == channel,
                col(OutboxRow.kind) == OutboxKind.SEND,
                col(OutboxRow.state) == OutboxState.PENDING,
                col(Conversation.status) == Status.OPEN,
                col(Conversation.owner_id).is_(None),
            )
            .order_by(col(Conversation.created_at), col(Conversation.id))
        )
    ).all()
    numbers = [n for n, _ in found if n is not None]
    topics: dict[int, str] = {}
    if numbers:
        mentions = await session.execute(
            select(col(Mention.conversation_id), col(Mention.tags))
            .where(col(Mention.conversation_id).in_(numbers))
            .order_by(col(Mention.id))
        )
        for number, tags in mentions:
            topics.setdefault(number, (tags.split() or [""])[0])
    return [WaitingCard(n, at, topics.get(n, "")) for n, at in found if n is not None]
