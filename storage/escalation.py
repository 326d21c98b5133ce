"""Queries for escalation: conversations past their team's targets, the nudges done,
and who hears of them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import table, upsert
from storage.models import (
    AuditEntry,
    Conversation,
    EscalationNudge,
    Person,
    Role,
    Status,
    TeamMember,
)


class Step(StrEnum):
    """The steps of escalation, in order within each target."""

    #: unclaimed at the claim target: a note under the card in the team channel
    CLAIM = "claim"
    #: unclaimed at twice the claim target: the team's managers, privately
    CLAIM_MANAGERS = "claim_managers"
    #: claimed without a reply at the reply target: the owner, privately
    REPLY = "reply"
    #: no reply at twice the reply target: the team's managers, privately
    REPLY_MANAGERS = "reply_managers"


def _not_nudged(step: Step) -> object:
    return ~exists().where(
        col(EscalationNudge.conversation_id) == col(Conversation.id),
        col(EscalationNudge.step) == step,
    )


async def unclaimed(
    session: AsyncSession, created_before: datetime, *, pending_only: bool, lock: bool = False
) -> Sequence[Conversation]:
    """Open conversations of a team, nobody's yet, that arrived before `created_before`,
    oldest first; `pending_only`: those whose last step is not done yet.

    `lock` (the sweep): PostgreSQL locks them, skipping those being claimed this
    very moment, whose claim is about to make the nudge pointless.
    """
    query = select(Conversation).where(
        col(Conversation.status) == Status.OPEN,
        col(Conversation.team_id).is_not(None),
        col(Conversation.created_at) <= created_before,
    )
    if pending_only:
        query = query.where(_not_nudged(Step.CLAIM_MANAGERS))  # type: ignore[arg-type]
    if lock:
        query = query.with_for_update(skip_locked=True, of=Conversation)
    order = (col(Conversation.created_at), col(Conversation.id))
    return (await session.scalars(query.order_by(*order))).all()


async def unreplied(
    session: AsyncSession, claimed_before: datetime, *, pending_only: bool, lock: bool = False
) -> Sequence[Conversation]:
    """Claimed conversations of a team with no reply yet, claimed before `claimed_before`,
    oldest first (as `unclaimed`)."""
    query = select(Conversation).where(
        col(Conversation.status) == Status.CLAIMED,
        col(Conversation.team_id).is_not(None),
        col(Conversation.owner_id).is_not(None),
        col(Conversation.first_reply_at).is_(None),
        col(Conversation.claimed_at) <= claimed_before,
    )
    if pending_only:
        query = query.where(_not_nudged(Step.REPLY_MANAGERS))  # type: ignore[arg-type]
    if lock:
        query = query.with_for_update(skip_locked=True, of=Conversation)
    order = (col(Conversation.created_at), col(Conversation.id))
    return (await session.scalars(query.order_by(*order))).all()


async def taken_at(session: AsyncSession, conversation_ids: Collection[int]) -> dict[int, datetime]:
    """When each conversation's present owner took it: its last claim or reassignment
    (`claimed_at` is the first claim, which the digest's time to claim needs)."""
    if not conversation_ids:
        return {}
    rows = await session.execute(
        select(col(AuditEntry.conversation_id), func.max(col(AuditEntry.at)))
        .where(
            col(AuditEntry.conversation_id).in_(conversation_ids),
            col(AuditEntry.action).in_(("claimed", "reassigned")),
        )
        .group_by(col(AuditEntry.conversation_id))
    )
    return {int(n): at for n, at in rows.all() if n is not None and at is not None}


async def done(session: AsyncSession, conversation_ids: Collection[int]) -> dict[int, set[str]]:
    """The steps already done for each of these conversations."""
    if not conversation_ids:
        return {}
    rows = await session.execute(
        select(col(EscalationNudge.conversation_id), col(EscalationNudge.step)).where(
            col(EscalationNudge.conversation_id).in_(conversation_ids)
        )
    )
    found: dict[int, set[str]] = {}
    for number, step in rows.all():
        found.setdefault(int(number), set()).add(str(step))
    return found


async def record(
    session: AsyncSession, steps: Collection[tuple[int, Step]], now: datetime
) -> set[tuple[int, str]]:
    """Record these (conversation, step) nudges; those this call recorded, which are the
    ones to send.

    One INSERT … ON CONFLICT DO NOTHING … RETURNING on the (conversation, step) key,
    as for reminders: two instances, or a sweep after a restart, never both win one.
    """
    if not steps:
        return set()
    result = await session.execute(
        upsert(session, table(EscalationNudge))
        .values([{"conversation_id": n, "step": str(s), "at": now} for n, s in steps])
        .on_conflict_do_nothing(index_elements=["conversation_id", "step"])
        .returning(col(EscalationNudge.conversation_id), col(EscalationNudge.step))
    )
    return {(int(n), str(s)) for n, s in result.all()}


async def managers(session: AsyncSession) -> list[tuple[Person, set[int]]]:
    """People with the role manager or admin, with their teams, by name."""
    rows = (
        await session.execute(
            select(Person, col(TeamMember.team_id))
            .outerjoin(TeamMember, col(TeamMember.person_id) == col(Person.id))
            .where(col(Person.role).in_((Role.MANAGER, Role.ADMIN)))
        )
    ).all()
    found: dict[int, tuple[Person, set[int]]] = {}
    for person, team_id in rows:
        entry = found.setdefault(person.id or 0, (person, set()))
        if team_id is not None:
            entry[1].add(int(team_id))
    return sorted(found.values(), key=lambda e: (e[0].display_name.casefold(), e[0].id or 0))
