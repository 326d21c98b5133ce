"""Queries about watched channels."""

from __future__ import annotations

from collections.abc import Collection
from functools import cache

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Team, WatchedChannel


async def by_channel(session: AsyncSession, channel: str) -> WatchedChannel | None:
    return (
        await session.scalars(select(WatchedChannel).where(col(WatchedChannel.channel) == channel))
    ).first()


async def teams_of(session: AsyncSession, channels: Collection[str]) -> dict[str, Team]:
    """The team each of these channels is watched for, in one read (unwatched: absent)."""
    if not channels:
        return {}
    rows = await session.execute(_teams_of_statement(), {"channels": list(channels)})
    return {row[0]: row[1] for row in rows}


@cache
def _teams_of_statement() -> Select[str, Team]:
    # Built once: a watched channel's message is the Slack path's first read.
    return (
        select(col(WatchedChannel.channel), Team)
        .join(Team, col(Team.id) == col(WatchedChannel.team_id))
        .where(col(WatchedChannel.channel).in_(bindparam("channels", expanding=True)))
    )
