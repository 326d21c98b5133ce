"""What a conversation's card shows beyond its own row, read in one statement.

A card is re-rendered on every change (a claim, a reply, a follow-up), so this
read is on the path of every answer: one round trip rather than five (the
customer's history included).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import BindParameter, Row, Select, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from storage.customers import History
from storage.models import AdviceRequest, AdviceStatus, Conversation, Mention, Person, Team

#: the columns of the facts statement: team, owner, text, url, open, answered, earlier,
#: last_at, last_status, last_owner
Facts = tuple[str, str, str, str, int, int, int, datetime, str, str]


@dataclass(frozen=True)
class CardFacts:
    team_name: str = ""
    owner_name: str = ""
    latest_text: str = ""
    latest_url: str = ""
    open_advice: int = 0
    answered_advice: int = 0
    #: the customer's conversations before this one (None: not read, or no customer)
    history: History | None = None
    #: the relationship owner it came in for ("marta's customer"); "" when none
    holder: str = ""


async def facts(session: AsyncSession, conversation: Conversation) -> CardFacts:
    """The card's facts, and the customer's history before this conversation when it
    has a customer (in the same statement: one round trip less per card on PostgreSQL,
    where every statement is one)."""
    row = (await session.execute(statement(), parameters(conversation))).one()
    return of_row(row, conversation)


def parameters(conversation: Conversation) -> dict[str, int | None]:
    """What the facts statement (`statement`) is asked about `conversation`, as it is now."""
    return {
        "number": conversation.id,
        "team": conversation.team_id or 0,
        "owner": conversation.owner_id or 0,
        "customer": conversation.customer_id or 0,
    }


def of_row(row: Row[*Facts], conversation: Conversation) -> CardFacts:
    """The facts from a row of `statement` (or of a statement that selects its columns)."""
    history = None
    if conversation.customer_id is not None:
        history = History(
            int(row.earlier or 0), row.last_at, row.last_status or "", row.last_owner or ""
        )
    return CardFacts(
        team_name=row.team or "",
        owner_name=row.owner or "",
        latest_text=row.text or "",
        latest_url=row.url or "",
        open_advice=int(row.open or 0),
        answered_advice=int(row.answered or 0),
        history=history,
    )


@cache
def statement() -> Select[*Facts]:
    """The facts of conversation `number` in one row (bound: `parameters`); public for a
    storage module that reads them with a change of its own (`conversations.save_change`).
    Built once: composing these subqueries costs more than running them."""
    number: BindParameter[int] = bindparam("number")
    customer: BindParameter[int] = bindparam("customer")
    # the customer's conversations before this one (`storage.customers.history`)
    earlier = and_(col(Conversation.customer_id) == customer, col(Conversation.id) < number)
    last = (
        select(col(Conversation.id))
        .where(earlier)
        .order_by(col(Conversation.id).desc())
        .limit(1)
        .scalar_subquery()
    )
    last_conversation = aliased(Conversation)
    latest = (
        select(col(Mention.id))
        .where(col(Mention.conversation_id) == number)
        .order_by(col(Mention.id).desc())
        .limit(1)
        .scalar_subquery()
    )

    def advice(*statuses: AdviceStatus) -> Select[int]:
        return select(func.count()).where(
            col(AdviceRequest.conversation_id) == number,
            col(AdviceRequest.status).in_(statuses),
        )

    return select(
        select(col(Team.name))
        .where(col(Team.id) == bindparam("team"))
        .scalar_subquery()
        .label("team"),
        select(col(Person.display_name))
        .where(col(Person.id) == bindparam("owner"))
        .scalar_subquery()
        .label("owner"),
        select(col(Mention.text)).where(col(Mention.id) == latest).scalar_subquery().label("text"),
        select(col(Mention.url)).where(col(Mention.id) == latest).scalar_subquery().label("url"),
        advice(AdviceStatus.OPEN, AdviceStatus.TAKEN).scalar_subquery().label("open"),
        advice(AdviceStatus.ANSWERED).scalar_subquery().label("answered"),
        select(func.count()).where(earlier).scalar_subquery().label("earlier"),
        select(col(last_conversation.created_at))
        .where(col(last_conversation.id) == last)
        .scalar_subquery()
        .label("last_at"),
        select(col(last_conversation.status))
        .where(col(last_conversation.id) == last)
        .scalar_subquery()
        .label("last_status"),
        select(col(Person.display_name))
        .join(last_conversation, col(last_conversation.owner_id) == col(Person.id))
        .where(col(last_conversation.id) == last)
        .scalar_subquery()
        .label("last_owner"),
    )
