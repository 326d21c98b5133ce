"""Who is on duty: inside one of their commitment blocks right now.

A block is running from its start until its check-in is due (`ends_at`, moved
by a late start) while it is reminded or started. A snoozed block is not running
yet (the person asked for 15 minutes more), nor is one skipped, settled, missed
or spent away; a `log` row is no block.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import BindParameter, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.conversations import OPEN_STATUSES
from storage.models import (
    AuditEntry,
    Conversation,
    DialogueSession,
    Person,
    Role,
    SessionOutcome,
    Status,
    TeamMember,
)

#: the outcomes of a block that is on: reminded (not skipped yet), or started
RUNNING = (SessionOutcome.REMINDED, SessionOutcome.STARTED)
#: who may be offered conversations (consultants never claim)
_STAFF = (Role.EMPLOYEE, Role.MANAGER, Role.ADMIN)
#: the audit log's action for a conversation offered to someone on duty (its actor)
OFFERED = "offered"


@dataclass(frozen=True)
class OnDuty:
    person: Person
    #: when their running block ends
    until: datetime
    #: conversations they own that still need them (claimed or replied, not resolved)
    open_conversations: int
    #: conversations offered to them in this block that nobody has claimed yet
    offers_waiting: int = 0


async def on_duty(
    session: AsyncSession, now: datetime, team_ids: Collection[int]
) -> dict[int, list[OnDuty]]:
    """The members of these teams on duty at `now`, by team, in two statements
    whatever the number of teams (a batch of mentions reads it once)."""
    if not team_ids:
        return {}
    rows = (
        await session.execute(_on_duty_statement(), {"teams": list(team_ids), "now": now})
    ).all()
    if not rows:
        return {}
    # Two blocks of one person overlapping: they are on duty until the later ends.
    until: dict[tuple[int, int], tuple[Person, datetime]] = {}
    since: dict[int, datetime] = {}
    for team_id, person, started, ends_at in rows:
        key = (int(team_id), person.id or 0)
        if key not in until or until[key][1] < ends_at:
            until[key] = (person, ends_at)
        since[key[1]] = min(since.get(key[1], started), started)
    loads = await open_counts(session, set(since))
    offers = await offers_waiting(session, since)
    found: dict[int, list[OnDuty]] = {}
    for (team_id, person_id), (person, ends_at) in until.items():
        found.setdefault(team_id, []).append(
            OnDuty(person, ends_at, loads.get(person_id, 0), offers.get(person_id, 0))
        )
    for people in found.values():
        people.sort(key=lambda d: (d.person.display_name.casefold(), d.person.id or 0))
    return found


@cache
def _on_duty_statement() -> Select[int, Person, datetime, datetime]:
    # Built once: read for every batch of new conversations (bench.slack's profile).
    # (an untyped parameter takes the type of the column it is compared with)
    now: BindParameter[datetime] = bindparam("now")
    return (
        select(
            col(TeamMember.team_id),
            Person,
            col(DialogueSession.occurrence_start),
            col(DialogueSession.ends_at),
        )
        .join(Person, col(Person.id) == col(TeamMember.person_id))
        .join(DialogueSession, col(DialogueSession.person_id) == col(Person.id))
        .where(
            col(TeamMember.team_id).in_(bindparam("teams", expanding=True)),
            col(Person.role).in_(_STAFF),
            col(DialogueSession.commitment_id).is_not(None),
            col(DialogueSession.outcome).in_(RUNNING),
            col(DialogueSession.occurrence_start) <= now,
            col(DialogueSession.ends_at) > now,
        )
    )


async def offers_waiting(session: AsyncSession, since: Mapping[int, datetime]) -> dict[int, int]:
    """How many conversations offered to each person since their block started are
    still unclaimed (by person id)."""
    if not since:
        return {}
    rows = await session.execute(
        select(col(AuditEntry.actor_id), col(AuditEntry.at), col(AuditEntry.conversation_id))
        .join(Conversation, col(Conversation.id) == col(AuditEntry.conversation_id))
        .where(
            col(AuditEntry.at) >= min(since.values()),
            col(AuditEntry.action) == OFFERED,
            col(AuditEntry.actor_id).in_(since),
            col(Conversation.status) == Status.OPEN,
        )
    )
    waiting: dict[int, set[int]] = {}
    for person_id, at, number in rows.all():
        if person_id is not None and number is not None and at >= since[person_id]:
            waiting.setdefault(person_id, set()).add(number)
    return {person_id: len(numbers) for person_id, numbers in waiting.items()}


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
