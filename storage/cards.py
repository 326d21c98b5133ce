"""What a conversation's card shows beyond its own row, read in one statement.

A card is re-rendered on every change (a claim, a reply, a follow-up), so this
read is on the path of every answer: one round trip rather than four.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import BindParameter, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.customers import History
from storage.models import AdviceRequest, AdviceStatus, Conversation, Mention, Person, Team


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
    row = (
        await session.execute(
            _statement(),
            {
                "number": conversation.id,
                "team": conversation.team_id or 0,
                "owner": conversation.owner_id or 0,
            },
        )
    ).one()
    return CardFacts(
        team_name=row.team or "",
        owner_name=row.owner or "",
        latest_text=row.text or "",
        latest_url=row.url or "",
        open_advice=int(row.open or 0),
        answered_advice=int(row.answered or 0),
    )


@cache
def _statement() -> Select[str, str, str, str, int, int]:
    # Built once: composing six subqueries costs more than running them.
    number: BindParameter[int] = bindparam("number")
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
    )
