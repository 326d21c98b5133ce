"""The digest read from closed days' totals says exactly what the digest read from the
rows says (issue 18 §2), on generated weeks: any zone (a DST change in the window, a
half-hour offset), teams with their own targets and working hours, conversations
claimed and replied in one go, reassigned, left unclaimed, erased; with every day
closed, some, or none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from handlers import digest
from handlers.weeks import IsoWeek
from storage import customer_data
from storage.database import Database
from storage.dialect import table
from storage.migrate import upgrade
from storage.models import (
    AuditEntry,
    Conversation,
    DayTotal,
    DayWait,
    Mention,
    Person,
    Team,
)

#: Monday of a week before each DST change of 2026 in Europe (29 Mar, 25 Oct); the window
#: is three weeks from there
ANCHORS = (datetime(2026, 3, 23, tzinfo=UTC), datetime(2026, 10, 19, tzinfo=UTC))
WINDOW = timedelta(days=21)
ZONES = ("Europe/Rome", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
STAFF = (1, 2, 3, 4)
MANAGER = 5
DEFAULT_TARGET = 60
HOURS = (
    None,
    ("1,2,3,4,5", "09:00", "18:00", "Europe/Rome"),
    ("1,2,3,4,5,6,7", "22:00", "06:00", "America/New_York"),
)


@dataclass(frozen=True)
class Spec:
    """One conversation, its times in seconds after the window's start (or after the
    event before)."""

    arrives: int
    team: int | None
    source: str
    followups: tuple[int, ...]
    #: (seconds after arriving, who, by "claimed" or by "replied") or None
    claim: tuple[int, int, str] | None
    #: (seconds after the claim, who) or None
    reply: tuple[int, int] | None
    resolve: int | None
    reassign_to: int | None
    erased: bool


specs = st.builds(
    Spec,
    arrives=st.integers(0, int(WINDOW.total_seconds()) - 1),
    team=st.one_of(st.none(), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
    source=st.sampled_from(["twitter", "email", "slack"]),
    followups=st.lists(st.integers(1, 2 * 86400), max_size=2).map(tuple),
    claim=st.one_of(
        st.none(),
        st.tuples(
            st.integers(0, 3 * 86400),
            st.sampled_from(STAFF),
            st.sampled_from(["claimed", "replied"]),
        ),
    ),
    reply=st.one_of(st.none(), st.tuples(st.integers(0, 86400), st.sampled_from(STAFF))),
    resolve=st.one_of(st.none(), st.integers(0, 86400)),
    reassign_to=st.one_of(st.none(), st.sampled_from(STAFF)),
    erased=st.booleans(),
)
teams = st.lists(
    st.tuples(st.sampled_from([None, 1, 30, 60, 240]), st.sampled_from(HOURS)),
    min_size=3,
    max_size=3,
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await upgrade(database)
    yield database
    await database.dispose()


@settings(
    max_examples=15,
    derandomize=True,  # the same cases every run, on CI (its "ci" profile) and off it
    database=None,
    deadline=None,
    # One database serves every example of a test, emptied before each.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(ZONES),
    anchor=st.sampled_from(ANCHORS),
    team_setup=teams,
    conversations=st.lists(specs, max_size=25),
    now_after=st.integers(0, int((WINDOW + timedelta(days=3)).total_seconds())),
    at_once=st.sampled_from([1, 4, 1000]),
    team=st.sampled_from(["", "team0", "team1"]),
    week_rows=st.sampled_from(["kept", "deleted", "made again"]),
)
async def test_the_digest_from_day_totals_is_the_digest_from_the_rows(
    db: Database,
    zone: str,
    anchor: datetime,
    team_setup: list[tuple[int | None, tuple[str, str, str, str] | None]],
    conversations: list[Spec],
    now_after: int,
    at_once: int,
    team: str,
    week_rows: str,
) -> None:
    """`week_rows`: the closed weeks' rows (with their medians) as the job made them,
    deleted as 0016d does (the weeks read from their days), or made again after that
    by the job."""
    now = anchor + timedelta(seconds=now_after)
    await _store(db, anchor, now, team_setup, conversations)
    async with db.transaction() as session:
        closed = await digest.close_days(session, zone, now, at_once)
    async with db.read() as session:
        days = await session.scalar(
            select(func.count()).select_from(DayTotal).where(col(DayTotal.days) == 1)
        )
        first_arrival = await session.scalar(select(func.min(col(Conversation.created_at))))
    assert days == closed
    if week_rows != "kept":
        made = await _week_rows(db)
        async with db.transaction() as session:
            await session.execute(delete(table(DayTotal)).where(col(DayTotal.days) == 7))
        if week_rows == "made again":
            async with db.transaction() as session:
                # days that ended since are closed too (at_once of them), then the weeks
                await digest.close_days(session, zone, now, 1000)
            assert await _week_rows(db) >= made
    if first_arrival is not None and now - first_arrival > timedelta(days=2, hours=1):
        assert closed >= 1  # what is compared below is read from totals, at least in part

    first = IsoWeek.containing(anchor.date()).previous()
    weeks = [first]
    while weeks[-1].monday < (anchor + WINDOW).date() + timedelta(days=7):
        weeks.append(IsoWeek.containing(weeks[-1].monday + timedelta(days=7)))
    for week in weeks:
        async with db.read() as session:
            rows = await digest.build(session, week, zone, team, DEFAULT_TARGET, now, live=True)
            totals = await digest.build(session, week, zone, team, DEFAULT_TARGET, now)
        assert rows is not None and totals is not None
        assert digest.as_json(totals) == digest.as_json(rows), (week, team)


async def test_a_closed_week_is_one_row_and_its_days_are_not_closed_twice(db: Database) -> None:
    """The job closes each day once, in order, an hour after it ends; on a week's last
    day, the week too. Run again, it finds nothing to close."""
    anchor = ANCHORS[1]  # Monday 19 October 2026, 00:00 UTC
    spec = Spec(3600, 0, "twitter", (), (600, 1, "claimed"), (600, 1), None, None, False)
    now = anchor + timedelta(days=14)
    await _store(db, anchor, now, [(30, None)] * 3, [spec])
    async with db.transaction() as session:
        # From Monday 19 (the first conversation's day, in Rome) to Saturday 31 Oct:
        # Sunday 1 Nov ends at 23:00 UTC (CET), and is closed an hour later.
        early = now - timedelta(microseconds=1)
        assert await digest.close_days(session, "Europe/Rome", early, 1000) == 13
    async with db.transaction() as session:
        assert await digest.close_days(session, "Europe/Rome", early, 1000) == 0
        assert await _weeks(session) == ["2026-10-19"]
    async with db.transaction() as session:
        assert await digest.close_days(session, "Europe/Rome", now, 1000) == 1
        assert await _weeks(session) == ["2026-10-19", "2026-10-26"]


async def _week_rows(db: Database) -> int:
    async with db.read() as session:
        found = await session.scalar(
            select(func.count()).select_from(DayTotal).where(col(DayTotal.days) == 7)
        )
    return int(found or 0)


async def _weeks(session: AsyncSession) -> list[str]:
    found = await session.scalars(
        select(col(DayTotal.day)).where(col(DayTotal.days) == 7).order_by(col(DayTotal.day))
    )
    return [str(day) for day in found]


async def _store(
    db: Database,
    anchor: datetime,
    now: datetime,
    team_setup: list[tuple[int | None, tuple[str, str, str, str] | None]],
    conversations: list[Spec],
) -> None:
    """Empty the tables, then write the people, teams and the conversations as the bot
    would have by `now` (what happens later is not there yet)."""
    async with db.transaction() as session:
        for model in (DayWait, DayTotal, AuditEntry, Mention, Conversation, Team, Person):
            await session.execute(delete(table(model)))
        await session.execute(
            insert(table(Person)),
            [
                {
                    "id": n,
                    "ref": f"console:p{n}",
                    "display_name": f"Person {n}",
                    "role": "manager" if n == MANAGER else "employee",
                    "created_at": anchor,
                }
                for n in (*STAFF, MANAGER)
            ],
        )
        await session.execute(
            insert(table(Team)),
            [
                {
                    "id": n + 1,
                    "name": f"team{n}",
                    "channel": f"console:#team{n}",
                    "tags": "",
                    "is_default": n == 0,
                    "created_at": anchor,
                    "claim_target_minutes": target,
                    "reply_target_minutes": None,
                    "work_days": hours[0] if hours else None,
                    "work_start": hours[1] if hours else None,
                    "work_end": hours[2] if hours else None,
                    "work_tz": hours[3] if hours else None,
                }
                for n, (target, hours) in enumerate(team_setup)
            ],
        )
        rows, mentions, audit, erased = [], [], [], []
        for number, spec in enumerate(conversations, 1):
            created = anchor + timedelta(seconds=spec.arrives, microseconds=number)
            if created > now:
                continue
            entries: list[tuple[datetime, int | None, str]] = [(created, None, "created")]
            claimed = replied = resolved = None
            owner = None
            if spec.claim is not None and created + timedelta(seconds=spec.claim[0]) <= now:
                claimed, owner = created + timedelta(seconds=spec.claim[0]), spec.claim[1]
                entries.append((claimed, owner, spec.claim[2]))
                if spec.claim[2] == "replied":
                    replied = claimed
                if spec.reassign_to is not None and claimed + timedelta(seconds=5) <= now:
                    # the manager gives it to someone else: the time to claim stays
                    # the claimer's
                    owner = spec.reassign_to
                    entries.append((claimed + timedelta(seconds=5), MANAGER, "reassigned"))
            if claimed is not None and replied is None and spec.reply is not None:
                at = claimed + timedelta(seconds=spec.reply[0])
                if at <= now:
                    replied = at  # a reply at the claim's instant: two entries, one instant
                    entries.append((at, spec.reply[1], "replied"))
            if replied is not None and spec.resolve is not None:
                at = replied + timedelta(seconds=spec.resolve)
                if at <= now:
                    resolved = at
                    entries.append((at, owner, "resolved"))
            received = [created] + [
                created + timedelta(seconds=s)
                for s in spec.followups
                if created + timedelta(seconds=s) <= now
            ]
            rows.append(
                {
                    "id": number,
                    "source": spec.source,
                    "conversation_key": f"k{number}",
                    "customer_name": f"Customer {number}",
                    "team_id": None if spec.team is None else spec.team + 1,
                    "status": "resolved"
                    if resolved
                    else "replied"
                    if replied
                    else "claimed"
                    if claimed
                    else "open",
                    "owner_id": owner,
                    "mention_count": len(received),
                    "created_at": created,
                    "updated_at": max(e[0] for e in entries),
                    "claimed_at": claimed,
                    "first_reply_at": replied,
                    "resolved_at": resolved,
                }
            )
            mentions += [
                {
                    "source": spec.source,
                    "external_id": f"k{number}-{i}",
                    "conversation_id": number,
                    "author_name": f"Customer {number}",
                    "text": "ciao",
                    "created_at": at,
                    "received_at": at,
                }
                for i, at in enumerate(received)
            ]
            audit += [(at, number, actor, action) for at, actor, action in entries]
            if spec.erased:
                erased.append(number)
        if rows:
            await session.execute(insert(table(Conversation)), rows)
            await session.execute(insert(table(Mention)), mentions)
            # in the order they happened (ids grow with time, as the bot writes them)
            await session.execute(
                insert(table(AuditEntry)),
                [
                    {"conversation_id": n, "actor_id": a, "action": x, "detail": "", "at": at}
                    for at, n, a, x in sorted(audit, key=lambda e: (e[0], e[1]))
                ],
            )
        if erased:
            await customer_data.erase(
                session, col(Conversation.id).in_(erased), now, actor_id=MANAGER
            )
