"""Queries about conversations, their mentions and their history."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    Select,
    bindparam,
    func,
    insert,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlmodel import col

from storage import cards
from storage.cards import CardFacts
from storage.dialect import table, upsert
from storage.models import AuditEntry, Conversation, Mention, Status

OPEN_STATUSES = (Status.CLAIMED, Status.REPLIED)


async def lock(session: AsyncSession, number: int) -> Conversation | None:
    """The conversation, locked for this transaction (PostgreSQL `FOR UPDATE`).

    Every state change goes through here, so two people acting on the same
    conversation at once are serialised: the second sees what the first did.
    SQLite needs no row lock, as its writers are already serialised.
    """
    return (
        await session.scalars(
            select(Conversation)
            .where(col(Conversation.id) == number)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()


async def by_card(session: AsyncSession, message_ref: str) -> Conversation | None:
    """The conversation whose card is this chat message."""
    return (
        await session.scalars(
            select(Conversation).where(col(Conversation.card_ref) == message_ref).limit(1)
        )
    ).first()


async def get(session: AsyncSession, number: int) -> Conversation | None:
    return await session.get(Conversation, number)


async def by_key(session: AsyncSession, source: str, key: str) -> Conversation | None:
    return (
        await session.scalars(
            select(Conversation)
            .where(col(Conversation.source) == source, col(Conversation.conversation_key) == key)
            .with_for_update()
        )
    ).first()


async def by_keys(
    session: AsyncSession, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], Conversation]:
    """The conversations with these (source, conversation_key), locked like `lock`.

    A batch of customer messages is mostly new threads: the keys are first looked up as
    plain rows (no ORM object built for nothing), and only those found are read whole.
    """
    if not keys:
        return {}
    found = (await session.execute(_known_keys_statement(), {"keys": list(keys)})).all()
    if not found:
        return {}
    rows = await session.scalars(_by_keys_statement(), {"keys": [tuple(k) for k in found]})
    return {(c.source, c.conversation_key): c for c in rows}


def _keys_in() -> Any:
    return tuple_(col(Conversation.source), col(Conversation.conversation_key)).in_(
        bindparam("keys", expanding=True)
    )


@cache
def _known_keys_statement() -> Select[str, str]:
    return select(col(Conversation.source), col(Conversation.conversation_key)).where(_keys_in())


@cache
def _by_keys_statement() -> Select[Conversation]:
    # Built once: on the path of every mention (building it cost more than running it).
    return select(Conversation).where(_keys_in()).with_for_update()


def unsaved(values: Mapping[str, Any]) -> Conversation:
    """A new conversation, not stored yet, from these column values (the rest take their
    defaults): built the way the ORM builds a row it reads, without `Conversation(...)`'s
    per-field instrumented set and copy, which cost routing as much as the rest of a
    message (bench.slack's profile, issue 18). `open_many` stores it (Core): it is never
    added to a session."""
    conversation = _new_conversation()
    state = conversation.__dict__
    state.update(_defaults())
    for name, factory in _factories().items():
        state[name] = factory()
    state.update(values)
    return conversation


def _new_conversation() -> Conversation:
    return manager_of_class(Conversation).new_instance()


@cache
def _defaults() -> dict[str, Any]:
    return {
        name: f.default
        for name, f in Conversation.model_fields.items()
        if not f.is_required() and f.default_factory is None
    }


@cache
def _factories() -> dict[str, Any]:
    return {
        name: f.default_factory
        for name, f in Conversation.model_fields.items()
        if f.default_factory is not None
    }


def columns(conversation: Conversation) -> dict[str, Any]:
    """Its column values but the id, for `open_many` (what `model_dump` gives, faster)."""
    return {name: getattr(conversation, name) for name in _stored_fields()}


@cache
def _stored_fields() -> tuple[str, ...]:
    return tuple(name for name in Conversation.model_fields if name != "id")


async def open_many(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, str], int]:
    """Insert new conversations in one statement: {(source, key): number} of those inserted.

    A key another transaction inserted first is skipped, not an error (PostgreSQL
    runs deliveries concurrently): the caller treats it as a follow-up.
    """
    if not rows:
        return {}
    t = table(Conversation)
    result = await session.execute(
        upsert(session, t)
        .on_conflict_do_nothing(index_elements=["source", "conversation_key"])
        .returning(t.c.source, t.c.conversation_key, t.c.id),
        list(rows),
    )
    return {(source, key): number for source, key, number in result.all() if number is not None}


async def add_mentions(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """`Mention` columns as plain dicts, inserted in one statement."""
    if rows:
        await session.execute(insert(table(Mention)), list(rows))


async def audit_many(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(table(AuditEntry)), list(rows))


async def mentions(session: AsyncSession, conversation_id: int) -> Sequence[Mention]:
    return (
        await session.scalars(
            select(Mention)
            .where(col(Mention.conversation_id) == conversation_id)
            .order_by(col(Mention.created_at), col(Mention.id))
        )
    ).all()


async def latest_texts(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """The latest message of each conversation, in one query (queues list up to ten)."""
    if not ids:
        return {}
    latest = (
        select(func.max(col(Mention.id)))
        .where(col(Mention.conversation_id).in_(ids))
        .group_by(col(Mention.conversation_id))
    )
    rows = await session.execute(
        select(col(Mention.conversation_id), col(Mention.text)).where(col(Mention.id).in_(latest))
    )
    return dict(rows.all())


async def owned_by(session: AsyncSession, person_id: int) -> Sequence[Conversation]:
    """A person's conversations that still need them, oldest first."""
    return (
        await session.scalars(
            select(Conversation)
            .where(
                col(Conversation.owner_id) == person_id,
                col(Conversation.status).in_(OPEN_STATUSES),
            )
            .order_by(col(Conversation.created_at), col(Conversation.id))
        )
    ).all()


async def unclaimed(
    session: AsyncSession, team_id: int | Collection[int] | None, limit: int
) -> tuple[Sequence[Conversation], int]:
    """Open conversations nobody has claimed, oldest first, and how many there are in all:
    in one team, in several (a person's teams), or anywhere (None)."""
    where = [col(Conversation.status) == Status.OPEN]
    if isinstance(team_id, int):
        where.append(col(Conversation.team_id) == team_id)
    elif team_id is not None:
        where.append(col(Conversation.team_id).in_(team_id))
    total = await session.scalar(select(func.count()).select_from(Conversation).where(*where))
    rows = (
        await session.scalars(
            select(Conversation)
            .where(*where)
            .order_by(col(Conversation.created_at), col(Conversation.id))
            .limit(limit)
        )
    ).all()
    return rows, int(total or 0)


async def without_team(session: AsyncSession) -> Sequence[Conversation]:
    return (
        await session.scalars(
            select(Conversation)
            .where(
                col(Conversation.team_id).is_(None),
                col(Conversation.status) != Status.RESOLVED,
            )
            .order_by(col(Conversation.id))
        )
    ).all()


def audit(
    session: AsyncSession,
    conversation_id: int | None,
    actor_id: int | None,
    action: str,
    now: datetime,
    detail: str = "",
) -> None:
    session.add(
        AuditEntry(
            conversation_id=conversation_id, actor_id=actor_id, action=action, detail=detail, at=now
        )
    )


async def save_change(
    session: AsyncSession,
    conversation: Conversation,
    actor_id: int | None,
    action: str,
    now: datetime,
    detail: str = "",
) -> CardFacts:
    """Write what a handler changed on `conversation` (locked by `lock`) and its audit
    line, and read what its card shows (`cards.facts`) after them.

    On PostgreSQL one statement, where the flush at the commit took two more round trips
    (`INSERT INTO audit_log`, `UPDATE conversation`) after the facts' own: the UPDATE and
    the INSERT ride in its WITH. The facts do not read the row changed, so the
    statement's one snapshot gives what the facts read alone gave; and as that read did,
    it begins after the lock was taken (it sees whatever the last holder committed).
    SQLite crosses no network: the change is flushed at the commit, as it always was.
    """
    assert conversation.id is not None
    if session.get_bind().dialect.name == "sqlite":
        session.add(conversation)
        audit(session, conversation.id, actor_id, action, now, detail)
        with session.no_autoflush:  # the flush at the commit writes both
            return await cards.facts(session, conversation)
    changed = _changed_columns(conversation)
    with session.no_autoflush:  # the change is this statement's, not a flush's
        result = await session.execute(
            _change_statement(tuple(changed)),
            {
                **cards.parameters(conversation),
                **{f"new_{name}": value for name, value in changed.items()},
                "audit_actor": actor_id,
                "audit_action": action,
                "audit_detail": detail,
                "audit_at": now,
            },
        )
    row = result.one()
    for name, value in changed.items():  # written: nothing left for the flush
        set_committed_value(conversation, name, value)
    return cards.of_row(row, conversation)


def _changed_columns(conversation: Conversation) -> dict[str, Any]:
    """The columns set on `conversation` since it was read, with their new values."""
    state = inspect(conversation)
    changed = {}
    for column in state.mapper.column_attrs:
        added = state.attrs[column.key].history.added
        if added:
            changed[column.key] = added[0]
    return changed


@cache
def _change_statement(columns: tuple[str, ...]) -> Select[*cards.Facts]:
    # One per set of columns a change sets (a handful: claim, release, replied, …), each
    # built once like the facts statement it extends.
    conversations, entries = table(Conversation), table(AuditEntry)
    number: BindParameter[int] = bindparam("number")
    logged = (
        insert(entries)
        .values(
            conversation_id=number,
            actor_id=bindparam("audit_actor"),
            action=bindparam("audit_action"),
            detail=bindparam("audit_detail"),
            at=bindparam("audit_at"),
        )
        .cte("logged")
    )
    if not columns:  # nothing changed (at the same instant as the last change)
        return cards.statement().add_cte(logged)
    changed = (
        update(conversations)
        .where(conversations.c.id == number)
        .values({name: bindparam(f"new_{name}") for name in columns})
        .cte("changed")
    )
    return cards.statement().add_cte(changed, logged)


async def history(session: AsyncSession, conversation_id: int) -> Sequence[AuditEntry]:
    return (
        await session.scalars(
            select(AuditEntry)
            .where(col(AuditEntry.conversation_id) == conversation_id)
            .order_by(col(AuditEntry.id))
        )
    ).all()


async def numbers_of(
    session: AsyncSession, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The conversation number of each stored (source, external_id)."""
    found: dict[tuple[str, str], int] = {}
    by_source: dict[str, list[str]] = {}
    for source, external_id in keys:
        by_source.setdefault(source, []).append(external_id)
    for source, ids in by_source.items():
        rows = await session.execute(
            select(col(Mention.external_id), col(Mention.conversation_id)).where(
                col(Mention.source) == source, col(Mention.external_id).in_(ids)
            )
        )
        for external_id, number in rows:
            found[(source, external_id)] = number
    return found
