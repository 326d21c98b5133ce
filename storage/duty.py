"""Who is on duty: inside one of their commitment blocks right now.

A block is running from its start until its check-in is due (`ends_at`, moved
by a late start) while it is reminded or started. A snoozed block is not running
yet (the person asked for 15 minutes more), nor is one skipped, settled, missed
or spent away; a `log` row is no block.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.conversations import OPEN_STATUSES
from storage.models import Conversation, DialogueSession, Person, Role, SessionOutcome, TeamMember

#: the outcomes of a block that is on: reminded (not skipped yet), or started
RUNNING = (SessionOutcome.REMINDED, SessionOutcome.STARTED)
#: who may be offered conversations (consultants never claim)
_STAFF = (Role.EMPLOYEE, Role.MANAGER, Role.ADMIN)


@dataclass(frozen=True)
class OnDuty:
    person: Person
    #: when their running block ends
    until: datetime
    #: conversations they own that still need them (claimed or replied, not resolved)
    open_conversations: int


async def on_duty(
    session: AsyncSession, now: datetime, team_ids: Collection[int]
) -> dict[int, list[OnDuty]]:
    """The members of these teams on duty at `now`, by team, in two statements
    whatever the number of teams (a batch of mentions reads it once)."""
    if not team_ids:
        return {}
    rows = (
        await session.execute(
            select(col(TeamMember.team_id), Person, col(DialogueSession.ends_at))
            .join(Person, col(Person.id) == col(TeamMember.person_id))
            .join(DialogueSession, col(DialogueSession.person_id) == col(Person.id))
            .where(
                col(TeamMember.team_id).in_(team_ids),
                col(Person.role).in_(_STAFF),
                col(DialogueSession.commitment_id).is_not(None),
                col(DialogueSession.outcome).in_(RUNNING),
                col(DialogueSession.occurrence_start) <= now,
                col(DialogueSession.ends_at) > now,
            )
        )
    ).all()
    if not rows:
        return {}
    # Two blocks of one person overlapping: they are on duty until the later ends.
    until: dict[tuple[int, int], tuple[Person, datetime]] = {}
    for team_id, person, ends_at in rows:
        key = (int(team_id), person.id or 0)
        if key not in until or until[key][1] < ends_at:
            until[key] = (person, ends_at)
    loads = await open_counts(session, {person_id for _, person_id in until})
    found: dict[int, list[OnDuty]] = {}
    for (team_id, person_id), (person, ends_at) in until.items():
        found.setdefault(team_id, []).append(OnDuty(person, ends_at, loads.get(person_id, 0)))
    for people in found.values():
        people.sort(key=lambda d: (d.person.display_name.casefold(), d.person.id or 0))
    return found


async def open_counts(session: AsyncSession, person_ids: Collection[int]) -> dict[int, int]:
    """How many conversations each of these people owns that still need them."""
    if not person_ids:
        return {}
    rows = await session.execute(
        select(col(Conversation.owner_id), func.count())
        .where(
            col(Conversation.owner_id).in_(person_ids),
            col(Conversation.status).in_(OPEN_STATUSES),
        )
        .group_by(col(Conversation.owner_id))
    )
    return {int(owner): int(count) for owner, count in rows.all() if owner is not None}
