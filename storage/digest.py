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

from sqlalchemy import (
    ColumnElement,
    Float,
    case,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import col

from storage.customers import continuity
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
    #: person id → minutes from the customer's first message to the conversation's first
    #: claim / first reply, for the conversations this person claimed / replied to
    #: first: in runs, each sorted (a closed week is one run a person: its median is
    #: read, not computed; see `median`)
    to_claim: dict[int, list[Sequence[float]]] = field(default_factory=lambda: defaultdict(list))
    to_reply: dict[int, list[Sequence[float]]] = field(default_factory=lambda: defaultdict(list))
    #: team id → the same, by team
    team_to_claim: dict[int, list[Sequence[float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    team_mentions: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    team_opened: dict[int, int] = field(default_factory=dict)
    #: team id → (arrived, waited until: claimed, or the week's end or now) of the
    #: conversations opened this week that waited longer than `over_minutes` on the
    #: clock; what share of it was working time is the caller's to count
    team_waits: dict[int, list[tuple[datetime, datetime]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    #: team id → conversations opened this week, claimed on a closed day, over the
    #: team's target in working time (storage/day_totals.py `over_target`)
    team_over: dict[int, int] = field(default_factory=dict)
    #: consultant id → received, answered, minutes to answer, rated useful
    advice_received: dict[int, int] = field(default_factory=dict)
    advice_answered: dict[int, int] = field(default_factory=dict)
    advice_minutes: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    advice_useful: dict[int, int] = field(default_factory=dict)
    #: mentions that arrived each day, one count per day start given to `week`
    per_day: list[int] = field(default_factory=list)
    #: person id → minutes committed (blocks of the week) and given (blocks and `log`)
    committed: dict[int, int] = field(default_factory=dict)
    given: dict[int, int] = field(default_factory=dict)
    #: person id → outcome → blocks
    sessions: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    #: team id → conversations of returning customers opened, and how many of them the
    #: customer's relationship owner has; person id → the same, for the customers they hold
    team_returning: dict[int, int] = field(default_factory=dict)
    team_returning_by_owner: dict[int, int] = field(default_factory=dict)
    returning: dict[int, int] = field(default_factory=dict)
    returning_by_owner: dict[int, int] = field(default_factory=dict)


class minutes_between(FunctionElement[float]):
    """`later - earlier` in minutes, never negative, to 1/10,000 of a minute, computed by
    the database: no datetimes to fetch and parse. (Rounded because julianday() is a
    double: a 20-minute wait would come back as 19.99999….)"""

    type = Float()
    inherit_cache = True


@compiles(minutes_between)
def _minutes_sqlite(element: minutes_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"max(0.0, round((julianday({later}) - julianday({earlier})) * 1440.0, 4))"


@compiles(minutes_between, "postgresql")
def _minutes_postgresql(element: minutes_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    minutes = f"round(EXTRACT(EPOCH FROM ({later}) - ({earlier})) / 60, 4)"
    return f"CAST(GREATEST(0, {minutes}) AS DOUBLE PRECISION)"


async def _fetch(session: AsyncSession, statement: Any) -> Sequence[Any]:
    """Plain rows, run on the connection: these rows are summed and sorted, never written
    back, so the ORM's row loading (and a tuple per row) is work for nothing: a week
    is some 50,000 rows."""
    return (await (await session.connection()).execute(statement)).all()


#: the team of a conversation without one (before any team existed), in `Parts` keys
NO_TEAM = 0


@dataclass
class Parts:
    """The figures of a span of time that cannot change once the span is over, by team
    (NO_TEAM for none), before any team filter: what a closed day keeps
    (storage/day_totals.py) and what the live digest computes from the rows alike.

    A time is counted in the span of the moment it is about (the claim, the first
    reply, the entry, the mention, the conversation's arrival): a week's figures are
    the sum of its days' (and its medians the median of its days' values together).
    """

    #: (day index, team, source) → mentions received
    mentions: dict[tuple[int, int, str], int] = field(default_factory=dict)
    #: (actor, action, team) → audit entries (claimed, replied, resolved); team NO_TEAM
    #: also for an entry about no conversation
    actions: dict[tuple[int, str, int], int] = field(default_factory=dict)
    #: team → conversations opened
    opened: dict[int, int] = field(default_factory=dict)
    #: (team, person) → minutes to claim / to first reply, credited to who acted; each
    #: sorted once `parts` returns (or as a closed day's array keeps them)
    claims: dict[tuple[int, int], Sequence[float]] = field(default_factory=dict)
    replies: dict[tuple[int, int], Sequence[float]] = field(default_factory=dict)
    #: team → minutes to claim of every conversation claimed (a team's, not a person's)
    team_claims: dict[int, Sequence[float]] = field(default_factory=dict)


async def parts(
    session: AsyncSession, start: datetime, end: datetime, days: Sequence[datetime]
) -> Parts:
    """The `Parts` of [start, end), read from the rows; `days`: where each day starts
    (the first is `start`), for the mentions per day.

    Counts are made by the database and durations computed there: a week of a year
    is ~20,000 mentions and ~8,000 conversations, too many rows to fetch and parse.
    No team is filtered here (`fold` does): a `team_id = ?` term lets SQLite (which
    has no statistics unless ANALYZE ran) pick the team index and read the team's
    whole year instead of the week; every query here is driven by its time index.
    """
    found = Parts()
    claims: dict[tuple[int, int], list[float]] = defaultdict(list)
    replies: dict[tuple[int, int], list[float]] = defaultdict(list)
    team_claims: dict[int, list[float]] = defaultdict(list)

    def between(column: Any) -> list[ColumnElement[bool]]:
        return [column >= start, column < end]

    # Times to claim and to first reply: the team's are every conversation's; a
    # person's are those of what they did, from the audit log: the entry that set a
    # conversation's claimed_at (a claim, or a reply to an unclaimed one) is the
    # claimer's, the one that set first_reply_at the first replier's. Whoever owns the
    # conversation now (after a reassign) did neither, and a manager who reassigned an
    # unclaimed conversation claimed nothing (it counts for the team only). Driven by
    # the conversations' time index, each joined to its entry through the audit log's
    # (at, action, …) index: no scan of the week's log.
    for moment, setters, times in (
        (col(Conversation.claimed_at), ("claimed", "replied"), claims),
        (col(Conversation.first_reply_at), ("replied",), replies),
    ):
        by = aliased(AuditEntry)
        claiming = times is claims
        first: dict[int, tuple[int | None, int | None, int, float]] = {}
        for conversation, team, minutes, entry, actor in await _fetch(
            session,
            select(
                col(Conversation.id),
                col(Conversation.team_id),
                minutes_between(moment, col(Conversation.created_at)),
                col(by.id),
                col(by.actor_id),
            )
            .outerjoin(
                by,
                (col(by.at) == moment)
                & col(by.action).in_(setters)
                & (col(by.conversation_id) == col(Conversation.id))
                & col(by.actor_id).is_not(None),
            )
            .where(*between(moment)),
        ):
            # entries of one instant (claimed and replied in one go): the first written
            known = first.get(conversation)
            if known is None or (entry is not None and (known[0] is None or entry < known[0])):
                first[conversation] = (entry, actor, team or NO_TEAM, minutes)
            if claiming and known is None and team is not None:
                team_claims[team].append(minutes)
        for _, actor, team, minutes in first.values():
            if actor is not None:
                times[team, actor].append(minutes)
    found.claims = {scope: sorted(values) for scope, values in claims.items()}
    found.replies = {scope: sorted(values) for scope, values in replies.items()}
    found.team_claims = {team: sorted(values) for team, values in team_claims.items()}

    for team, opened in await _fetch(
        session,
        select(col(Conversation.team_id), func.count())
        .where(*between(col(Conversation.created_at)))
        .group_by(col(Conversation.team_id)),
    ):
        found.opened[team or NO_TEAM] = int(opened)

    # What people did, from the audit log, with the team of the conversation if any.
    for actor, action, team, count in await _fetch(
        session,
        select(
            col(AuditEntry.actor_id),
            col(AuditEntry.action),
            col(Conversation.team_id),
            func.count(),
        )
        .outerjoin(Conversation, col(Conversation.id) == col(AuditEntry.conversation_id))
        .where(
            col(AuditEntry.actor_id).is_not(None),
            col(AuditEntry.action).in_(("claimed", "replied", "resolved")),
            *between(col(AuditEntry.at)),
        )
        .group_by(col(AuditEntry.actor_id), col(AuditEntry.action), col(Conversation.team_id)),
    ):
        key = (int(actor), str(action), team or NO_TEAM)
        found.actions[key] = found.actions.get(key, 0) + int(count)

    # Mentions in, by team, source and day: counted by the database.
    received = col(Mention.received_at)
    # (a CASE needs a WHEN: a single day has one that is always true)
    whens = [(received < b, i) for i, b in enumerate(days[1:])] or [(received < end, 0)]
    day = case(*whens, else_=len(days) - 1)
    for team, source, i, count in await _fetch(
        session,
        select(col(Conversation.team_id), col(Mention.source), day, func.count())
        .join(Conversation, col(Conversation.id) == col(Mention.conversation_id))
        .where(*between(received))
        # by position: PostgreSQL would not see the CASE's parameters as the same twice
        .group_by(literal_column("1"), literal_column("2"), literal_column("3")),
    ):
        where = (int(i), team or NO_TEAM, str(source))
        found.mentions[where] = found.mentions.get(where, 0) + int(count)
    return found


def fold(raw: Raw, found: Parts, team_id: int | None, first_day: int = 0) -> None:
    """Add `found` to `raw`, for one team (or every team, None); its day 0 is the
    raw's day `first_day`."""

    def ours(team: int) -> bool:
        return team_id is None or team == team_id

    for (i, team, source), count in found.mentions.items():
        if not ours(team):
            continue
        raw.per_day[first_day + i] += count
        if team != NO_TEAM:
            by_source = raw.team_mentions[team]
            by_source[source] = by_source.get(source, 0) + count
    for (actor, action, team), count in found.actions.items():
        if ours(team):
            acted = raw.actions[actor]
            acted[action] = acted.get(action, 0) + count
    for team, opened in found.opened.items():
        if team != NO_TEAM and ours(team):
            raw.team_opened[team] = raw.team_opened.get(team, 0) + opened
    for scoped, target in ((found.claims, raw.to_claim), (found.replies, raw.to_reply)):
        for (team, person), minutes in scoped.items():
            if ours(team):
                target[person].append(minutes)
    for team, minutes in found.team_claims.items():
        if ours(team):
            raw.team_to_claim[team].append(minutes)


@dataclass(frozen=True)
class WeekMedians:
    """A closed week's medians, computed once when the week was closed (what the digest
    shows of its arrays): a week's build then reads a few numbers a person, not every
    value of the week (80,000 claims on a 10M-mention year). Each is `median` of the
    very values the build from the rows has, so it is the same float."""

    #: (team, person) → minutes to claim / to first reply, within that team
    claims: dict[tuple[int, int], float] = field(default_factory=dict)
    replies: dict[tuple[int, int], float] = field(default_factory=dict)
    #: person → the same across every team (the whole company's digest)
    claims_all: dict[int, float] = field(default_factory=dict)
    replies_all: dict[int, float] = field(default_factory=dict)
    #: team → minutes to claim of every conversation of the team claimed
    team_claims: dict[int, float] = field(default_factory=dict)

    @staticmethod
    def of(found: Parts) -> WeekMedians:
        medians = WeekMedians()
        for scoped, within, across in (
            (found.claims, medians.claims, medians.claims_all),
            (found.replies, medians.replies, medians.replies_all),
        ):
            runs: dict[int, list[Sequence[float]]] = defaultdict(list)
            for (team, person), minutes in scoped.items():
                value = median([minutes])
                if value is not None:
                    within[team, person] = value
                    runs[person].append(minutes)
            for person, person_runs in runs.items():
                value = median(person_runs)
                if value is not None:
                    across[person] = value
        for team, minutes in found.team_claims.items():
            value = median([minutes])
            if value is not None:
                medians.team_claims[team] = value
        return medians


def fold_week(raw: Raw, found: Parts, medians: WeekMedians, team_id: int | None) -> None:
    """Add a closed week to `raw`: its counts as `fold` does, its medians as runs of one
    value (the median of one value is that value)."""
    fold(raw, found, team_id)
    if team_id is None:
        for person, value in medians.claims_all.items():
            raw.to_claim[person].append((value,))
        for person, value in medians.replies_all.items():
            raw.to_reply[person].append((value,))
    else:
        for scoped, target in ((medians.claims, raw.to_claim), (medians.replies, raw.to_reply)):
            for (team, person), value in scoped.items():
                if team == team_id:
                    target[person].append((value,))
    for team, value in medians.team_claims.items():
        if team_id is None or team == team_id:
            raw.team_to_claim[team].append((value,))


def median(runs: Sequence[Sequence[float]]) -> float | None:
    """The median of the values of `runs` (each sorted), as `statistics.median` computes
    it: the middle value, or the mean of the two middle ones. One run (a person's
    closed week) is read at its middle, without a copy; several are merged first."""
    values = runs[0] if len(runs) == 1 else sorted(v for run in runs for v in run)
    n = len(values)
    if not n:
        return None
    i = n // 2
    return values[i] if n % 2 else (values[i - 1] + values[i]) / 2


async def week(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    team_id: int | None,
    over_minutes: int,
    now: datetime,
    days: Sequence[datetime],
) -> Raw:
    """The week's figures from its rows. `days`: where each day of the week starts (the
    first is `start`), for mentions per day. `over_minutes`: the smallest claim target
    of the teams; working time is never more than the time that passed, so a shorter
    wait is under every target and not read."""
    raw = Raw(per_day=[0] * len(days))
    fold(raw, await parts(session, start, end, days), team_id)
    for team, arrived, until in await waits(
        session, start, end, over_minutes=over_minutes, until=min(now, end)
    ):
        if team_id is None or team == team_id:
            raw.team_waits[team].append((arrived, until))
    await live(session, raw, start, end, team_id=team_id, from_history=True)
    return raw


async def waits(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    over_minutes: int,
    until: datetime,
    claimed_since: datetime | None = None,
) -> list[tuple[int, datetime, datetime]]:
    """(team, arrived, waited until) of the conversations of a team opened in [start,
    end) that waited at least `over_minutes` on the clock to be claimed: until their
    claim, or `until` for those still unclaimed. `claimed_since`: only those claimed
    since then, or unclaimed (the claims before are in closed days' `day_wait`)."""
    waited = minutes_between(
        func.coalesce(col(Conversation.claimed_at), until), col(Conversation.created_at)
    )
    query = select(
        col(Conversation.team_id), col(Conversation.created_at), col(Conversation.claimed_at)
    ).where(col(Conversation.team_id).is_not(None), waited >= over_minutes)
    opened = (col(Conversation.created_at) >= start, col(Conversation.created_at) < end)
    if claimed_since is None:
        queries = [query.where(*opened)]
    else:
        # Two queries, each read from the (claimed_at, created_at) index: what was opened
        # this week and is unclaimed, and what was claimed since (today's claims, the
        # week checked here): not the week's conversations, which one OR would read.
        queries = [
            query.where(col(Conversation.claimed_at).is_(None), *opened),
            query.where(col(Conversation.claimed_at) >= claimed_since),
        ]
    return [
        (int(team), created, claimed or until)
        for one in queries
        for team, created, claimed in await _fetch(session, one)
        if start <= created < end
    ]


async def live(
    session: AsyncSession,
    raw: Raw,
    start: datetime,
    end: datetime,
    *,
    team_id: int | None,
    from_history: bool = False,
) -> None:
    """The figures that change after their day, whole week: advice (an advice request
    is taken and rated later), continuity (a relationship owner gets the conversation
    later; read from counts the database keeps exact, `storage.customers.continuity`),
    dialogue time (a block's outcome is known later).
    `from_history`: returning customers found from each one's earlier conversations,
    not from the counts nor their conversations' flag."""

    def between(column: Any) -> list[ColumnElement[bool]]:
        return [column >= start, column < end]

    def ours(team: int | None) -> bool:
        return team_id is None or team == team_id

    team_of: Any = null() if team_id is None else col(Conversation.team_id)

    # Advice: received (asked this week), answered this week, useful.
    def advice(*columns: Any) -> Any:
        query = select(*columns, team_of).where(col(AdviceRequest.consultant_id).is_not(None))
        if team_id is None:
            return query
        return query.join(Conversation, col(Conversation.id) == col(AdviceRequest.conversation_id))

    # counted by the database: a week of a 10M-mention year asks some 2,000
    per = [col(AdviceRequest.consultant_id)]
    if team_id is not None:
        per.append(col(Conversation.team_id))  # (PostgreSQL refuses a NULL to group by)
    for consultant, count, team in await _fetch(
        session,
        advice(col(AdviceRequest.consultant_id), func.count())
        .where(*between(col(AdviceRequest.created_at)))
        .group_by(*per),
    ):
        if ours(team):
            raw.advice_received[consultant] = raw.advice_received.get(consultant, 0) + int(count)
    for consultant, minutes, rating, team in await _fetch(
        session,
        advice(
            col(AdviceRequest.consultant_id),
            minutes_between(col(AdviceRequest.answered_at), col(AdviceRequest.created_at)),
            col(AdviceRequest.rating),
        ).where(*between(col(AdviceRequest.answered_at))),
    ):
        if not ours(team):
            continue
        raw.advice_answered[consultant] = raw.advice_answered.get(consultant, 0) + 1
        raw.advice_minutes[consultant].append(minutes)
        if rating == "useful":
            raw.advice_useful[consultant] = raw.advice_useful.get(consultant, 0) + 1
    # Continuity: returning customers' conversations, and their relationship owners'.
    for team, holder, count, by_owner in await continuity(
        session, start, end, from_history=from_history, team_id=team_id
    ):
        if not ours(team):
            continue
        if team is not None:
            raw.team_returning[team] = raw.team_returning.get(team, 0) + count
            raw.team_returning_by_owner[team] = raw.team_returning_by_owner.get(team, 0) + by_owner
        if holder is not None:
            raw.returning[holder] = raw.returning.get(holder, 0) + count
            raw.returning_by_owner[holder] = raw.returning_by_owner.get(holder, 0) + by_owner
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


@dataclass(frozen=True)
class Named:
    """What the digest shows of a person."""

    id: int
    display_name: str
    role: str | None


async def people(session: AsyncSession, ids: set[int]) -> list[Named]:
    """Three columns, not the ORM's `Person`: ~500 of them, each a model to build."""
    if not ids:
        return []
    rows = await _fetch(
        session,
        select(col(Person.id), col(Person.display_name), col(Person.role)).where(
            col(Person.id).in_(ids)
        ),
    )
    return [Named(int(i), str(name), role) for i, name, role in rows]


async def unclaimed(
    session: AsyncSession, team_ids: Sequence[int], limit: int
) -> dict[int, tuple[list[tuple[int, datetime]], int]]:
    """team → (its `limit` oldest open conversations nobody claimed, as (number,
    arrived), and how many there are): what waits now, as `conversations.unclaimed`
    orders it. Two columns from `(team_id, status, created_at, id)` alone: counted
    there, and the oldest read in its order, not the team's backlog sorted."""
    if not team_ids:
        return {}
    opened = col(Conversation.status) == Status.OPEN
    counts = {
        int(team): int(n)
        for team, n in await _fetch(
            session,
            select(col(Conversation.team_id), func.count())
            .where(col(Conversation.team_id).in_(team_ids), opened)
            .group_by(col(Conversation.team_id)),
        )
    }
    # Each team's oldest, one round trip for all: a LIMIT per team, each read in the
    # index's order (a member of a UNION takes its LIMIT only inside a subquery)
    waiting = [team for team in team_ids if counts.get(team)]
    oldest: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    if waiting:
        each = [
            select(col(Conversation.team_id), col(Conversation.id), col(Conversation.created_at))
            .where(col(Conversation.team_id) == team, opened)
            .order_by(col(Conversation.created_at), col(Conversation.id))
            .limit(limit)
            .subquery()
            for team in waiting
        ]
        for team, number, arrived in await _fetch(
            session, union_all(*(select(*one.c) for one in each))
        ):
            oldest[int(team)].append((int(number), arrived))
    return {
        team: (sorted(oldest[team], key=lambda n: (n[1], n[0])), counts.get(team, 0))
        for team in team_ids
    }


async def teams(session: AsyncSession, team_id: int | None) -> Sequence[Team]:
    query = select(Team).order_by(col(Team.id))
    if team_id is not None:
        query = query.where(col(Team.id) == team_id)
    return (await session.scalars(query)).all()
