"""Queries about watched channels."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import WatchedChannel


async def by_channel(session: AsyncSession, channel: str) -> WatchedChannel | None:
    return (
        await session.scalars(select(WatchedChannel).where(col(WatchedChannel.channel) == channel))
    ).first()
