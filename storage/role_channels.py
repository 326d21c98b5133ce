"""Channels with a purpose: the consultants' pool, the managers' channel (one per platform)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import RoleChannel

CONSULTANTS = "consultants"
MANAGERS = "managers"


async def channels(session: AsyncSession, purpose: str) -> Sequence[RoleChannel]:
    return (
        await session.scalars(select(RoleChannel).where(col(RoleChannel.purpose) == purpose))
    ).all()


async def set_channel(session: AsyncSession, purpose: str, platform: str, channel: str) -> None:
    """This channel serves `purpose` on its platform, instead of any earlier one."""
    existing = await session.get(RoleChannel, (purpose, platform))
    if existing is None:
        session.add(RoleChannel(purpose=purpose, platform=platform, channel=channel))
    else:
        existing.channel = channel
        session.add(existing)
