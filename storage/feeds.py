"""Queries about watched feeds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Feed


async def every(session: AsyncSession) -> Sequence[Feed]:
    return (await session.scalars(select(Feed).order_by(col(Feed.id)))).all()


async def due(session: AsyncSession, now: datetime) -> Sequence[Feed]:
    return (
        await session.scalars(
            select(Feed).where(col(Feed.next_poll_at) <= now).order_by(col(Feed.next_poll_at))
        )
    ).all()


async def by_url(session: AsyncSession, url: str) -> Feed | None:
    return (await session.scalars(select(Feed).where(col(Feed.url) == url))).first()
