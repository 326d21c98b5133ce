"""The weekly digest on a year of data (issues "Digest" and 18 §2).

Targets (issue 18): one week's digest (`build()`, with the week before for the trends)
<= 50 ms on a year of 1,000,000 mentions (500 staff, 52 weeks) and <= 60 ms on a year
of 10,000,000 (`--mentions 10000000`), on SQLite and on PostgreSQL; the chart <= 150 ms.

    .venv/bin/python -m bench.digest                            # SQLite file in a temp dir
    .venv/bin/python -m bench.digest --keep /tmp/inloop-digest.db   # generate once, reuse
    .venv/bin/python -m bench.digest --postgres                 # a throwaway PostgreSQL server
    .venv/bin/python -m bench.digest --database postgresql+asyncpg://user@host/db

The schema is made by the project's migrations (`storage.migrate.upgrade`); the
year is then written in bulk (SQLAlchemy Core `insert()` with big lists of rows on
SQLite, COPY on PostgreSQL), not through the bot: people and teams, conversations
with their mentions, audit entries and advice, and the employees' commitments with
a `dialogue_session` row per block. A database that already holds mentions is
reused as it is when its counts match the arguments (`--keep`, or `--database`
pointing at a generated database): generation takes a minute or two, and only the
digest is measured. A reused file that lacks a table of the models (generated
before a migration) is refused.

Then the days are closed as the bot's job closes them (`handlers.digest.close_days`,
a month per transaction, timed and reported): the digest reads closed days from
their totals. Days closed already (a reused file) are kept.

Timed, on a fresh engine: `handlers.digest.build()` for one mid-year week (which
also builds the week before, for the trends), in its own read transaction as
`inloop digest` runs it: the first run, then `--runs` more (median, min, max, and
this process's CPU time); the same with a team filter; `as_text()`; and `chart()`
(the PNG); the same builds from the rows (`build(live=True)`, what the digest did
before the day totals), for comparison. One more build of each runs with every SQL
statement timed at the driver, for the breakdown; `--explain` also prints each
statement's plan; `--profile` the top of cProfile over `--runs` builds of each kind.
The figures of both builds must be identical (their JSON export, byte for byte).

Exits 1 if a consistency check of the figures fails (never for timing), 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import math
import os
import platform
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Table, event, func, insert, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel, col

from bench.common import add_database_options, start_postgres, verdict
from bot.messages import texts_for
from bot.recurrence import weekly
from handlers import digest
from handlers.weeks import IsoWeek, parse_week
from storage import customers as stored_customers
from storage.database import Database
from storage.migrate import upgrade
from storage.models import (
    AdviceStatus,
    AuditEntry,
    DialogueSession,
    Mention,
    Person,
    Role,
    Status,
)

TEXTS = texts_for("en")
TZ = "Europe/Rome"
CLAIM_TARGET = 60
FIRST_WEEK = IsoWeek(2026, 1)

#: the issue's targets: the build on a 1M-mention year, and on a 10M one (above 1M)
TARGET_DIGEST_MS = 50.0
TARGET_DIGEST_10M_MS = 60.0
TARGET_CHART_MS = 150.0
#: days closed per transaction when the bench closes the year
CLOSE_AT_ONCE = 31
#: lines of cProfile's table shown (`--profile`)
PROFILE_LINES = 12

#: team name → share of the mentions (the first one is the default team)
TEAMS = {"support": 0.35, "billing": 0.20, "tech": 0.20, "sales": 0.15, "shipping": 0.10}
#: mention source → share
SOURCES = {
    "twitter": 0.30,
    "email": 0.25,
    "instagram": 0.15,
    "facebook": 0.10,
    "slack": 0.10,
    "webhook": 0.10,
}
#: mentions per conversation → share (mean 2.39: 1,000,000 mentions are ~418k conversations)
SIZES = {1: 0.35, 2: 0.25, 3: 0.17, 4: 0.12, 5: 0.11}
MANAGERS = 6
CONSULTANTS = 10
ADVICE_SHARE = 0.025  # of claimed conversations: ~10k advice requests
NEVER_CLAIMED = 0.003  # the backlog: ~1,200 conversations left open over the year
COMMITTED = 0.8  # of employees: a weekly dialogue-time commitment, 2-5 blocks
#: what became of a past block → share (minutes given: all, some, none)
OUTCOMES = {"done": 62, "partial": 12, "skipped": 8, "no_answer": 8, "away": 8, "missed": 2}
LOGGED = 0.3  # chance that someone logs time outside their blocks in a week
# `--customers`: the customers behind the conversations, as a company's are
#: conversations whose author is a customer Inloop recognises (the rest: none stored)
WITH_CUSTOMER = 0.95
#: of those, the chance the author is a new customer (else one met before returns)
NEW_CUSTOMER = 0.45
#: a returning customer writes to the team they wrote to before
SAME_TEAM = 0.8
#: customers given a relationship owner (`customer owner`), one of their team
OWNER_SET = 0.2
#: a conversation of a customer with a relationship owner in its team is claimed by them
BY_RELATIONSHIP_OWNER = 0.6
LINES = (
    "Hello, my order has not arrived yet. Can you help?",
    "The checkout page shows an error 502 since this morning.",
    "I was charged twice for the same subscription.",
    "How do I change the delivery address of an order already paid?",
    "Your app logs me out every time I open it.",
    "Ciao, il pacco risulta consegnato ma non l'ho ricevuto.",
    "Any news on this? It has been two days.",
    "Thanks, that worked!",
    "Can I get an invoice with my company's VAT number?",
    "The size M is sold out: when will it be back?",
)
FIRST_NAMES = (
    "Ann", "Bob", "Chiara", "Dmitri", "Eve", "Fatima", "Giulia", "Hugo", "Ines", "Jonas",
    "Kemal", "Lucia", "Marco", "Nadia", "Omar", "Paola", "Quentin", "Rosa", "Sven", "Tariq",
    "Ugo", "Vera", "Wen", "Xavier", "Yara", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Rossi", "Bianchi", "Smith", "Müller", "Dubois", "Novak", "Kowalski", "Silva", "Jensen",
    "Costa", "Ricci", "Moreau", "Weber", "Horvat", "Sato", "Okafor", "Haddad", "Larsen",
    "Conti", "Marino",
)  # fmt: skip

T = TypeVar("T")


# -- the year of data ---------------------------------------------------------------------


def table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


@dataclass
class Shape:
    """What was generated (or found): the sizes the report shows."""

    staff: int = 0
    teams: int = 0
    conversations: int = 0
    mentions: int = 0
    audit: int = 0
    advice: int = 0
    commitments: int = 0
    sessions: int = 0
    customers: int = 0
    identities: int = 0
    seconds: float = 0.0
    reused: bool = False
    #: days closed by this run, and how long closing them took
    days_closed: int = 0
    closing_seconds: float = 0.0


@dataclass
class Staff:
    #: team id → the employees who claim its conversations
    members: dict[int, list[int]]
    consultants: list[int]


def lognormal_minutes(rng: random.Random, median: float, sigma: float, cap: float) -> float:
    return min(cap, rng.lognormvariate(math.log(median), sigma))


def people_rows(staff: int, start: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """Staff: one admin, a few managers, the consultants, and employees."""
    rows = []
    for n in range(1, staff + 1):
        if n == 1:
            role = Role.ADMIN
        elif n <= 1 + MANAGERS:
            role = Role.MANAGER
        elif n <= 1 + MANAGERS + CONSULTANTS:
            role = Role.CONSULTANT
        else:
            role = Role.EMPLOYEE
        first = FIRST_NAMES[n % len(FIRST_NAMES)]
        last = LAST_NAMES[(n // len(FIRST_NAMES)) % len(LAST_NAMES)]
        italian = rng.random() < 0.4
        rows.append(
            {
                "id": n,
                "ref": f"slack:U{n:06d}",
                "display_name": f"{first} {last} {n}",
                "role": role.value,
                "language": "it" if italian else "en",
                "locale": "it-IT" if italian else "en-GB",
                "timezone": TZ,
                "created_at": start,
            }
        )
    return rows


def assign_staff(people: list[dict[str, Any]], rng: random.Random) -> Staff:
    team_ids = list(range(1, len(TEAMS) + 1))
    members: dict[int, list[int]] = {t: [] for t in team_ids}
    consultants = []
    for person in people:
        if person["role"] == Role.CONSULTANT:
            consultants.append(person["id"])
        elif person["role"] == Role.EMPLOYEE:
            members[rng.choices(team_ids, weights=list(TEAMS.values()))[0]].append(person["id"])
    # every team has someone to claim its conversations
    for team, ids in members.items():
        if not ids:
            ids.append(people[0]["id"])
        members[team] = ids
    return Staff(members, consultants)


def creation_times(n: int, start: datetime, weeks: int, rng: random.Random) -> list[datetime]:
    """When each conversation opened: weekdays busier than weekends, office hours busier
    than nights. Sorted, so that numbers grow with time as they do in the bot."""
    days = weeks * 7
    day_weights = [1.0 if d % 7 < 5 else 0.35 for d in range(days)]
    # local office hours (Rome is UTC+1/+2: start is Monday 00:00 local)
    hour_weights = (
        [0.15] * 7 + [0.6, 1.0, 1.3, 1.3, 1.2, 1.0, 1.1, 1.2, 1.2, 1.1, 0.9, 0.6] + [0.3] * 5
    )
    day = rng.choices(range(days), weights=day_weights, k=n)
    hour = rng.choices(range(24), weights=hour_weights, k=n)
    offsets = sorted(
        d * 86400 + h * 3600 + rng.random() * 3600 for d, h in zip(day, hour, strict=True)
    )
    return [start + timedelta(seconds=s) for s in offsets]


@dataclass
class Known:
    """A customer met before, as the generator remembers them."""

    id: int
    team: int
    #: set with `customer owner`; None: whoever owned their last resolved conversation
    owner: int | None
    #: source → their identity's id there
    identities: dict[str, int]
    #: their latest conversation: (owner, when it was resolved)
    last: tuple[int | None, datetime | None] = (None, None)
    #: their conversations so far
    seen: int = 0


@dataclass
class Customers:
    """The customers met so far (`--customers`), and the next ids to give."""

    known: list[Known] = field(default_factory=list)
    identities: int = 0


@dataclass
class Chunk:
    customers: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    advice: list[dict[str, Any]] = field(default_factory=list)
    advice_messages: list[dict[str, Any]] = field(default_factory=list)


def year(
    mentions: int,
    weeks: int,
    start: datetime,
    now: datetime,
    staff: Staff,
    rng: random.Random,
    customers: Customers | None = None,
    chunk_size: int = 20_000,
) -> Iterator[Chunk]:
    """The conversations, their mentions, audit entries and advice, in chunks; with
    `customers`, the customers and identities behind them too."""
    sizes: list[int] = []
    total = 0
    size_values, size_weights = list(SIZES), list(SIZES.values())
    while total < mentions:
        size = min(rng.choices(size_values, weights=size_weights)[0], mentions - total)
        sizes.append(size)
        total += size
    opened = creation_times(len(sizes), start, weeks, rng)
    team_ids = list(range(1, len(TEAMS) + 1))
    teams = rng.choices(team_ids, weights=list(TEAMS.values()), k=len(sizes))
    sources = rng.choices(list(SOURCES), weights=list(SOURCES.values()), k=len(sizes))
    advice_id = 0
    chunk = Chunk()
    for i, (size, created, team, source) in enumerate(
        zip(sizes, opened, teams, sources, strict=True)
    ):
        number = i + 1
        key = f"{source}-{number:07d}"
        customer = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        handle = f"@{customer.split()[0].lower()}{rng.randrange(10_000)}"
        who: Known | None = None
        holder: int | None = None
        if customers is not None and rng.random() < WITH_CUSTOMER:
            who, team = _customer(customers, chunk, team, source, created, staff, rng)
            identity = who.identities[source]
            customer, handle = f"{customer} {identity}", f"@c{identity}"
            last_owner, last_resolved = who.last
            # as routing finds it: the one set, else the owner of the last resolved one
            holder = who.owner
            if holder is None and last_resolved is not None and last_resolved <= created:
                holder = last_owner
        owner: int | None = None
        claimed = replied = resolved = None
        if rng.random() >= NEVER_CLAIMED:
            at = created + timedelta(minutes=lognormal_minutes(rng, 18, 1.1, 3 * 1440))
            if at < now:
                owner, claimed = rng.choice(staff.members[team]), at
                if (
                    holder in staff.members[team]
                    and holder != owner
                    and rng.random() < BY_RELATIONSHIP_OWNER
                ):
                    owner = holder
        if claimed is not None and rng.random() < 0.93:
            at = claimed + timedelta(minutes=lognormal_minutes(rng, 25, 1.0, 2 * 1440))
            replied = at if at < now else None
        if replied is not None and rng.random() < 0.92:
            at = replied + timedelta(minutes=lognormal_minutes(rng, 240, 1.2, 7 * 1440))
            resolved = at if at < now else None
        status = (
            Status.RESOLVED
            if resolved
            else Status.REPLIED
            if replied
            else Status.CLAIMED
            if claimed
            else Status.OPEN
        )
        # follow-ups come while the conversation is going on
        last = resolved or replied or claimed or created + timedelta(hours=2)
        window = max(60.0, min((last - created).total_seconds(), 2 * 86400))
        later = (created + timedelta(seconds=rng.random() * window) for _ in range(size - 1))
        received = [created, *sorted(min(now - timedelta(seconds=1), at) for at in later)]
        chunk.conversations.append(
            {
                "id": number,
                "source": source,
                "conversation_key": key,
                "customer_name": customer,
                "customer_handle": handle,
                "url": f"https://{source}.example.com/{key}",
                "team_id": team,
                "status": status.value,
                "owner_id": owner,
                "mention_count": size,
                "created_at": created,
                "updated_at": max(received[-1], last),
                "claimed_at": claimed,
                "first_reply_at": replied,
                "resolved_at": resolved,
                "card_channel": f"slack:C{team:05d}",
                "card_ref": f"{1_700_000_000 + number}.000100",
                "customer_id": who.id if who else None,
                "identity_id": who.identities[source] if who else None,
                "relationship_owner_id": holder,
                # as routing marks it (the bench's check compares it with the history)
                "returning_customer": who is not None and who.seen > 0,
            }
        )
        if who is not None:
            who.last = (owner, resolved)
            who.seen += 1
        for j, at in enumerate(received):
            chunk.mentions.append(
                {
                    "source": source,
                    "external_id": f"{key}-{j}",
                    "conversation_id": number,
                    "author_name": customer,
                    "author_handle": handle,
                    "text": rng.choice(LINES),
                    "url": f"https://{source}.example.com/{key}#{j}",
                    "lang": "it" if rng.random() < 0.3 else "en",
                    "tags": "",
                    "created_at": at - timedelta(seconds=rng.randrange(1, 30)),
                    "received_at": at,
                }
            )
            action = "created" if j == 0 else "followup"
            chunk.audit.append(_audit(number, None, action, at))
        for action, done in (("claimed", claimed), ("replied", replied), ("resolved", resolved)):
            if done is not None:
                chunk.audit.append(_audit(number, owner, action, done))
        if claimed is not None and owner is not None and rng.random() < ADVICE_SHARE:
            advice_id += 1
            _advice(chunk, advice_id, number, owner, claimed, resolved or now, now, staff, rng)
        if len(chunk.conversations) >= chunk_size:
            yield chunk
            chunk = Chunk()
    if chunk.conversations:
        yield chunk


def _customer(
    customers: Customers,
    chunk: Chunk,
    team: int,
    source: str,
    created: datetime,
    staff: Staff,
    rng: random.Random,
) -> tuple[Known, int]:
    """The customer of a new conversation, and its team: a new one, or one met before
    (on this source or, linked, from another); their rows go into `chunk`."""
    if not customers.known or rng.random() < NEW_CUSTOMER:
        owner = rng.choice(staff.members[team]) if rng.random() < OWNER_SET else None
        who = Known(len(customers.known) + 1, team, owner, {})
        customers.known.append(who)
        chunk.customers.append({"id": who.id, "owner_id": owner, "created_at": created})
    else:
        who = rng.choice(customers.known)
        if rng.random() < SAME_TEAM:
            team = who.team
    if source not in who.identities:
        customers.identities += 1
        who.identities[source] = customers.identities
        chunk.identities.append(
            {
                "id": customers.identities,
                "customer_id": who.id,
                "source": source,
                "handle": f"@c{customers.identities}",
                "display_name": f"Customer {customers.identities}",
                "created_at": created,
            }
        )
    return who, team


def _audit(number: int, actor: int | None, action: str, at: datetime) -> dict[str, Any]:
    return {"conversation_id": number, "actor_id": actor, "action": action, "detail": "", "at": at}


def _advice(
    chunk: Chunk,
    advice_id: int,
    number: int,
    owner: int,
    claimed: datetime,
    until: datetime,
    now: datetime,
    staff: Staff,
    rng: random.Random,
) -> None:
    """One advice request (`N-A1`): asked after the claim, mostly taken, answered, rated."""
    asked = claimed + (until - claimed) * rng.random() * 0.5
    consultant: int | None = rng.choice(staff.consultants) if staff.consultants else None
    taken = answered = closed = None
    rating = None
    status = AdviceStatus.OPEN
    if consultant is not None and rng.random() < 0.95:
        taken = min(now, asked + timedelta(minutes=lognormal_minutes(rng, 10, 1.0, 1440)))
        status = AdviceStatus.TAKEN
        if rng.random() < 0.9:
            at = taken + timedelta(minutes=lognormal_minutes(rng, 60, 1.0, 3 * 1440))
            if at < now:
                answered, status = at, AdviceStatus.ANSWERED
                rating = rng.choices(["useful", "not useful", None], weights=[60, 15, 25])[0]
                if rating is not None:
                    closed, status = answered, AdviceStatus.CLOSED
    else:
        consultant = None  # still waiting in the consultants' pool
    chunk.advice.append(
        {
            "id": advice_id,
            "conversation_id": number,
            "seq": 1,
            "asked_by": owner,
            "consultant_id": consultant,
            "status": status.value,
            "rating": rating,
            "created_at": asked,
            "taken_at": taken,
            "answered_at": answered,
            "closed_at": closed,
            "reminded_at": None,
        }
    )
    chunk.audit.append(_audit(number, owner, "advice", asked))
    chunk.advice_messages.append(
        {"request_id": advice_id, "author_id": owner, "kind": "question", "text": "?", "at": asked}
    )
    if answered is not None and consultant is not None:
        chunk.advice_messages.append(
            {
                "request_id": advice_id,
                "author_id": consultant,
                "kind": "answer",
                "text": "Apologise and give them the tracking link.",
                "at": answered,
            }
        )


def commitments(
    staff: Staff, weeks: int, start: datetime, now: datetime, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Employees' weekly dialogue time, and a row per block of the year (what a running
    Inloop records), plus time logged outside blocks."""
    rows: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    for team, members in staff.members.items():
        for person in members:
            if rng.random() >= COMMITTED:
                continue
            days = ",".join(str(d) for d in sorted(rng.sample(range(1, 6), rng.randint(2, 5))))
            hour = f"{rng.randrange(9, 17):02d}:{rng.choice(('00', '30'))}"
            minutes = rng.choice((15, 30, 45, 60))
            commitment = len(rows) + 1
            rows.append(
                {
                    "id": commitment,
                    "person_id": person,
                    "days": days,
                    "start": hour,
                    "minutes": minutes,
                    "timezone": TZ,
                    "team_id": team,
                    "created_at": start,
                    "ended_at": None,
                }
            )
            for block in weekly(days, hour, TZ).between(start, now):
                outcome = rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
                given = {"done": minutes, "partial": rng.randrange(5, minutes)}.get(outcome, 0)
                sessions.append(
                    _session(commitment, person, block, minutes, outcome, minutes, given)
                )
    for person in [p for members in staff.members.values() for p in members]:
        for week in range(weeks):
            if rng.random() < LOGGED:
                at = start + timedelta(days=7 * week + rng.random() * 5, hours=rng.randrange(8))
                if at < now:
                    given = rng.choice((10, 15, 20, 30, 45))
                    sessions.append(_session(None, person, at, 0, "logged", 0, given))
    return rows, sessions


def _session(
    commitment: int | None,
    person: int,
    at: datetime,
    length: int,
    outcome: str,
    planned: int,
    given: int,
) -> dict[str, Any]:
    ends = at + timedelta(minutes=length)
    return {
        "commitment_id": commitment,
        "person_id": person,
        "occurrence_start": at,
        "ends_at": ends,
        "outcome": outcome,
        "minutes_planned": planned,
        "minutes_given": given,
        "next_at": None,
        "conversation_id": None,
        "created_at": at,
        "updated_at": ends,
    }


async def load(conn: AsyncConnection, name: str, rows: list[dict[str, Any]]) -> None:
    """Bulk insert: COPY on PostgreSQL, one executemany of Core `insert()` elsewhere."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        columns = list(rows[0])
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_records_to_table(
            name, records=[tuple(row[c] for c in columns) for row in rows], columns=columns
        )
        return
    await conn.execute(insert(table(name)), rows)


async def generate(db: Database, args: argparse.Namespace, now: datetime) -> Shape:
    shape = Shape()
    began = time.perf_counter()
    rng = random.Random(args.seed)
    start = FIRST_WEEK.bounds(TZ)[0]
    people = people_rows(args.staff, start, rng)
    staff = assign_staff(people, rng)
    teams = [
        {
            "id": n,
            "name": name,
            "channel": f"slack:C{n:05d}",
            "tags": name,
            "is_default": n == 1,
            "created_at": start,
        }
        for n, name in enumerate(TEAMS, 1)
    ]
    async with db.engine.begin() as conn:
        await load(conn, "person", people)
        await load(conn, "team", teams)
    shape.staff, shape.teams = len(people), len(teams)
    customers = Customers() if args.customers else None
    for chunk in year(args.mentions, args.weeks, start, now, staff, rng, customers):
        async with db.engine.begin() as conn:
            await load(conn, "customer", chunk.customers)
            await load(conn, "customer_identity", chunk.identities)
            await load(conn, "conversation", chunk.conversations)
            await load(conn, "mention", chunk.mentions)
            await load(conn, "audit_log", chunk.audit)
            await load(conn, "advice_request", chunk.advice)
            await load(conn, "advice_message", chunk.advice_messages)
        shape.customers += len(chunk.customers)
        shape.identities += len(chunk.identities)
        shape.conversations += len(chunk.conversations)
        shape.mentions += len(chunk.mentions)
        shape.audit += len(chunk.audit)
        shape.advice += len(chunk.advice)
        if sys.stderr.isatty():
            print(
                f"\r  generated {shape.mentions:,} mentions, {shape.conversations:,} conversations",
                end="",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"\r  generated {shape.mentions:,} mentions, {shape.conversations:,} conversations",
        file=sys.stderr,
    )
    blocks, sessions = commitments(staff, args.weeks, start, now, rng)
    async with db.engine.begin() as conn:
        await load(conn, "commitment", blocks)
        for k in range(0, len(sessions), 50_000):
            await load(conn, "dialogue_session", sessions[k : k + 50_000])
    shape.commitments, shape.sessions = len(blocks), len(sessions)
    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # explicit ids were given: move the sequences past them
            for name in (
                "person",
                "team",
                "conversation",
                "advice_request",
                "commitment",
                "customer",
                "customer_identity",
            ):
                await conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {name}))"
                )
    if db.engine.dialect.name == "postgresql":
        # what autovacuum does shortly after a bulk load; SQLite gets no ANALYZE (nor
        # does the bot run one), so its planner works without statistics
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE")
    shape.seconds = time.perf_counter() - began
    return shape


COUNTED = {
    "team": "teams",
    "conversation": "conversations",
    "audit_log": "audit",
    "advice_request": "advice",
    "commitment": "commitments",
    "dialogue_session": "sessions",
    "customer": "customers",
    "customer_identity": "identities",
}


async def existing(db: Database) -> Shape:
    """What the database holds. SystemExit if a table of the models is missing: a file
    generated before a migration was re-chained (`--keep` it elsewhere, or remove it)."""
    async with db.engine.connect() as conn:
        present = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    missing = sorted(set(SQLModel.metadata.tables) - present)
    if missing:
        raise SystemExit(
            f"the database lacks the tables {', '.join(missing)}: it predates the current "
            "migrations; remove it and let the bench generate it again"
        )
    async with db.read() as session:
        shape = Shape(reused=True)
        shape.mentions = int(await session.scalar(select(func.count()).select_from(Mention)) or 0)
        shape.staff = int(
            await session.scalar(
                select(func.count()).select_from(Person).where(col(Person.role).is_not(None))
            )
            or 0
        )
        for name, attribute in COUNTED.items():
            count = await session.scalar(select(func.count()).select_from(table(name)))
            setattr(shape, attribute, int(count or 0))
    return shape


# -- timing -----------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock times of each run, and this process's CPU time (on a busy machine the
    wall clock waits for a core; the CPU time does not, but misses the PostgreSQL server's)."""

    label: str
    ms: list[float]
    cpu_ms: list[float]
    target: float | None = None

    @property
    def first(self) -> float:
        return self.ms[0]

    @property
    def warm(self) -> list[float]:
        return self.ms[1:] or self.ms

    @property
    def median(self) -> float:
        return statistics.median(self.warm)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_ms[1:] or self.cpu_ms)


@dataclass
class Statement:
    sql: str
    parameters: Any
    ms: float = 0.0


class StatementLog:
    """Every SQL statement's time at the driver (its rows fetched, not yet made Python)."""

    def __init__(self) -> None:
        self.on = False
        self.statements: list[Statement] = []
        self._started = 0.0
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        if self.on:
            self.statements.append(Statement(sql, parameters))
            self._started = time.perf_counter()

    def _after(self, *_: Any) -> None:
        if self.on and self.statements:
            self.statements[-1].ms = (time.perf_counter() - self._started) * 1000


async def timed(runs: int, step: Callable[[], Awaitable[T]]) -> tuple[list[float], list[float], T]:
    """Wall-clock and CPU milliseconds of each run, and the last result."""
    wall, cpu, result = [], [], None
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        result = await step()
        cpu.append((time.process_time() - began_cpu) * 1000)
        wall.append((time.perf_counter() - began) * 1000)
    assert result is not None
    return wall, cpu, result


@dataclass
class Breakdown:
    label: str
    ms: float
    statements: list[Statement]


@dataclass
class Results:
    shape: Shape
    week: IsoWeek
    timings: list[Timing] = field(default_factory=list)
    breakdowns: list[Breakdown] = field(default_factory=list)
    #: statement → its plan, each statement once
    plans: dict[str, list[str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    #: label → the top of cProfile's table (`--profile`)
    profiles: dict[str, str] = field(default_factory=dict)


async def profiled(runs: int, step: Callable[[], Awaitable[Any]]) -> str:
    """The top lines of cProfile over `runs` calls of `step`, by own time."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(runs):
        await step()
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(PROFILE_LINES)
    lines = out.getvalue().splitlines()
    first = next(i for i, line in enumerate(lines) if "ncalls" in line)
    calls = next(line for line in lines if "function calls" in line).strip()
    return "\n".join([f"{runs} builds: {calls}", *lines[first:]]).rstrip()


async def close(db: Database, now: datetime, shape: Shape) -> None:
    """Close every day that is over, as the bot's job does (more days per transaction)."""
    began = time.perf_counter()
    while True:
        async with db.transaction() as session:
            done = await digest.close_days(session, TZ, now, CLOSE_AT_ONCE)
        shape.days_closed += done
        if done < CLOSE_AT_ONCE:
            break
    shape.closing_seconds = time.perf_counter() - began


async def measure(db: Database, args: argparse.Namespace, now: datetime, results: Results) -> None:
    week, team = results.week, args.team
    target = TARGET_DIGEST_MS if results.shape.mentions <= 1_000_000 else TARGET_DIGEST_10M_MS

    async def build(team_name: str, live: bool = False) -> digest.Digest:
        async with db.read() as session:
            figures = await digest.build(session, week, TZ, team_name, CLAIM_TARGET, now, live=live)
        if figures is None:
            raise SystemExit(f"there is no team called {team_name!r}")
        return figures

    async def build_all() -> digest.Digest:
        return await build("")

    async def build_team() -> digest.Digest:
        return await build(team)

    async def live_all() -> digest.Digest:
        return await build("", live=True)

    async def live_team() -> digest.Digest:
        return await build(team, live=True)

    runs = args.runs + 1  # the first one is the cold one
    ms, cpu, whole = await timed(runs, build_all)
    results.timings.append(Timing("build(), all teams", ms, cpu, target))
    ms, cpu, one = await timed(runs, build_team)
    results.timings.append(Timing(f"build(), team {team}", ms, cpu, target))
    start, end = week.bounds(TZ)

    async def continuity() -> Sequence[tuple[int | None, int | None, int, int]]:
        async with db.read() as session:
            return await stored_customers.continuity(session, start, end)

    async def flagged() -> Sequence[tuple[int | None, int | None, int, int]]:
        async with db.read() as session:
            return await stored_customers.continuity(session, start, end, from_flags=True)

    async def looked_back() -> Sequence[tuple[int | None, int | None, int, int]]:
        async with db.read() as session:
            return await stored_customers.continuity(session, start, end, from_history=True)

    ms, cpu, counted = await timed(runs, continuity)
    results.timings.append(Timing("continuity(), the week", ms, cpu))
    # what build() read before 0018a: every returning conversation of the week
    ms, cpu, marked = await timed(runs, flagged)
    results.timings.append(Timing("continuity(), from the flags", ms, cpu))
    ms, cpu, history = await timed(runs, looked_back)
    results.timings.append(Timing("continuity(), from history", ms, cpu))
    if set(counted) != set(marked):
        results.failures.append("continuity: the counts and the flagged conversations differ")
    if set(marked) != set(history):
        results.failures.append("continuity: the flagged conversations and the history differ")
    ms, cpu, whole_live = await timed(args.row_runs, live_all)
    results.timings.append(Timing("from the rows, all teams", ms, cpu))
    ms, cpu, one_live = await timed(args.row_runs, live_team)
    results.timings.append(Timing(f"from the rows, team {team}", ms, cpu))
    for label, totals, rows in (("all teams", whole, whole_live), (team, one, one_live)):
        if digest.as_json(totals) != digest.as_json(rows):
            results.failures.append(f"{label}: the figures from the totals and the rows differ")
    if args.profile:
        for label, step, n in (
            ("from the totals", build_all, args.runs),
            ("from the rows", live_all, args.row_runs),
        ):
            results.profiles[label] = await profiled(n, step)
    for label, figures in (("all teams", whole), (f"team {team}", one)):
        ms, cpu, _ = await timed(runs, _sync(partial(digest.as_text, figures, TEXTS)))
        results.timings.append(Timing(f"as_text(), {label}", ms, cpu))
    for label, figures in (("all teams", whole), (f"team {team}", one)):
        ms, cpu, png = await timed(
            args.chart_runs + 1, _sync(partial(digest.chart, figures, TEXTS))
        )
        results.timings.append(Timing(f"chart(), {label}", ms, cpu, TARGET_CHART_MS))
        results.sizes[f"chart bytes, {label}"] = len(png.png)

    # one more build of each with every statement timed
    log = StatementLog()
    for label, step in (("all teams", build_all), (f"team {team}", build_team)):
        log.statements = []
        log.on = True
        began = time.perf_counter()
        await step()
        took = (time.perf_counter() - began) * 1000
        log.on = False
        results.breakdowns.append(Breakdown(label, took, log.statements))
        if args.explain:
            await explain(db, log.statements, results.plans)
    await check(db, week, whole, one, team, results)


def _sync(fn: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def step() -> T:
        return fn()

    return step


async def explain(db: Database, statements: list[Statement], plans: dict[str, list[str]]) -> None:
    postgres = db.engine.dialect.name == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    async with db.read() as session:
        conn = await session.connection()
        for statement in statements:
            sql = _flat(statement.sql)
            if sql in plans or not sql.startswith("SELECT"):
                continue
            rows = await conn.exec_driver_sql(prefix + statement.sql, statement.parameters)
            plans[sql] = [str(row[-1]) for row in rows]


async def check(
    db: Database,
    week: IsoWeek,
    whole: digest.Digest,
    one: digest.Digest,
    team: str,
    results: Results,
) -> None:
    """The figures agree with the tables and with each other."""
    start, end = week.bounds(TZ)
    async with db.read() as session:
        mentions = int(
            await session.scalar(
                select(func.count())
                .select_from(Mention)
                .where(col(Mention.received_at) >= start, col(Mention.received_at) < end)
            )
            or 0
        )
        claims = int(
            await session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(
                    col(AuditEntry.at) >= start,
                    col(AuditEntry.at) < end,
                    col(AuditEntry.action) == "claimed",
                )
            )
            or 0
        )
        committed = int(
            await session.scalar(
                select(func.coalesce(func.sum(DialogueSession.minutes_planned), 0)).where(
                    col(DialogueSession.occurrence_start) >= start,
                    col(DialogueSession.occurrence_start) < end,
                )
            )
            or 0
        )
    per_day = sum(n for _, n in whole.per_day)
    by_team = sum(t.mentions for t in whole.teams)
    claimed = sum(p.claimed for p in whole.people)
    results.sizes.update(
        {
            "mentions in the week": mentions,
            "claims in the week": claims,
            "people in the digest": len(whole.people),
            "consultants in the digest": len(whole.consultants),
            f"people in the digest of {team}": len(one.people),
            "conversations opened in the week": sum(t.opened for t in whole.teams),
            "of returning customers (continuity)": sum(t.returning for t in whole.teams),
            "of those, by their relationship owner": sum(t.returning_by_owner for t in whole.teams),
            "unclaimed now": sum(t.unclaimed_total for t in whole.teams),
            "minutes committed in the week": committed,
        }
    )
    if not mentions or per_day != mentions or by_team != mentions:
        results.failures.append(
            f"mentions of the week: {mentions} in the table, {per_day} per day, {by_team} by team"
        )
    if not claims or claimed != claims:
        results.failures.append(f"claims of the week: {claims} in the log, {claimed} by people")
    mine = next((t for t in whole.teams if t.name == team), None)
    if mine is None or [mine] != list(one.teams):
        results.failures.append(f"the team {team} differs between the two digests")
    shown = sum(p.committed or 0 for p in whole.people)
    if shown != committed:
        results.failures.append(f"minutes committed: {committed} in the table, {shown} shown")
    if whole.previous is None or not whole.previous.people:
        results.failures.append("no figures for the week before (the trends)")


# -- reporting ---------------------------------------------------------------------------


def _flat(sql: str) -> str:
    """On one line, a long IN (?, ?, …) list shortened."""
    flat = " ".join(sql.split())
    return re.sub(r"(\?, ){3,}\?|(\$\d+, ){3,}\$\d+", "…", flat)


def _sql_label(sql: str) -> str:
    """Enough of a statement to know it: the columns' tables and the first condition."""
    flat = _flat(sql)
    where = flat.find(" WHERE ")
    head = flat[: where if where >= 0 else len(flat)]
    tail = flat[where + 7 : where + 60] if where >= 0 else ""
    head = head if len(head) <= 70 else head[:67] + "..."
    return f"{head} | {tail}" if tail else head


def report(results: Results, args: argparse.Namespace, url: str) -> None:
    shown = make_url(url).render_as_string(hide_password=True)
    shape = results.shape
    load = " / ".join(f"{x:.2f}" for x in results.load)
    how = "reused" if shape.reused else f"generated in {shape.seconds:.0f} s"
    start, end = results.week.bounds(TZ)
    frozen = " · gc.freeze() before measuring" if args.gc_freeze else ""
    print(
        f"Inloop digest benchmark · {shown}{frozen}\n"
        f"Python {platform.python_version()} · {os.cpu_count()} CPUs · "
        f"load average before / after: {load}\n"
        f"data ({how}): {shape.staff:,} staff, {shape.teams} teams, "
        f"{shape.conversations:,} conversations, {shape.mentions:,} mentions, "
        f"{shape.audit:,} audit entries, {shape.advice:,} advice requests, "
        f"{shape.commitments:,} commitments, {shape.sessions:,} dialogue sessions, "
        f"{shape.customers:,} customers with {shape.identities:,} identities\n"
        f"days closed by this run: {shape.days_closed} in {shape.closing_seconds:.1f} s\n"
        f"week {results.week} ({start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC, {TZ}) "
        f"and the week before, claim target {CLAIM_TARGET} min\n"
    )
    for key, value in results.sizes.items():
        print(f"  {key}: {value:,}")
    print(
        f"\ntimes in ms: first run (fresh engine), then over the next {args.runs} "
        f"({args.chart_runs} for the chart): wall clock median, min, max; this process's CPU"
    )
    print(f"  {'':<30}{'first':>9}{'median':>9}{'min':>9}{'max':>9}{'cpu':>9}  target")
    for t in results.timings:
        target = f"<= {t.target:g}: {verdict(t.median <= t.target)}" if t.target is not None else ""
        print(
            f"  {t.label:<30}{t.first:>9.1f}{t.median:>9.1f}"
            f"{min(t.warm):>9.1f}{max(t.warm):>9.1f}{t.cpu_median:>9.1f}  {target}"
        )
    for b in results.breakdowns:
        in_sql = sum(s.ms for s in b.statements)
        print(
            f"\none more build(), {b.label}, statement by statement: {b.ms:.1f} ms, of which "
            f"{in_sql:.1f} ms in {len(b.statements)} statements at the driver (rows fetched)"
        )
        for s in b.statements:
            print(f"  {s.ms:>8.2f}  {_sql_label(s.sql)}")
    for sql, lines in results.plans.items():
        print(f"\n{sql}")
        for line in lines:
            print(f"    {line}")
    for label, table_text in results.profiles.items():
        print(f"\ncProfile, build(), all teams, {label}: {table_text}")
    if results.failures:
        print(f"\nconsistency: FAIL ({len(results.failures)})")
        for failure in results.failures:
            print(f"  - {failure}")
    else:
        print("\nconsistency: OK")


# -- entry point -----------------------------------------------------------------------


async def run(args: argparse.Namespace, url: str) -> Results:
    weeks = [FIRST_WEEK]
    for _ in range(args.weeks):
        weeks.append(IsoWeek.containing(weeks[-1].monday + timedelta(days=7)))
    # the Monday after the year, 09:00 local: when the weekly digest is posted
    now = weeks[-1].bounds(TZ)[0] + timedelta(hours=8)
    week = args.week or weeks[args.weeks // 2]
    db = Database(url)
    try:
        await upgrade(db)
        shape = await existing(db)
        if shape.mentions == 0:
            shape = await generate(db, args, now)
        elif shape.mentions != args.mentions or shape.staff != args.staff:
            raise SystemExit(
                f"the database holds {shape.mentions:,} mentions and {shape.staff} staff, not "
                f"{args.mentions:,} and {args.staff}: remove it or pass matching arguments"
            )
        elif bool(shape.customers) != args.customers:
            # a year with customers and one without are different benches: never confused
            raise SystemExit(
                f"the database holds a year {'with' if shape.customers else 'without'} "
                f"customers: {'pass' if shape.customers else 'leave out'} --customers, "
                "or give another file or database"
            )
        await close(db, now, shape)
    finally:
        await db.dispose()
    results = Results(shape, week)
    results.load.append(os.getloadavg()[0])
    if args.gc_freeze:
        # what a gc.freeze() at the bot's start-up would do: the objects alive by then
        # (modules, engine, app) are no longer traversed by every full collection
        gc.collect()
        gc.freeze()
    db = Database(url)  # measured on a fresh engine: no connection, no compiled statements
    try:
        await measure(db, args, now, results)
    finally:
        await db.dispose()
    results.load.append(os.getloadavg()[0])
    return results


def week_argument(value: str) -> IsoWeek:
    week = parse_week(value, datetime.now(UTC), TZ)
    if week is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a week like 2026-W27")
    return week


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.digest", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--mentions", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--staff", type=int, default=500, help="default 500")
    parser.add_argument("--weeks", type=int, default=52, help="from 2026-W01 (default 52)")
    parser.add_argument(
        "--week", type=week_argument, help="the week measured (default: the middle one, 2026-W27)"
    )
    parser.add_argument(
        "--team", default="support", help=f"the team filter timed (one of {', '.join(TEAMS)})"
    )
    parser.add_argument("--runs", type=int, default=10, help="warm runs (default 10)")
    parser.add_argument(
        "--chart-runs", type=int, default=5, help="warm chart renderings (default 5)"
    )
    parser.add_argument("--seed", type=int, default=2026, help="random seed of the data")
    parser.add_argument(
        "--customers",
        action="store_true",
        help="a year with customers (most conversations; some return, some have a "
        "relationship owner): a database of its own (--keep another file)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print each statement's plan (EXPLAIN)"
    )
    parser.add_argument(
        "--row-runs",
        type=int,
        default=3,
        help="builds from the rows, timed and compared (default 3; the first is the cold one)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print the top of cProfile for both builds"
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() before measuring (a proposed start-up setting, measured)",
    )
    where = add_database_options(parser)
    where.add_argument(
        "--keep",
        metavar="PATH",
        help="a SQLite file: generated if missing, reused as it is otherwise",
    )
    args = parser.parse_args(argv)
    if args.mentions < 1 or args.staff < 1 + MANAGERS + CONSULTANTS + len(TEAMS):
        parser.error(
            "--mentions must be at least 1, "
            f"--staff at least {1 + MANAGERS + CONSULTANTS + len(TEAMS)}"
        )
    if not 2 <= args.weeks <= 52 or min(args.runs, args.chart_runs, args.row_runs) < 1:
        parser.error("--weeks must be 2 to 52, --runs, --chart-runs and --row-runs at least 1")
    if args.team not in TEAMS:
        parser.error(f"--team must be one of {', '.join(TEAMS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inloop-bench-") as tmp:
        server = start_postgres() if args.postgres else None
        try:
            if args.keep:
                url = f"sqlite+aiosqlite:///{Path(args.keep).resolve()}"
            else:
                url = args.database or (
                    server.create_database() if server else f"sqlite+aiosqlite:///{tmp}/inloop.db"
                )
            results = asyncio.run(run(args, url))
        finally:
            if server is not None:
                server.stop()
    report(results, args, url)
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
