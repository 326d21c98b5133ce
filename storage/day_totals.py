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
decoded in C (`array.frombytes`), and a week is 14 rows.

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

from sqlalchemy import and_, case, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import table
from storage.digest import Parts
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


def encode(found: Parts) -> dict[str, Any]:
    """`Parts` as the columns of a `day_total` row."""
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
    return {
        "counts": json.dumps(counts, separators=(",", ":")),
        "claims": claims_blob,
        "replies": replies_blob,
        "team_claims": team_blob,
    }


def decode(counts: str, claims: bytes, replies: bytes, team_claims: bytes) -> Parts:
    data = json.loads(counts)
    found = Parts(
        mentions={(i, t, s): n for i, t, s, n in data["mentions"]},
        actions={(a, x, t): n for a, x, t, n in data["actions"]},
        opened=dict(data["opened"]),
    )
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


async def closed_week(session: AsyncSession, tz: str, monday: date) -> Parts | dict[date, Parts]:
    """The week from `monday` if it is closed (one row); else its closed days."""
    last = monday + timedelta(days=6)
    rows = (
        await (await session.connection()).execute(
            select(*_COLUMNS).where(
                col(DayTotal.tz) == tz,
                or_(
                    and_(col(DayTotal.day) == monday, col(DayTotal.days) == WEEK),
                    and_(
                        col(DayTotal.days) == DAY,
                        col(DayTotal.day) >= monday,
                        col(DayTotal.day) <= last,
                    ),
                ),
            )
        )
    ).all()
    for _, days, counts, c, r, t in rows:
        if days == WEEK:
            return decode(counts, c, r, t)
    return {day: decode(counts, c, r, t) for day, _, counts, c, r, t in rows}


async def closed_days(session: AsyncSession, tz: str, first: date, last: date) -> list[Parts]:
    """The closed days first … last (included), in order (for closing their week)."""
    rows = await (await session.connection()).execute(
        select(*_COLUMNS)
        .where(
            col(DayTotal.tz) == tz,
            col(DayTotal.days) == DAY,
            col(DayTotal.day) >= first,
            col(DayTotal.day) <= last,
        )
        .order_by(col(DayTotal.day))
    )
    return [decode(counts, c, r, t) for _, _, counts, c, r, t in rows]


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


async def save_week(
    session: AsyncSession, tz: str, monday: date, found: Parts, now: datetime
) -> None:
    """Close the week from `monday`: its seven days' figures together."""
    row = {"tz": tz, "day": monday, "days": WEEK, "closed_at": now, **encode(found)}
    await session.execute(insert(table(DayTotal)), [row])


async def over_target(
    session: AsyncSession,
    tz: str,
    first: date,
    last: date,
    targets: Mapping[int, int],
    default: int,
) -> dict[int, int]:
    """team → conversations that arrived on first … last, were claimed on a closed
    day, and waited more working minutes than the team's target."""
    target = case(targets, value=col(DayWait.team_id), else_=default) if targets else default
    rows = await (await session.connection()).execute(
        select(col(DayWait.team_id), func.sum(col(DayWait.conversations)))
        .where(
            col(DayWait.tz) == tz,
            col(DayWait.day) >= first,
            col(DayWait.day) <= last,
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
