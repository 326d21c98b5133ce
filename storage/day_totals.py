"""The digest's figures of closed days, kept so that a week's digest does not grow with
history or volume: a week is seven `day_total` rows, whatever happened in it.

A day is a local day of the digest's zone. It is closed (`save`) once it is over,
by a catch-up job (`handlers/digest.py` `close_days`): in one transaction, from the
rows, with the same queries the live digest runs (`storage.digest.parts`), so a
closed day holds exactly what the live digest would compute for it. Closing is
exact across restarts and instances: a day is closed once (its primary key), days
are closed in order from the first conversation's, and a day not closed yet is read
live. What is kept cannot change once the day is over (see `storage.digest.Parts`);
the figures that can (advice, continuity, dialogue time, what waits now) stay live.

Medians need every value: each list of minutes (to claim, to first reply) is kept
whole, sorted, as 8-byte floats, which are the very values the live digest computes
(the database's `minutes_between`, to 1/10,000 of a minute). A week's median is the
median of its seven days' values together: exact, not an estimate. The lists are
packed into one blob per kind and day, indexed in the day's JSON, because a row per
person and day would make a week some 7,000 rows (70,000 on a 10x year); a blob is
decoded in C (`array.frombytes`). A closed week's row also keeps the medians of its
arrays (`WeekMedians`, computed from those very values when the week was closed), and
a week's digest reads only that: its JSON, not its arrays, so it does not grow with
the week's volume.

"Over the target" needs each wait in working time: `day_wait` counts, by the day a
conversation arrived, the claimed ones by their wait in working minutes rounded up;
a wait is over an integer target of T minutes exactly when that count's minutes
exceed T, so the figure is exact for today's target. The working hours are those in
force when the day was closed.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import table
from storage.digest import Parts, WeekMedians
from storage.models import Conversation, DayTotal, DayWait

#: 8-byte floats: the values as the database computed them, bit for bit
_FLOAT = "d"
#: `day_total.days` of a day's row and of a week's
DAY, WEEK = 1, 7


def _packed(lists: Mapping[Any, Sequence[float]]) -> tuple[list[list[Any]], bytes]:
    """(index, blob): the index names each list's key and length, in blob order."""
    index: list[list[Any]] = []
    values: array[float] = array(_FLOAT)
    for key, minutes in sorted(lists.items()):
        if not minutes:
            continue
        values.extend(sorted(minutes))
        index.append([*key, len(minutes)] if isinstance(key, tuple) else [key, len(minutes)])
    return index, values.tobytes()


def _unpacked(index: list[list[Any]], blob: bytes) -> list[tuple[tuple[int, ...], Sequence[float]]]:
    """Each list as an array of its own (sorted, as packed): a slice copies bytes in C
    and makes no Python float; a median reads one or two of them."""
    values: array[float] = array(_FLOAT)
    values.frombytes(blob)
    found: list[tuple[tuple[int, ...], Sequence[float]]] = []
    at = 0
    for *key, length in index:
        found.append((tuple(key), values[at : at + length]))
        at += length
    return found


def encode(found: Parts, medians: WeekMedians | None = None) -> dict[str, Any]:
    """`Parts` as the columns of a `day_total` row (a week's with its medians)."""
    claims, claims_blob = _packed(found.claims)
    replies, replies_blob = _packed(found.replies)
    team_claims, team_blob = _packed(found.team_claims)
    counts = {
        "mentions": sorted([i, t, s, n] for (i, t, s), n in found.mentions.items()),
        "actions": sorted([a, x, t, n] for (a, x, t), n in found.actions.items()),
        "opened": sorted([t, n] for t, n in found.opened.items()),
        "claims": claims,
        "replies": replies,
        "team_claims": team_claims,
    }
    if medians is not None:
        # floats in JSON are written as repr() writes them: read back, the same float
        counts["medians"] = {
            "claims": sorted([t, p, m] for (t, p), m in medians.claims.items()),
            "replies": sorted([t, p, m] for (t, p), m in medians.replies.items()),
            "claims_all": sorted([p, m] for p, m in medians.claims_all.items()),
            "replies_all": sorted([p, m] for p, m in medians.replies_all.items()),
            "team_claims": sorted([t, m] for t, m in medians.team_claims.items()),
        }
    return {
        "counts": json.dumps(counts, separators=(",", ":")),
        "claims": claims_blob,
        "replies": replies_blob,
        "team_claims": team_blob,
    }


def _counted(data: dict[str, Any]) -> Parts:
    """The counts of a row's JSON, without its arrays."""
    return Parts(
        mentions={(i, t, s): n for i, t, s, n in data["mentions"]},
        actions={(a, x, t): n for a, x, t, n in data["actions"]},
        opened=dict(data["opened"]),
    )


def _medians(data: dict[str, Any]) -> WeekMedians:
    kept = data["medians"]
    return WeekMedians(
        claims={(t, p): m for t, p, m in kept["claims"]},
        replies={(t, p): m for t, p, m in kept["replies"]},
        claims_all=dict(kept["claims_all"]),
        replies_all=dict(kept["replies_all"]),
        team_claims=dict(kept["team_claims"]),
    )


def decode(counts: str, claims: bytes, replies: bytes, team_claims: bytes) -> Parts:
    data = json.loads(counts)
    found = _counted(data)
    for key, minutes in _unpacked(data["claims"], claims):
        found.claims[key[0], key[1]] = minutes
    for key, minutes in _unpacked(data["replies"], replies):
        found.replies[key[0], key[1]] = minutes
    for key, minutes in _unpacked(data["team_claims"], team_claims):
        found.team_claims[key[0]] = minutes
    return found


def merged(days: Sequence[Parts]) -> Parts:
    """The seven days of a week as one `Parts` (day i's mentions are day i)."""
    week = Parts()
    claims: dict[tuple[int, int], list[float]] = defaultdict(list)
    replies: dict[tuple[int, int], list[float]] = defaultdict(list)
    team_claims: dict[int, list[float]] = defaultdict(list)
    for i, found in enumerate(days):
        for (_, team, source), n in found.mentions.items():
            week.mentions[i, team, source] = week.mentions.get((i, team, source), 0) + n
        for key, n in found.actions.items():
            week.actions[key] = week.actions.get(key, 0) + n
        for team, n in found.opened.items():
            week.opened[team] = week.opened.get(team, 0) + n
        for scoped, into in ((found.claims, claims), (found.replies, replies)):
            for scope, minutes in scoped.items():
                into[scope].extend(minutes)
        for team, minutes in found.team_claims.items():
            team_claims[team].extend(minutes)
    week.claims = {scope: sorted(values) for scope, values in claims.items()}
    week.replies = {scope: sorted(values) for scope, values in replies.items()}
    week.team_claims = {team: sorted(values) for team, values in team_claims.items()}
    return week


_COLUMNS = (
    col(DayTotal.day),
    col(DayTotal.days),
    col(DayTotal.counts),
    col(DayTotal.claims),
    col(DayTotal.replies),
    col(DayTotal.team_claims),
)


async def closed_week(
    session: AsyncSession, tz: str, monday: date
) -> tuple[Parts, WeekMedians] | dict[date, Parts]:
    """The week from `monday` if it is closed: its counts and medians, one row and
    none of its arrays; else its closed days, each with its arrays."""
    conn = await session.connection()
    counts = await conn.scalar(
        select(col(DayTotal.counts)).where(
            col(DayTotal.tz) == tz, col(DayTotal.day) == monday, col(DayTotal.days) == WEEK
        )
    )
    if counts is not None:
        data = json.loads(counts)
        if "medians" in data:
            return _counted(data), _medians(data)
    # A week row without its medians (closed before 0016d, which deletes them, and
    # made again by the job) is read as its days.
    rows = (
        await conn.execute(
            select(*_COLUMNS).where(
                col(DayTotal.tz) == tz,
                col(DayTotal.days) == DAY,
                col(DayTotal.day) >= monday,
                col(DayTotal.day) <= monday + timedelta(days=6),
            )
        )
    ).all()
    return {day: decode(counts, c, r, t) for day, _, counts, c, r, t in rows}


async def closed_days(session: AsyncSession, tz: str, first: date, last: date) -> dict[date, Parts]:
    """The closed days first … last (included), by day (for closing their week)."""
    rows = await (await session.connection()).execute(
        select(*_COLUMNS).where(
            col(DayTotal.tz) == tz,
            col(DayTotal.days) == DAY,
            col(DayTotal.day) >= first,
            col(DayTotal.day) <= last,
        )
    )
    return {day: decode(counts, c, r, t) for day, _, counts, c, r, t in rows}


async def weeks_to_close(session: AsyncSession, tz: str) -> list[date]:
    """The Mondays of the weeks whose last day is closed and that have no week row (the
    rows 0016d deleted, to be made again with their medians), oldest first."""
    conn = await session.connection()
    first, last = (
        await conn.execute(
            select(func.min(col(DayTotal.day)), func.max(col(DayTotal.day))).where(
                col(DayTotal.tz) == tz, col(DayTotal.days) == DAY
            )
        )
    ).one()
    if first is None or last is None:
        return []
    closed = set(
        await conn.scalars(
            select(col(DayTotal.day)).where(col(DayTotal.tz) == tz, col(DayTotal.days) == WEEK)
        )
    )
    sunday = first + timedelta(days=(7 - first.isoweekday()) % 7)
    mondays = []
    while sunday <= last:
        if sunday - timedelta(days=6) not in closed:
            mondays.append(sunday - timedelta(days=6))
        sunday += timedelta(days=7)
    return mondays


async def last_closed(session: AsyncSession, tz: str) -> date | None:
    found: date | None = await session.scalar(
        select(func.max(col(DayTotal.day))).where(col(DayTotal.tz) == tz, col(DayTotal.days) == DAY)
    )
    return found


async def first_arrival(session: AsyncSession) -> datetime | None:
    """When the first conversation arrived: the first day to close."""
    found: datetime | None = await session.scalar(select(func.min(col(Conversation.created_at))))
    return found


async def claimed_between(
    session: AsyncSession, start: datetime, end: datetime
) -> Sequence[tuple[int, datetime, datetime]]:
    """(team, arrived, claimed) of the conversations of a team claimed in [start, end)."""
    rows = await (await session.connection()).execute(
        select(
            col(Conversation.team_id), col(Conversation.created_at), col(Conversation.claimed_at)
        ).where(
            col(Conversation.claimed_at) >= start,
            col(Conversation.claimed_at) < end,
            col(Conversation.team_id).is_not(None),
        )
    )
    found: list[tuple[int, datetime, datetime]] = []
    for team, created, claimed in rows.all():
        assert team is not None and claimed is not None  # by the query
        found.append((team, created, claimed))
    return found


async def save(
    session: AsyncSession,
    tz: str,
    day: date,
    found: Parts,
    waits: Counter[tuple[date, int, int]],
    now: datetime,
) -> None:
    """Close `day`: its figures, and the waits of what was claimed on it, as
    (day it arrived, team, working minutes rounded up) → conversations. A second
    closing of the same day (another instance) fails on the key and rolls back."""
    await session.execute(
        insert(table(DayTotal)),
        [{"tz": tz, "day": day, "days": DAY, "closed_at": now, **encode(found)}],
    )
    if waits:
        await session.execute(
            insert(table(DayWait)),
            [
                {
                    "tz": tz,
                    "day": arrived,
                    "claimed_day": day,
                    "team_id": team,
                    "minutes": minutes,
                    "conversations": n,
                }
                for (arrived, team, minutes), n in sorted(waits.items())
            ],
        )


async def save_week(session: AsyncSession, tz: str, monday: date, now: datetime) -> None:
    """Close the week from `monday`, whose last day is closed: its seven days' figures
    together, and their medians. A day before the first conversation was never closed:
    it had nothing to count."""
    days = await closed_days(session, tz, monday, monday + timedelta(days=6))
    found = merged([days.get(monday + timedelta(days=i), Parts()) for i in range(7)])
    row = {
        "tz": tz,
        "day": monday,
        "days": WEEK,
        "closed_at": now,
        **encode(found, WeekMedians.of(found)),
    }
    await session.execute(insert(table(DayTotal)), [row])


async def over_target(
    session: AsyncSession,
    tz: str,
    first: date,
    last: date,
    targets: Mapping[int, int],
    default: int,
    closed: date,
) -> dict[int, int]:
    """team → conversations that arrived on first … last, were claimed on a closed
    day up to `closed` (what the caller read from the rows is claimed after it: a day
    the job closes meanwhile is counted once), and waited more working minutes than
    the team's target."""
    target = case(targets, value=col(DayWait.team_id), else_=default) if targets else default
    rows = await (await session.connection()).execute(
        select(col(DayWait.team_id), func.sum(col(DayWait.conversations)))
        .where(
            col(DayWait.tz) == tz,
            col(DayWait.day) >= first,
            col(DayWait.day) <= last,
            col(DayWait.claimed_day) <= closed,
            col(DayWait.minutes) > target,
        )
        .group_by(col(DayWait.team_id))
    )
    return {int(team): int(n or 0) for team, n in rows}


async def forget(session: AsyncSession) -> None:
    """Drop every closed day (they are closed again from the rows, in order): for a
    change to the past, as conversations without a team given the first team."""
    await session.execute(delete(table(DayWait)))
    await session.execute(delete(table(DayTotal)))
