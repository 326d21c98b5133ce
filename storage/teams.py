"""Queries about teams."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Team


async def by_name(session: AsyncSession, name: str) -> Team | None:
    return (
        await session.scalars(select(Team).where(func.lower(Team.name) == name.lower()))
    ).first()


async def by_channel(session: AsyncSession, channel: str) -> Team | None:
    return (await session.scalars(select(Team).where(col(Team.channel) == channel))).first()


async def every(session: AsyncSession) -> Sequence[Team]:
    return (await session.scalars(select(Team).order_by(col(Team.id)))).all()


async def default(session: AsyncSession) -> Team | None:
    return (await session.scalars(select(Team).where(col(Team.is_default)))).first()
