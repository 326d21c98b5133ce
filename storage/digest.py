"""The raw figures of one week, read in a handful of indexed queries.

Everything here is about instants in [start, end), in UTC; turning a week name
into those instants (time zone, DST) is the caller's job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import (
    AdviceRequest,
    AuditEntry,
    Conversation,
    DialogueSession,
    Mention,
    Person,
    Status,
    Team,
)


@dataclass
class Raw:
    """Per person / consultant / team lists of durations (minutes) and counts."""

    #: person id → action → count (claimed, replied, resolved) from the audit log
    actions: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    #: person id → minutes from the customer's first message to the claim / first reply
    to_claim: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    to_reply: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: team id → the same, by team
    team_to_claim: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    team_mentions: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    team_opened: dict[int, int] = field(default_factory=dict)
    team_over_target: dict[int, int] = field(default_factory=dict)
    #: consultant id → received, answered, minutes to answer, rated useful
    advice_received: dict[int, int] = field(default_factory=dict)
    advice_answered: dict[int, int] = field(default_factory=dict)
    advice_minutes: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    advice_useful: dict[int, int] = field(default_factory=dict)
    #: when each mention of the week arrived, for mentions per day
    mention_times: list[datetime] = field(default_factory=list)
    #: person id → minutes committed (blocks of the week) and given (blocks and `log`)
    committed: dict[int, int] = field(default_factory=dict)
    given: dict[int, int] = field(default_factory=dict)
    #: person id → outcome → blocks
    sessions: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))


async def _fetch(session: AsyncSession, statement: Any) -> list[tuple[Any, ...]]:
    """Plain tuples: these rows are summed and sorted, never written back."""
    return [tuple(row) for row in (await session.execute(statement)).all()]


def _minutes(later: datetime, earlier: datetime) -> float:
    return max(0.0, (later - earlier).total_seconds() / 60)


async def week(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    team_id: int | None,
    claim_target_minutes: int,
    now: datetime,
) -> Raw:
    raw = Raw()
    in_team: list[ColumnElement[bool]] = (
        [col(Conversation.team_id) == team_id] if team_id is not None else []
    )

    def between(column: Any) -> list[ColumnElement[bool]]:
        return [column >= start, column < end]

    # Claims and first replies of the week, with who owns the conversation now.
    rows = await _fetch(
        session,
        select(
            col(Conversation.owner_id),
            col(Conversation.team_id),
            col(Conversation.created_at),
            col(Conversation.claimed_at),
        ).where(*between(col(Conversation.claimed_at)), *in_team),
    )
    for owner, team, created, claimed in rows:
        minutes = _minutes(claimed, created)
        if owner is not None:
            raw.to_claim[owner].append(minutes)
        if team is not None:
            raw.team_to_claim[team].append(minutes)
    rows = await _fetch(
        session,
        select(
            col(Conversation.owner_id),
            col(Conversation.created_at),
            col(Conversation.first_reply_at),
        ).where(*between(col(Conversation.first_reply_at)), *in_team),
    )
    for owner, created, replied in rows:
        if owner is not None:
            raw.to_reply[owner].append(_minutes(replied, created))

    # Opened this week, and how many waited longer than the target to be claimed.
    rows = await _fetch(
        session,
        select(
            col(Conversation.team_id), col(Conversation.created_at), col(Conversation.claimed_at)
        ).where(*between(col(Conversation.created_at)), *in_team),
    )
    for team, created, claimed in rows:
        if team is None:
            continue
        raw.team_opened[team] = raw.team_opened.get(team, 0) + 1
        waited = _minutes(claimed or min(now, end), created)
        if waited > claim_target_minutes:
            raw.team_over_target[team] = raw.team_over_target.get(team, 0) + 1

    # What people did, from the audit log.
    query = select(col(AuditEntry.actor_id), col(AuditEntry.action), func.count()).where(
        *between(col(AuditEntry.at)),
        col(AuditEntry.actor_id).is_not(None),
        col(AuditEntry.action).in_(("claimed", "replied", "resolved")),
    )
    if team_id is not None:
        query = query.join(
            Conversation, col(Conversation.id) == col(AuditEntry.conversation_id)
        ).where(*in_team)
    for actor, action, count in await _fetch(
        session, query.group_by(col(AuditEntry.actor_id), col(AuditEntry.action))
    ):
        raw.actions[actor][action] = int(count)

    # Mentions in, by team and source, and when they came.
    rows = await _fetch(
        session,
        select(col(Conversation.team_id), col(Mention.source), col(Mention.received_at))
        .join(Conversation, col(Conversation.id) == col(Mention.conversation_id))
        .where(*between(col(Mention.received_at)), *in_team),
    )
    for team, source, received in rows:
        raw.mention_times.append(received)
        if team is not None:
            by_source = raw.team_mentions[team]
            by_source[source] = by_source.get(source, 0) + 1

    # Advice: received (asked this week), answered this week, useful.
    advice_in_team: list[ColumnElement[bool]] = []
    if team_id is not None:
        advice_in_team = [
            col(AdviceRequest.conversation_id).in_(select(col(Conversation.id)).where(*in_team))
        ]
    for consultant, count in await _fetch(
        session,
        select(col(AdviceRequest.consultant_id), func.count())
        .where(
            *between(col(AdviceRequest.created_at)),
            col(AdviceRequest.consultant_id).is_not(None),
            *advice_in_team,
        )
        .group_by(col(AdviceRequest.consultant_id)),
    ):
        raw.advice_received[consultant] = int(count)
    rows = await _fetch(
        session,
        select(
            col(AdviceRequest.consultant_id),
            col(AdviceRequest.created_at),
            col(AdviceRequest.answered_at),
            col(AdviceRequest.rating),
        ).where(
            *between(col(AdviceRequest.answered_at)),
            col(AdviceRequest.consultant_id).is_not(None),
            *advice_in_team,
        ),
    )
    for consultant, created, answered, rating in rows:
        raw.advice_answered[consultant] = raw.advice_answered.get(consultant, 0) + 1
        raw.advice_minutes[consultant].append(_minutes(answered, created))
        if rating == "useful":
            raw.advice_useful[consultant] = raw.advice_useful.get(consultant, 0) + 1
    # Dialogue time: every block of the week is a row, whatever became of it.
    if team_id is None:
        for person, outcome, planned, given, count in await _fetch(
            session,
            select(
                col(DialogueSession.person_id),
                col(DialogueSession.outcome),
                func.sum(DialogueSession.minutes_planned),
                func.sum(DialogueSession.minutes_given),
                func.count(),
            )
            .where(*between(col(DialogueSession.occurrence_start)))
            .group_by(col(DialogueSession.person_id), col(DialogueSession.outcome)),
        ):
            raw.committed[person] = raw.committed.get(person, 0) + int(planned or 0)
            raw.given[person] = raw.given.get(person, 0) + int(given or 0)
            if outcome != "logged":
                raw.sessions[person][outcome] = int(count)
    return raw


async def unclaimed_now(
    session: AsyncSession, team_id: int, limit: int
) -> tuple[list[tuple[int, datetime]], int]:
    """A team's open, unclaimed conversations, oldest first: (number, since), and the total."""
    where = and_(col(Conversation.team_id) == team_id, col(Conversation.status) == Status.OPEN)
    total = await session.scalar(select(func.count()).select_from(Conversation).where(where))
    rows = await _fetch(
        session,
        select(col(Conversation.id), col(Conversation.created_at))
        .where(where)
        .order_by(col(Conversation.created_at), col(Conversation.id))
        .limit(limit),
    )
    return [(int(n), at) for n, at in rows], int(total or 0)


async def people(session: AsyncSession, ids: set[int]) -> Sequence[Person]:
    if not ids:
        return []
    return (await session.scalars(select(Person).where(col(Person.id).in_(ids)))).all()


async def teams(session: AsyncSession, team_id: int | None) -> Sequence[Team]:
    query = select(Team).order_by(col(Team.id))
    if team_id is not None:
        query = query.where(col(Team.id) == team_id)
    return (await session.scalars(query)).all()
