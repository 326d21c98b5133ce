"""Queries about teams and their members."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import table, upsert
from storage.models import Conversation, Person, Status, Team, TeamMember


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


# -- members ------------------------------------------------------------------------------


async def members(session: AsyncSession, team_id: int) -> list[Person]:
    """The team's members, by name."""
    return list(
        (
            await session.scalars(
                select(Person)
                .join(TeamMember, col(TeamMember.person_id) == col(Person.id))
                .where(col(TeamMember.team_id) == team_id)
                .order_by(func.lower(Person.display_name), col(Person.id))
            )
        ).all()
    )


async def member_names(session: AsyncSession) -> dict[int, list[str]]:
    """Every team's members' names, by team id, in one read (the digest lists them)."""
    found: dict[int, list[str]] = {}
    rows = await session.execute(
        select(col(TeamMember.team_id), col(Person.display_name))
        .join(Person, col(TeamMember.person_id) == col(Person.id))
        .order_by(func.lower(Person.display_name), col(Person.id))
    )
    for team_id, name in rows.all():
        found.setdefault(int(team_id), []).append(str(name))
    return found


async def teams_of(session: AsyncSession, person_id: int) -> list[Team]:
    """The teams a person belongs to, oldest team first."""
    return list(
        (
            await session.scalars(
                select(Team)
                .join(TeamMember, col(TeamMember.team_id) == col(Team.id))
                .where(col(TeamMember.person_id) == person_id)
                .order_by(col(Team.id))
            )
        ).all()
    )


async def join(session: AsyncSession, team_id: int, person_id: int, now: datetime) -> bool:
    """Make the person a member; False if they were one already.

    ON CONFLICT: the same person joining twice at once (two clicks, two instances)
    is one membership, not a failed transaction.
    """
    added = await session.execute(
        upsert(session, table(TeamMember))
        .values(team_id=team_id, person_id=person_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["team_id", "person_id"])
    )
    return bool(added.rowcount)  # type: ignore[attr-defined]


async def leave(session: AsyncSession, team_id: int, person_id: int) -> bool:
    """The person is no longer a member; False if they were not one."""
    gone = await session.execute(
        delete(TeamMember).where(
            col(TeamMember.team_id) == team_id, col(TeamMember.person_id) == person_id
        )
    )
    return bool(gone.rowcount)  # type: ignore[attr-defined]


async def set_members(
    session: AsyncSession, team_id: int, person_ids: Iterable[int], now: datetime
) -> None:
    """The team's members are exactly these people (those who stay keep their join date)."""
    wanted = set(person_ids)
    await session.execute(
        delete(TeamMember).where(
            col(TeamMember.team_id) == team_id, col(TeamMember.person_id).not_in(wanted)
        )
    )
    for person_id in sorted(wanted):
        await join(session, team_id, person_id, now)


async def waiting_by_team(session: AsyncSession) -> dict[int, int]:
    """How many open, unclaimed conversations wait in each team (teams with none left out)."""
    rows = await session.execute(
        select(col(Conversation.team_id), func.count())
        .where(col(Conversation.status) == Status.OPEN, col(Conversation.team_id).is_not(None))
        .group_by(col(Conversation.team_id))
    )
    return {int(team_id): int(count) for team_id, count in rows.all() if team_id is not None}


async def memberships(session: AsyncSession) -> dict[int, set[int]]:
    """Everyone's teams at once, by person id: a thousand reminders due in the same
    minute read it once instead of a thousand times."""
    found: dict[int, set[int]] = {}
    for person_id, team_id in (
        await session.execute(select(col(TeamMember.person_id), col(TeamMember.team_id)))
    ).all():
        found.setdefault(int(person_id), set()).add(int(team_id))
    return found
