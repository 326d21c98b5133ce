"""The digest's continuity, read from the UTC weeks' `continuity_count` (kept by triggers)
and the hours between them and the local week, says what the conversations'
`returning_customer` says, and that what looking back at each customer's earlier
conversations says (issue 18 §2): on histories made through the bot, with customers who
come back, write from a second source, are linked, unlinked and linked again after their
conversations, erased, relationship owners set, and conversations claimed, reassigned
and resolved; in zones of whole, half and quarter hours, over weeks that change to or
from summer time."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from handlers import digest
from handlers.weeks import IsoWeek
from harness import Chat
from pg_server import PostgresServer
from storage.customers import continuity
from storage.models import ContinuityCount, Conversation

CUSTOMERS = ("Giulia", "Paolo", "Sara")
SOURCES = ("twitter", "email")
STAFF = ("ann", "bob", "carla")
TZ = "UTC"
#: zones a digest may be in: ahead of UTC, behind it, by half and quarter hours, and
#: most of a day ahead (with summer time: Rome, St John's, Sydney)
ZONES = (
    "UTC",
    "Europe/Rome",
    "America/St_Johns",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "Pacific/Kiritimati",
)
#: where a history begins: a Monday morning; a Saturday evening before Europe's summer
#: time ends (25 October 2026) and North America's (1 November), and before it starts
STARTS = (
    datetime(2026, 11, 16, 9, 0, tzinfo=UTC),
    datetime(2026, 10, 24, 20, 0, tzinfo=UTC),
    datetime(2026, 10, 31, 22, 0, tzinfo=UTC),
    datetime(2026, 3, 28, 21, 30, tzinfo=UTC),
)

refs = st.builds(
    lambda s, c: f"{s}:@{c.lower()}", st.sampled_from(SOURCES), st.sampled_from(CUSTOMERS)
)
numbers = st.integers(1, 8)
mention = st.tuples(st.just("mention"), st.sampled_from(CUSTOMERS), st.sampled_from(SOURCES))
link = st.tuples(st.just("link"), refs, refs)
steps = st.lists(
    st.one_of(
        mention,
        mention,
        mention,
        st.tuples(st.just("claim"), numbers, st.sampled_from(STAFF)),
        st.tuples(st.just("reassign"), numbers, st.sampled_from(STAFF)),
        st.tuples(st.just("resolve"), numbers, st.sampled_from(STAFF)),
        st.tuples(st.just("owner"), refs, st.sampled_from(STAFF)),
        link,
        link,
        st.tuples(st.just("unlink"), refs, st.just("")),
        st.tuples(st.just("erase"), refs, st.just("")),
        st.tuples(st.just("later"), st.sampled_from([5, 45, 600, 2 * 1440, 3 * 1440]), st.just("")),
    ),
    min_size=8,
    max_size=30,
)


@pytest.fixture
def new_database(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], str]:
    """A fresh database of the test's kind for each example (the bot's ids start at 1)."""
    made = itertools.count(1)

    def make() -> str:
        if database_url.startswith("sqlite"):
            return f"sqlite+aiosqlite:///{tmp_path / f'example-{next(made)}.db'}"
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.create_database()

    return make


async def _play(chat: Chat, step: tuple[str, object, object], mentioned: list[int]) -> None:
    kind, first, second = step
    if kind == "mention":
        mentioned.append(len(mentioned) + 1)
        await chat.mention(str(first), "ciao", source=str(second))
    elif kind in ("claim", "resolve"):
        await chat.say(str(second), f"{kind} {first}")
    elif kind == "reassign":
        await chat.say("boss", f"reassign {first} @{second}")
    elif kind == "owner":
        await chat.say("boss", f"customer owner {first} @{second}")
    elif kind == "link":
        await chat.say("boss", f"customer link {first} {second}")
    elif kind == "unlink":
        await chat.say("boss", f"customer unlink {first}")
    elif kind == "erase":
        # the conversations stay, with their customer; a new one of theirs is a new
        # customer's (their identities are gone)
        await chat.say("boss", f"customer erase {first} confirm")
    else:
        assert isinstance(first, int)
        await chat.at(chat.clock() + timedelta(minutes=first))


async def _assert_the_same(chat: Chat, began: datetime) -> int:
    """Each conversation's flag is what its customer's history says; the continuity of
    every week, and the digest, are the same both ways. How many conversations are
    of returning customers."""
    now = chat.clock()
    earlier = aliased(Conversation)
    async with chat.app.db.read() as session:
        flags = dict(
            (
                await session.execute(
                    select(col(Conversation.id), col(Conversation.returning_customer))
                )
            ).all()
        )
        returning = set(
            await session.scalars(
                select(col(Conversation.id)).where(
                    select(col(earlier.id))
                    .where(
                        col(earlier.customer_id) == col(Conversation.customer_id),
                        col(earlier.id) < col(Conversation.id),
                    )
                    .exists()
                )
            )
        )
        looked_back = {n: n in returning for n in flags}
        assert flags == looked_back
        await _assert_the_counts_are_the_rows(session)
        # every local week of the history, in every zone: counted, flagged, looked back
        for zone in ZONES:
            week = IsoWeek.containing(began.astimezone(ZoneInfo(zone)).date())
            while week.bounds(zone)[0] <= now:
                start, end = week.bounds(zone)
                counted = set(await continuity(session, start, end))
                assert counted == set(await continuity(session, start, end, from_flags=True))
                assert counted == set(await continuity(session, start, end, from_history=True))
                # one team's (support is the only one: team 1), and a team with none
                for one in (1, 2):
                    assert set(await continuity(session, start, end, team_id=one)) == {
                        c for c in counted if c[0] == one
                    }
                week = IsoWeek.containing(week.monday + timedelta(days=7))
        # and ranges of any length from anywhere: each edge before, after or at a Monday
        since = began - timedelta(days=4)
        while since < now + timedelta(days=1):
            for length in (timedelta(hours=1), timedelta(days=3), timedelta(days=9)):
                start, end = since, since + length
                assert set(await continuity(session, start, end)) == set(
                    await continuity(session, start, end, from_flags=True)
                ), (start, end)
            since += timedelta(hours=7, minutes=15)
        week = IsoWeek.containing(began.date())
        while week.monday <= now.date():
            start, end = week.bounds(TZ)
            assert set(await continuity(session, start, end)) == set(
                await continuity(session, start, end, from_history=True)
            )
            for team in ("", "support"):
                rows = await digest.build(session, week, TZ, team, 60, now, live=True)
                flagged = await digest.build(session, week, TZ, team, 60, now)
                assert rows is not None and flagged is not None
                assert digest.as_json(flagged) == digest.as_json(rows), (week, team)
            week = IsoWeek.containing(week.monday + timedelta(days=7))
    return sum(flags.values())


async def _assert_the_counts_are_the_rows(session: AsyncSession) -> None:
    """`continuity_count`, kept by the triggers, is the conversations counted by UTC week
    (its Monday), team and relationship owner (0: none); a count gone to 0 is a row of
    zeros."""
    expected: Counter[tuple[str, int, int, str]] = Counter()
    for created, team, holder, owner in (
        await session.execute(
            select(
                col(Conversation.created_at),
                col(Conversation.team_id),
                col(Conversation.relationship_owner_id),
                col(Conversation.owner_id),
            ).where(col(Conversation.returning_customer))
        )
    ).all():
        day = created.date()
        key = (str(day - timedelta(days=day.weekday())), team or 0, holder or 0)
        expected[(*key, "n")] += 1
        expected[(*key, "mine")] += int(owner is not None and owner == holder)
    kept: Counter[tuple[str, int, int, str]] = Counter()
    for week, team, holder, n, mine in (
        await session.execute(
            select(
                col(ContinuityCount.week),
                col(ContinuityCount.team_id),
                col(ContinuityCount.holder_id),
                col(ContinuityCount.conversations),
                col(ContinuityCount.by_owner),
            )
        )
    ).all():
        kept[(str(week), team, holder, "n")] = n
        kept[(str(week), team, holder, "mine")] = mine
    assert +kept == +expected  # (+: without the zeros)
    assert all(v >= 0 for v in kept.values())


@settings(
    max_examples=16,
    derandomize=True,  # the same cases every run, on CI (its "ci" profile) and off it
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.permutations([("mention", c, s) for c in CUSTOMERS for s in SOURCES]),
    played=steps,
    began=st.sampled_from(STARTS),
)
async def test_the_continuity_from_the_flag_is_the_continuity_from_the_history(
    new_database: Callable[[], str],
    first: list[tuple[str, object, object]],
    played: list[tuple[str, object, object]],
    began: datetime,
) -> None:
    """`first`: every customer writes from each source once (so that links find both
    identities), in any order; then anything happens. The counts kept by the triggers
    are the rows counted, and the continuity of every week in every zone is the same
    read from them, from the flags and from the history."""
    chat = Chat(new_database())
    chat.clock.now = began
    await chat.start()
    try:
        await chat.say("boss", "team add support")
        for name in STAFF:
            await chat.say(name, "teams")
        began = chat.clock()
        mentioned: list[int] = []
        for step in [*first, *played]:
            await _play(chat, step, mentioned)
        await _assert_the_same(chat, began)
    finally:
        await chat.stop()


async def _figures(chat: Chat) -> dict[tuple[str, str], tuple[int, int]]:
    """This week's continuity as the digest says it: (returning, by their owner), of the
    team support and of Ann."""
    async with chat.app.db.read() as session:
        found = await digest.build(
            session, IsoWeek.containing(chat.clock().date()), TZ, "", 60, chat.clock()
        )
    assert found is not None
    figures = {("team", t.name): (t.returning, t.returning_by_owner) for t in found.teams}
    figures |= {("person", p.name): (p.returning, p.returning_by_owner) for p in found.people}
    return {key: figures.get(key, (0, 0)) for key in (("team", "support"), ("person", "Ann"))}


async def test_linking_and_unlinking_after_the_fact_moves_the_digests_continuity(
    chat: Chat,
) -> None:
    """Giulia writes twice on Twitter (#2 is a return, Ann is her relationship owner by
    then), then by email (#3: a new customer, as far as anyone knows); linked, #3 is
    hers and a return too; #2 reassigned to Bob is no longer handled by Ann; unlinked,
    #3 is not a return. Paolo's email (#4) merged into Giulia's customer is one."""
    await chat.say("boss", "team add support")
    for name in ("ann", "bob"):
        await chat.say(name, "teams")
    began = chat.clock()
    await chat.mention("Giulia", "Il pacco?")
    await chat.say("boss", "customer owner twitter:@giulia @ann")
    await chat.mention("Giulia", "Ancora io")
    await chat.mention("Giulia", "Vi scrivo per email", source="email")
    await chat.mention("Paolo", "Ordine?", source="email")
    await chat.say("ann", "claim 2")
    assert await _assert_the_same(chat, began) == 1
    assert await _figures(chat) == {("team", "support"): (1, 1), ("person", "Ann"): (1, 1)}
    shown = await chat.say("boss", "digest this")
    assert shown.count("continuity: 1 conversations of returning customers, 100%") == 2

    # each command, then: returning conversations, and (team, Ann)'s (count, by owner)
    for command, returning, team, ann in [
        ("customer link twitter:@giulia email:@giulia", 2, (2, 1), (1, 1)),
        ("reassign 2 @bob", 2, (2, 0), (1, 0)),
        ("customer unlink email:@giulia", 1, (1, 0), (1, 0)),
        ("customer link email:@paolo twitter:@giulia", 2, (2, 0), (1, 0)),
    ]:
        await chat.say("boss", command)
        assert await _assert_the_same(chat, began) == returning, command
        assert await _figures(chat) == {("team", "support"): team, ("person", "Ann"): ann}
