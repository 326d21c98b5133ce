"""Customers: who is behind the mentions, across conversations and sources.

A customer is stored once per identity `(source, handle)`; identities can be
linked into one customer. Each conversation points to its customer and to the
identity it came from (so that an unlink takes the identity's conversations along).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from storage.dialect import table, upsert
from storage.models import (
    AdviceMessage,
    AdviceRequest,
    Away,
    ContinuityCount,
    Conversation,
    Customer,
    CustomerIdentity,
    Mention,
    Person,
    Status,
)

#: (source, handle)
IdentityKey = tuple[str, str]


@dataclass(frozen=True)
class Recognised:
    identity_id: int
    customer_id: int
    #: False: the identity was met for the first time just now (nothing to look up)
    known: bool


@dataclass(frozen=True)
class History:
    """What the card's history line says: the conversations before this one."""

    earlier: int
    last_at: datetime | None = None
    last_status: str = ""
    last_owner: str = ""


@dataclass(frozen=True)
class Holder:
    """A customer's relationship owner, as routing needs them."""

    person: Person
    #: the last day they are away ("YYYY-MM-DD" in their calendar), if they said so
    away_until: str | None


def identity_key(source: str, handle: str, name: str) -> IdentityKey:
    """The author's handle, or their name where the source gives no handle."""
    return source, (handle.strip() or name.strip())[:255]


async def recognise(
    session: AsyncSession, wanted: Mapping[IdentityKey, str], now: datetime
) -> dict[IdentityKey, Recognised]:
    """Find or create the identities (key → display name) in a few statements, whatever
    their number: one read, and for the new ones one insert of customers and one of
    identities. A concurrent delivery that created an identity first wins; its row is
    read back and the customer made for nothing is deleted."""
    if not wanted:
        return {}
    found = await _identities(session, list(wanted))
    missing = [k for k in wanted if k not in found]
    if not missing:
        return found
    # Core on the session's connection: on the path of every mention, the ORM layer
    # around these plain statements is measurable (bench.intake, one per request).
    connection = await session.connection()
    customers = table(Customer)
    ids = list(
        (
            await connection.execute(
                insert(customers).returning(customers.c.id),
                [{"owner_id": None, "created_at": now} for _ in missing],
            )
        ).scalars()
    )
    # Fresh customers are all alike: which one goes to which identity does not matter.
    identities = table(CustomerIdentity)
    inserted = (
        await connection.execute(
            upsert(session, identities)
            .on_conflict_do_nothing(index_elements=["source", "handle"])
            .returning(identities.c.source, identities.c.handle, identities.c.id),
            [
                {
                    "customer_id": customer_id,
                    "source": source,
                    "handle": handle,
                    "display_name": wanted[(source, handle)][:255],
                    "created_at": now,
                }
                for (source, handle), customer_id in zip(missing, ids, strict=True)
            ],
        )
    ).all()
    given = dict(zip(missing, ids, strict=True))
    for source, handle, identity_id in inserted:
        found[(source, handle)] = Recognised(identity_id, given[(source, handle)], known=False)
    if lost := [k for k in missing if k not in found]:
        found |= await _identities(session, lost)
        await session.execute(
            delete(Customer).where(col(Customer.id).in_([given[k] for k in lost]))
        )
    return found


async def _identities(
    session: AsyncSession, keys: Collection[IdentityKey]
) -> dict[IdentityKey, Recognised]:
    rows = await (await session.connection()).execute(_identities_statement(), {"keys": list(keys)})
    return {
        (source, handle): Recognised(int(identity_id or 0), customer_id, known=True)
        for source, handle, identity_id, customer_id in rows
    }


async def histories(session: AsyncSession, customer_ids: Collection[int]) -> dict[int, History]:
    """For a batch of new conversations (before they are stored): each customer's
    conversations so far, and the last of them, in one statement."""
    if not customer_ids:
        return {}
    rows = await session.execute(_histories_statement(), {"customers": list(customer_ids)})
    return {
        customer: History(int(earlier), at, status, owner or "")
        for customer, earlier, at, status, owner in rows
    }


# The statements on routing's path are built once (`functools.cache`): building one
# took longer than running it (bench.slack's profile, issue 18).


@cache
def _identities_statement() -> Select[str, str, int | None, int]:
    return select(
        col(CustomerIdentity.source),
        col(CustomerIdentity.handle),
        col(CustomerIdentity.id),
        col(CustomerIdentity.customer_id),
    ).where(
        tuple_(col(CustomerIdentity.source), col(CustomerIdentity.handle)).in_(
            bindparam("keys", expanding=True)
        )
    )


@cache
def _histories_statement() -> Select[int, int, datetime, str, str]:
    counts = (
        select(
            col(Conversation.customer_id).label("customer"),
            func.count().label("earlier"),
            func.max(col(Conversation.id)).label("last"),
        )
        .where(col(Conversation.customer_id).in_(bindparam("customers", expanding=True)))
        .group_by(col(Conversation.customer_id))
        .subquery()
    )
    return (
        select(
            counts.c.customer,
            counts.c.earlier,
            col(Conversation.created_at),
            col(Conversation.status),
            col(Person.display_name),
        )
        .join(Conversation, col(Conversation.id) == counts.c.last)
        .outerjoin(Person, col(Person.id) == col(Conversation.owner_id))
    )


async def history(session: AsyncSession, customer_id: int, before: int) -> History:
    """The conversations of the customer before conversation `before`, for its card:
    one read on the (customer_id, id) index, however many there were."""
    row = (
        await session.execute(_history_statement(), {"customer": customer_id, "before": before})
    ).one_or_none()
    if row is None:
        return History(0)
    return History(int(row.earlier), row.created_at, row.status, row.owner or "")


@cache
def _history_statement() -> Select[int, datetime, str, str]:
    customer: BindParameter[int] = bindparam("customer")
    before: BindParameter[int] = bindparam("before")
    earlier = (
        select(func.count())
        .where(col(Conversation.customer_id) == customer, col(Conversation.id) < before)
        .scalar_subquery()
    )
    return (
        select(
            earlier.label("earlier"),
            col(Conversation.created_at),
            col(Conversation.status),
            col(Person.display_name).label("owner"),
        )
        .outerjoin(Person, col(Person.id) == col(Conversation.owner_id))
        .where(col(Conversation.customer_id) == customer, col(Conversation.id) < before)
        .order_by(col(Conversation.id).desc())
        .limit(1)
    )


async def relationship_owners(
    session: AsyncSession, customer_ids: Collection[int]
) -> dict[int, Holder]:
    """Each customer's relationship owner (set, or else whoever owned their last resolved
    conversation), with their day away, in one statement."""
    if not customer_ids:
        return {}
    rows = await session.execute(_owners_statement(), {"customers": list(customer_ids)})
    return {customer: Holder(person, until) for customer, person, until in rows}


@cache
def _owners_statement() -> Select[int, Person, str | None]:
    last_resolved = (
        select(col(Conversation.owner_id))
        .where(
            col(Conversation.customer_id) == col(Customer.id),
            col(Conversation.status) == Status.RESOLVED,
            col(Conversation.owner_id).is_not(None),
        )
        .order_by(col(Conversation.id).desc())
        .limit(1)
        .correlate(Customer)
        .scalar_subquery()
    )
    owners = (
        select(
            col(Customer.id).label("customer"),
            func.coalesce(col(Customer.owner_id), last_resolved).label("owner"),
        )
        .where(col(Customer.id).in_(bindparam("customers", expanding=True)))
        .subquery()
    )
    return (
        select(owners.c.customer, Person, col(Away.until))
        .join(Person, col(Person.id) == owners.c.owner)
        .outerjoin(Away, col(Away.person_id) == col(Person.id))
    )


async def relationship_owner(session: AsyncSession, customer_id: int) -> Person | None:
    found = await relationship_owners(session, [customer_id])
    return found[customer_id].person if customer_id in found else None


# -- what a command names ----------------------------------------------------------------


async def identity(session: AsyncSession, source: str, handle: str) -> CustomerIdentity | None:
    """An identity as staff write it: exactly, else regardless of case (`@Giulia`)."""
    exact = (
        await session.scalars(
            select(CustomerIdentity).where(
                col(CustomerIdentity.source) == source, col(CustomerIdentity.handle) == handle
            )
        )
    ).first()
    if exact is not None:
        return exact
    return (
        await session.scalars(
            select(CustomerIdentity)
            .where(
                func.lower(col(CustomerIdentity.source)) == source.lower(),
                func.lower(col(CustomerIdentity.handle)) == handle.lower(),
            )
            .order_by(col(CustomerIdentity.id))
            .limit(1)
        )
    ).first()


async def identities_of(session: AsyncSession, customer_id: int) -> Sequence[CustomerIdentity]:
    return (
        await session.scalars(
            select(CustomerIdentity)
            .where(col(CustomerIdentity.customer_id) == customer_id)
            .order_by(col(CustomerIdentity.id))
        )
    ).all()


async def conversations_of(
    session: AsyncSession, customer_id: int, only: Collection[int] | None = None
) -> Sequence[tuple[Conversation, str]]:
    """The customer's conversations, newest first, each with its owner's name; `only`
    keeps to these numbers (what a consultant was asked about)."""
    query = (
        select(Conversation, col(Person.display_name))
        .outerjoin(Person, col(Person.id) == col(Conversation.owner_id))
        .where(col(Conversation.customer_id) == customer_id)
        .order_by(col(Conversation.id).desc())
    )
    if only is not None:
        query = query.where(col(Conversation.id).in_(only))
    return [(c, owner or "") for c, owner in (await session.execute(query)).all()]


async def advice_of(
    session: AsyncSession, numbers: Collection[int]
) -> Sequence[tuple[AdviceRequest, str]]:
    """The advice asked about these conversations, each with its consultant's name."""
    if not numbers:
        return []
    return [
        (request, name or "")
        for request, name in (
            await session.execute(
                select(AdviceRequest, col(Person.display_name))
                .outerjoin(Person, col(Person.id) == col(AdviceRequest.consultant_id))
                .where(col(AdviceRequest.conversation_id).in_(numbers))
                .order_by(col(AdviceRequest.conversation_id), col(AdviceRequest.seq))
            )
        ).all()
    ]


async def questions(session: AsyncSession, request_ids: Collection[int]) -> dict[int, str]:
    """The question each advice request opened with."""
    if not request_ids:
        return {}
    rows = await session.execute(
        select(col(AdviceMessage.request_id), col(AdviceMessage.text))
        .where(
            col(AdviceMessage.request_id).in_(request_ids), col(AdviceMessage.kind) == "question"
        )
        .order_by(col(AdviceMessage.id))
    )
    found: dict[int, str] = {}
    for request, text in rows:
        found.setdefault(request, text)
    return found


async def language(session: AsyncSession, numbers: Collection[int]) -> str:
    """The language of their latest mention that says one."""
    if not numbers:
        return ""
    found = await session.scalar(
        select(col(Mention.lang))
        .where(col(Mention.conversation_id).in_(numbers), col(Mention.lang) != "")
        .order_by(col(Mention.id).desc())
        .limit(1)
    )
    return found or ""


async def consulted_on(session: AsyncSession, consultant_id: int, customer_id: int) -> list[int]:
    """The customer's conversations this consultant was asked about."""
    rows = await session.scalars(
        select(col(Conversation.id))
        .join(AdviceRequest, col(AdviceRequest.conversation_id) == col(Conversation.id))
        .where(
            col(Conversation.customer_id) == customer_id,
            col(AdviceRequest.consultant_id) == consultant_id,
        )
        .distinct()
    )
    return sorted(n for n in rows if n is not None)


# -- linking -----------------------------------------------------------------------------


async def link(session: AsyncSession, keep: int, merged: int) -> None:
    """Customer `merged` becomes part of `keep`: its identities and conversations move;
    a relationship owner set on it stays when `keep` has none."""
    kept = await session.get(Customer, keep)
    gone = await session.get(Customer, merged)
    assert kept is not None and gone is not None
    if kept.owner_id is None:
        kept.owner_id = gone.owner_id
    await session.execute(
        update(CustomerIdentity)
        .where(col(CustomerIdentity.customer_id) == merged)
        .values(customer_id=keep)
    )
    await session.execute(
        update(Conversation).where(col(Conversation.customer_id) == merged).values(customer_id=keep)
    )
    await session.delete(gone)
    await session.flush()
    await mark_returning(session, [keep])


async def unlink(session: AsyncSession, identity_row: CustomerIdentity, now: datetime) -> int:
    """The identity becomes a customer of its own again, with its conversations; the
    relationship owner stays with the others. The new customer's id."""
    alone = Customer(created_at=now)
    session.add(alone)
    await session.flush()
    assert alone.id is not None
    left = identity_row.customer_id
    identity_row.customer_id = alone.id
    session.add(identity_row)
    await session.execute(
        update(Conversation)
        .where(col(Conversation.identity_id) == identity_row.id)
        .values(customer_id=alone.id)
    )
    await session.flush()
    await mark_returning(session, [left, alone.id])
    return alone.id


async def mark_returning(session: AsyncSession, customer_ids: Collection[int]) -> None:
    """Set `returning_customer` again on these customers' conversations, after their
    conversations changed customer: each one but a customer's first (its smallest
    number) is a returning customer's. Only the rows whose flag changes are written."""
    earlier = aliased(Conversation)
    first = (
        select(func.min(col(earlier.id)))
        .where(col(earlier.customer_id) == col(Conversation.customer_id))
        .scalar_subquery()
    )
    returning = col(Conversation.id) != first
    await session.execute(
        update(Conversation)
        .where(
            col(Conversation.customer_id).in_(list(customer_ids)),
            col(Conversation.returning_customer) != returning,
        )
        .values(returning_customer=returning)
        .execution_options(synchronize_session=False)
    )


# -- holds ---------------------------------------------------------------------------------


async def holds_ended(session: AsyncSession, now: datetime, limit: int) -> Sequence[Conversation]:
    """Conversations offered to a relationship owner whose hold is over, locked."""
    return (
        await session.scalars(
            select(Conversation)
            .where(col(Conversation.held_until) <= now)
            .order_by(col(Conversation.held_until))
            .limit(limit)
            .with_for_update()
        )
    ).all()


# -- the digest's continuity ------------------------------------------------------------------


async def continuity(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    from_history: bool = False,
    from_flags: bool = False,
    team_id: int | None = None,
) -> Sequence[tuple[int | None, int | None, int, int]]:
    """Conversations of returning customers opened in [start, end), by team and
    relationship owner: (team, relationship owner, how many, how many that owner has);
    `team_id`: of that team only.

    Read from `continuity_count` (kept by triggers, migration 0018a): the UTC weeks
    nearest to the range, and the hours between their edges and the range's from the
    conversations, added or taken away, in one statement (one snapshot).
    `from_flags`: every conversation of the range marked `returning_customer`, one
    range of `ix_conversation_returning_created` (what the counts are checked
    against); `from_history`: found by looking for each conversation of the range for
    an earlier one of its customer (what the flag is checked against)."""
    if from_history or from_flags:
        return await _continuity_from_rows(
            session, start, end, from_history=from_history, team_id=team_id
        )
    first, last = _nearest_monday(start), _nearest_monday(end)
    # [start, end) = [first, last) + [start, first) - [first, start) + [last, end) - [end, last)
    edges = [
        (since, until, sign)
        for since, until, sign in (
            (start, first, 1),
            (first, start, -1),
            (last, end, 1),
            (end, last, -1),
        )
        if since < until
    ]
    values: dict[str, Any] = {"first": first.date(), "last": last.date(), "team": team_id}
    for i, (since, until, _) in enumerate(edges):
        values |= {f"since{i}": since, f"until{i}": until}
    statement = _continuity_statement(tuple(sign for _, _, sign in edges), team_id is not None)
    rows = await session.execute(statement, values)
    return [(team or None, holder or None, int(n), int(mine)) for team, holder, n, mine in rows]


@cache
def _continuity_statement(signs: tuple[int, ...], one_team: bool) -> Select[Any]:
    """The counts of the UTC weeks [:first, :last), and the returning customers'
    conversations of each edge [:sinceI, :untilI) counted `signs[I]` times, summed by
    team and relationship owner: built once for each shape (SQLAlchemy's statement
    objects and cache key, some 0.5 ms a build, are not rebuilt for each digest)."""
    counts = table(ContinuityCount)
    weeks = select(
        counts.c.team_id.label("team"),
        counts.c.holder_id.label("holder"),
        counts.c.conversations.label("n"),
        counts.c.by_owner.label("mine"),
    ).where(counts.c.week >= bindparam("first"), counts.c.week < bindparam("last"))
    if one_team:  # a range of the key (week, team_id, …) a week
        weeks = weeks.where(counts.c.team_id == bindparam("team"))
    parts: list[Select[Any]] = [weeks]
    for i, sign in enumerate(signs):
        parts.append(_returning_between(i, sign, one_team))
    both = union_all(*parts).subquery()
    n = func.sum(both.c.n)
    return (
        select(both.c.team, both.c.holder, n, func.sum(both.c.mine))
        .group_by(both.c.team, both.c.holder)
        # a count gone to 0 keeps its row; the rows say "no such group"
        .having(n > 0)
    )


def _nearest_monday(moment: datetime) -> datetime:
    """The UTC Monday 00:00 nearest to `moment` (the later one at half way)."""
    day = moment.astimezone(UTC)
    monday = datetime.combine(day.date() - timedelta(days=day.weekday()), time(0), UTC)
    return monday + timedelta(days=7) if day - monday >= timedelta(days=3, hours=12) else monday


def _returning_between(i: int, sign: int, one_team: bool) -> Select[Any]:
    """The returning customers' conversations opened in [:sinceI, :untilI), as
    `continuity_count` rows of one conversation each, counted `sign` (1 or -1) times."""
    one: ColumnElement[int] = literal_column(str(sign))
    query = select(
        func.coalesce(col(Conversation.team_id), 0),
        func.coalesce(col(Conversation.relationship_owner_id), 0),
        one,
        case(
            (col(Conversation.owner_id) == col(Conversation.relationship_owner_id), one),
            else_=literal_column("0"),
        ),
    ).where(
        col(Conversation.returning_customer) == true(),
        col(Conversation.created_at) >= bindparam(f"since{i}"),
        col(Conversation.created_at) < bindparam(f"until{i}"),
    )
    if one_team:
        query = query.where(col(Conversation.team_id) == bindparam("team"))
    return query


async def _continuity_from_rows(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    from_history: bool,
    team_id: int | None,
) -> Sequence[tuple[int | None, int | None, int, int]]:
    returning: ColumnElement[bool]
    if from_history:
        earlier = aliased(Conversation)
        returning = and_(
            # no customer: never returning; checked in the index, before the probe
            col(Conversation.customer_id).is_not(None),
            select(col(earlier.id))
            .where(
                col(earlier.customer_id) == col(Conversation.customer_id),
                col(earlier.id) < col(Conversation.id),
            )
            .exists(),
        )
    else:
        returning = col(Conversation.returning_customer) == true()
    if team_id is not None:
        returning = and_(returning, col(Conversation.team_id) == team_id)
    by_owner = func.sum(
        case((col(Conversation.owner_id) == col(Conversation.relationship_owner_id), 1), else_=0)
    )
    rows = await session.execute(
        select(
            col(Conversation.team_id),
            col(Conversation.relationship_owner_id),
            func.count(),
            by_owner,
        )
        .where(returning, col(Conversation.created_at) >= start, col(Conversation.created_at) < end)
        .group_by(col(Conversation.team_id), col(Conversation.relationship_owner_id))
    )
    return [(team, owner, int(n), int(mine or 0)) for team, owner, n, mine in rows]
