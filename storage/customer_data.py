"""What Inloop holds about a customer: read out whole (`customer export`), or erased
(`customer erase`, and RETENTION_DAYS for conversations resolved long ago).

Erasure is one function for every path, and set-based: a handful of UPDATE and
DELETE statements over the chosen conversations (a subquery, never a list walked
row by row), whatever the number of mentions. What it keeps is what the counts
need and nothing personal: the rows of conversations, mentions and advice stay with
their personal columns blank, so the digest's figures do not move; the mention's
(source, external id) stays too, so a re-delivery is still known as one and is not
stored again. What it removes: the identities (a new mention from the same handle
is a new customer), the names, handles, texts, URLs and languages, the advice
texts, the chat profile of a customer who wrote in a watched channel, and every
outbox row that carries them (pending ones are dropped: nothing personal goes out
later; delivered ones keep an empty payload).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from storage.dialect import table
from storage.models import (
    AdviceMessage,
    AdviceRequest,
    AuditEntry,
    Conversation,
    Customer,
    CustomerIdentity,
    Mention,
    OutboxRow,
    OutboxState,
    Person,
    Status,
    Team,
)

#: the audit actions of an erasure: at the customer's request, or by RETENTION_DAYS
ERASED = "erased"
RETENTION_ERASED = "retention_erased"
#: what an outbox row that carried personal data holds once it is erased
BLANK_PAYLOAD = json.dumps({"kind": "notice", "text": ""})
#: names shorter than this are not looked for in private messages: "Al" would match
#: other people's messages too
_NEEDLE_MIN = 3


@dataclass(frozen=True)
class Held:
    """How much Inloop holds about a customer (what `customer erase` would remove)."""

    identities: tuple[str, ...]
    conversations: int
    mentions: int
    advice: int


@dataclass(frozen=True)
class Erasure:
    """What an erasure did: its counts, and the cards already posted (number, channel,
    source), which the caller edits to say they were erased."""

    conversations: int
    mentions: int
    identities: int
    cards: tuple[tuple[int, str, str], ...]


def of_customer(customer_id: int) -> ColumnElement[bool]:
    """The customer's conversations not erased yet."""
    return and_(col(Conversation.customer_id) == customer_id, col(Conversation.erased_at).is_(None))


def resolved_before(cutoff: datetime) -> ColumnElement[bool]:
    """Conversations resolved before `cutoff` and not erased yet (RETENTION_DAYS)."""
    return and_(
        col(Conversation.status) == Status.RESOLVED,
        col(Conversation.resolved_at) < cutoff,
        col(Conversation.erased_at).is_(None),
    )


async def held(session: AsyncSession, customer_id: int) -> Held:
    """The customer's identities (as `source:handle`) and how many conversations,
    mentions and advice requests of theirs are held: three reads."""
    identities = (
        await session.execute(
            select(col(CustomerIdentity.source), col(CustomerIdentity.handle))
            .where(col(CustomerIdentity.customer_id) == customer_id)
            .order_by(col(CustomerIdentity.id))
        )
    ).all()
    chosen = _ids(of_customer(customer_id))
    conversations = await session.scalar(
        select(func.count()).where(col(Conversation.id).in_(chosen))
    )
    mentions = await session.scalar(
        select(func.count()).where(col(Mention.conversation_id).in_(chosen))
    )
    advice = await session.scalar(
        select(func.count()).where(col(AdviceRequest.conversation_id).in_(chosen))
    )
    return Held(
        tuple(f"{s}:{h}" for s, h in identities),
        int(conversations or 0),
        int(mentions or 0),
        int(advice or 0),
    )


def _ids(where: ColumnElement[bool]) -> Select[int | None]:
    return select(col(Conversation.id)).where(where)


async def erase(
    session: AsyncSession,
    where: ColumnElement[bool],
    now: datetime,
    *,
    actor_id: int | None,
    action: str = ERASED,
    customer_id: int | None = None,
) -> Erasure:
    """Erase the personal data of the conversations `where` chooses (`of_customer`,
    `resolved_before`); with `customer_id`, the customer's identities too, whether or
    not they still have conversations. The same few statements whatever the size.

    Identities are removed when no conversation still needs them: all of a customer's
    at their request; for retention, those whose every conversation is erased.
    """
    chosen = _ids(where)
    cards = tuple(
        (int(n or 0), str(channel), str(source))
        for n, channel, source in await session.execute(
            select(col(Conversation.id), col(Conversation.card_channel), col(Conversation.source))
            .where(col(Conversation.id).in_(chosen), col(Conversation.card_channel).is_not(None))
            .order_by(col(Conversation.id))
        )
    )
    identity_ids = set(
        (
            await session.scalars(
                select(col(Conversation.identity_id))
                .where(col(Conversation.id).in_(chosen), col(Conversation.identity_id).is_not(None))
                .distinct()
            )
        ).all()
    )
    if customer_id is not None:
        identity_ids |= set(
            (
                await session.scalars(
                    select(col(CustomerIdentity.id)).where(
                        col(CustomerIdentity.customer_id) == customer_id
                    )
                )
            ).all()
        )
    names = await _names(session, chosen, identity_ids)
    await _erase_outbox(session, chosen, names)
    mentions = await _rowcount(
        session,
        update(Mention)
        .where(col(Mention.conversation_id).in_(chosen))
        .values(author_name="", author_handle="", text="", url="", lang="", tags=""),
    )
    await session.execute(
        update(AdviceMessage)
        .where(
            col(AdviceMessage.request_id).in_(
                select(col(AdviceRequest.id)).where(col(AdviceRequest.conversation_id).in_(chosen))
            )
        )
        .values(text="")
    )
    # Who erased, and when: the audit entries carry no personal data (their details
    # are team names, staff ids and advice numbers), so they stay as they are.
    audit = table(AuditEntry)
    await session.execute(
        insert(audit).from_select(
            ["conversation_id", "actor_id", "action", "detail", "at"],
            select(
                col(Conversation.id),
                literal(actor_id, type_=audit.c.actor_id.type),
                literal(action),
                literal(""),
                literal(now, type_=audit.c.at.type),
            ).where(col(Conversation.id).in_(chosen)),
        )
    )
    # The key a follow-up would join by may hold a handle ("customer:giulia"): a new
    # mention on that thread opens a new conversation, for a new customer.
    conversations = await _rowcount(
        session,
        update(Conversation)
        .where(col(Conversation.id).in_(chosen))
        .values(
            customer_name="",
            customer_handle="",
            url="",
            conversation_key=literal("erased:") + cast(col(Conversation.id), String),
            identity_id=None,
            held_until=None,
            erased_at=now,
        )
        .execution_options(synchronize_session=False),
    )
    identities = await _erase_identities(session, identity_ids, customer_id, names)
    return Erasure(conversations, mentions, identities, cards)


async def _names(
    session: AsyncSession, chosen: Select[int | None], identity_ids: set[int | None]
) -> set[str]:
    """The names and handles the customer went by, as written in these conversations
    and identities (a few distinct values)."""
    rows = await session.execute(
        select(col(Conversation.customer_name), col(Conversation.customer_handle))
        .where(col(Conversation.id).in_(chosen))
        .distinct()
    )
    names = {value for row in rows for value in row if value}
    if identity_ids:
        found = await session.execute(
            select(col(CustomerIdentity.handle), col(CustomerIdentity.display_name)).where(
                col(CustomerIdentity.id).in_(identity_ids)
            )
        )
        names |= {value for row in found for value in row if value}
    return names


async def _erase_outbox(session: AsyncSession, chosen: Select[int | None], names: set[str]) -> None:
    """The outbox rows of these conversations (their cards and card threads), and the
    other messages that name the customer (private offers, follow-up notices and card
    copies; advice cards in the consultants' pool): pending ones are dropped, so
    nothing personal is sent later; delivered or failed ones keep an empty payload.

    A message about another customer of the same name is dropped too (names are
    matched, not ids): a notice lost beats a name sent after its erasure."""
    # As the name is written inside the JSON payload (quotes and backslashes escaped).
    needles = [
        json.dumps(n, ensure_ascii=False)[1:-1] for n in sorted(names) if len(n) >= _NEEDLE_MIN
    ]
    named = or_(
        false(),
        *(col(OutboxRow.payload).contains(n, autoescape=True) for n in needles),
    )
    carries = or_(
        col(OutboxRow.conversation_id).in_(chosen),
        # not a conversation's card: private messages, and posts in the consultants' pool
        and_(col(OutboxRow.conversation_id).is_(None), named),
    )
    await session.execute(
        delete(OutboxRow)
        .where(col(OutboxRow.state) == OutboxState.PENDING, carries)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(OutboxRow)
        .where(col(OutboxRow.state) != OutboxState.PENDING, carries)
        .values(payload=BLANK_PAYLOAD, last_error="")
        .execution_options(synchronize_session=False)
    )


async def _erase_identities(
    session: AsyncSession,
    identity_ids: set[int | None],
    customer_id: int | None,
    names: set[str],
) -> int:
    ids = [i for i in identity_ids if i is not None]
    if not ids:
        return 0
    still_used = (
        select(col(Conversation.id))
        .where(col(Conversation.identity_id) == col(CustomerIdentity.id))
        .exists()
    )
    which: ColumnElement[bool] = col(CustomerIdentity.id).in_(ids)
    if customer_id is None:
        which = and_(which, ~still_used)
    else:
        # the relationship owner set for them goes with them
        await session.execute(
            update(Customer).where(col(Customer.id) == customer_id).values(owner_id=None)
        )
        if await session.scalar(select(func.count()).where(which, still_used)):
            # conversations not chosen (none at a customer's request) still point at
            # them: they let go first
            await session.execute(
                update(Conversation)
                .where(col(Conversation.identity_id).in_(ids))
                .values(identity_id=None)
                .execution_options(synchronize_session=False)
            )
    gone = (
        await session.execute(
            select(col(CustomerIdentity.source), col(CustomerIdentity.handle)).where(which)
        )
    ).all()
    removed = await _rowcount(
        session,
        delete(CustomerIdentity).where(which).execution_options(synchronize_session=False),
    )
    # A customer who wrote in a watched channel has a chat profile too (not staff):
    # their name there goes with the identity.
    refs = [f"{source}:{handle}" for source, handle in gone]
    if refs:
        await session.execute(
            delete(Person)
            .where(col(Person.ref).in_(refs), col(Person.role).is_(None))
            .execution_options(synchronize_session=False)
        )
    return removed


async def _rowcount(session: AsyncSession, statement: Any) -> int:
    result = await session.execute(statement)
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


# -- export -----------------------------------------------------------------------------------


async def export(session: AsyncSession, customer_id: int, now: datetime) -> dict[str, Any]:
    """Everything held about the customer, as JSON-ready data: their identities, their
    conversations, the mentions, the history (audit) of those conversations, and the
    advice asked about them with its messages. Six reads, whatever the size."""
    customer = await session.get(Customer, customer_id)
    assert customer is not None
    mine = select(col(Conversation.id)).where(col(Conversation.customer_id) == customer_id)
    owner = aliased(Person)
    identities = (
        await session.scalars(
            select(CustomerIdentity)
            .where(col(CustomerIdentity.customer_id) == customer_id)
            .order_by(col(CustomerIdentity.id))
        )
    ).all()
    conversations = (
        await session.execute(
            select(Conversation, col(Team.name), col(owner.display_name))
            .outerjoin(Team, col(Team.id) == col(Conversation.team_id))
            .outerjoin(owner, col(owner.id) == col(Conversation.owner_id))
            .where(col(Conversation.customer_id) == customer_id)
            .order_by(col(Conversation.id))
        )
    ).all()
    mentions = (
        await session.scalars(
            select(Mention)
            .where(col(Mention.conversation_id).in_(mine))
            .order_by(col(Mention.conversation_id), col(Mention.id))
        )
    ).all()
    audit = (
        await session.execute(
            select(AuditEntry, col(Person.display_name))
            .outerjoin(Person, col(Person.id) == col(AuditEntry.actor_id))
            .where(col(AuditEntry.conversation_id).in_(mine))
            .order_by(col(AuditEntry.id))
        )
    ).all()
    asker, consultant = aliased(Person), aliased(Person)
    requests = (
        await session.execute(
            select(AdviceRequest, col(asker.display_name), col(consultant.display_name))
            .join(asker, col(asker.id) == col(AdviceRequest.asked_by))
            .outerjoin(consultant, col(consultant.id) == col(AdviceRequest.consultant_id))
            .where(col(AdviceRequest.conversation_id).in_(mine))
            .order_by(col(AdviceRequest.conversation_id), col(AdviceRequest.seq))
        )
    ).all()
    messages: dict[int, list[dict[str, Any]]] = {}
    for message, author in await session.execute(
        select(AdviceMessage, col(Person.display_name))
        .join(Person, col(Person.id) == col(AdviceMessage.author_id))
        .join(AdviceRequest, col(AdviceRequest.id) == col(AdviceMessage.request_id))
        .where(col(AdviceRequest.conversation_id).in_(mine))
        .order_by(col(AdviceMessage.id))
    ):
        messages.setdefault(message.request_id, []).append(
            {"author": author, "kind": message.kind, "text": message.text, "at": _at(message.at)}
        )
    relationship_owner = (
        await session.get(Person, customer.owner_id) if customer.owner_id is not None else None
    )
    return {
        "customer": {
            "id": customer_id,
            "created_at": _at(customer.created_at),
            "relationship_owner": relationship_owner.display_name if relationship_owner else None,
        },
        "exported_at": _at(now),
        "identities": [
            {
                "source": i.source,
                "handle": i.handle,
                "name": i.display_name,
                "created_at": _at(i.created_at),
            }
            for i in identities
        ],
        "conversations": [_conversation(c, team, name) for c, team, name in conversations],
        "mentions": [
            {
                "conversation": m.conversation_id,
                "source": m.source,
                "external_id": m.external_id,
                "author_name": m.author_name,
                "author_handle": m.author_handle,
                "text": m.text,
                "url": m.url,
                "language": m.lang,
                "tags": m.tags.split(),
                "created_at": _at(m.created_at),
                "received_at": _at(m.received_at),
            }
            for m in mentions
        ],
        "audit": [
            {
                "conversation": e.conversation_id,
                "by": name or "Inloop",
                "action": e.action,
                "detail": e.detail,
                "at": _at(e.at),
            }
            for e, name in audit
        ],
        "advice": [
            {
                "id": f"{r.conversation_id}-A{r.seq}",
                "conversation": r.conversation_id,
                "asked_by": asked_by,
                "consultant": consultant_name,
                "status": r.status,
                "rating": r.rating,
                "created_at": _at(r.created_at),
                "answered_at": _at(r.answered_at),
                "messages": messages.get(r.id or 0, []),
            }
            for r, asked_by, consultant_name in requests
        ],
    }


def _conversation(c: Conversation, team: str | None, owner: str | None) -> dict[str, Any]:
    return {
        "number": c.id,
        "source": c.source,
        "customer_name": c.customer_name,
        "customer_handle": c.customer_handle,
        "url": c.url,
        "team": team,
        "status": c.status,
        "owner": owner,
        "mentions": c.mention_count,
        "created_at": _at(c.created_at),
        "claimed_at": _at(c.claimed_at),
        "first_reply_at": _at(c.first_reply_at),
        "resolved_at": _at(c.resolved_at),
        "erased_at": _at(c.erased_at),
    }


def _at(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def as_json(data: dict[str, Any]) -> bytes:
    """The export as a file: UTF-8 JSON, readable (indented), names and texts as written."""
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
