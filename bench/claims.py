"""Claim round trip through the router and the outbox (issue "Core").

Targets: p50 <= 5 ms and p99 <= 25 ms over 1,000 claims; 50 concurrent claims on
one conversation resolved correctly in <= 1 s.

    .venv/bin/python -m bench.claims                      # SQLite file in a temp dir
    .venv/bin/python -m bench.claims --postgres           # a throwaway PostgreSQL server
    .venv/bin/python -m bench.claims --database postgresql+asyncpg://user@host/db

A real `App` runs on an in-memory platform defined here. One claim's round trip is
the time from `app.handle(Command("claim N"))` being called until the platform has
received both the card update in the team channel and the claimer's private
"#N is yours" (both delivered by the outbox worker, which runs as its own task).
The time of each delivery is taken inside the platform when the outbox hands it
over. The worker is let settle between two claims, outside the measurement, so
each figure is one claim's latency on an otherwise idle bot.

Exits 1 if a correctness check fails (never for timing), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from bench.common import (
    QuietPlatform,
    add_database_options,
    display_name,
    percentile,
    run_bench,
    verdict,
)
from bot.app import App
from bot.config import load_settings
from bot.events import Author, ChannelId, Command, EventId, MentionReceived, PersonId
from bot.messages import texts_for
from bot.views import Card, Notice, View
from storage.models import Conversation

TEXTS = texts_for("en")
CHANNEL = ChannelId("console:#support")
ADMIN = PersonId("console:admin")
SOURCE = "twitter"

#: the issue's targets
TARGET_P50_MS = 5.0
TARGET_P99_MS = 25.0
TARGET_CONCURRENT_MS = 1000.0

#: the sequential claims are taken in turn by this many employees
EMPLOYEES = ("ann", "bob", "chiara", "dmitri", "eve")


# -- the platform ------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    kind: str  # send | update | private
    target: str
    view: View
    #: time.perf_counter() when the outbox handed it to the platform
    at: float


Match = Callable[[Delivery], bool]


@dataclass
class Expectation:
    """Set once `count` deliveries matching `match` have arrived."""

    match: Match
    remaining: int
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: arrival time of the last matching delivery
    last_at: float = 0.0


class BenchPlatform(QuietPlatform):
    """An in-memory chat platform: records deliveries, wakes whoever waits for them."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._expectations: list[Expectation] = []
        self._refs = itertools.count(1)

    # -- Platform protocol ---------------------------------------------------------

    async def send(self, channel: ChannelId, view: View, key: str) -> str:
        self._record("send", channel, view)
        return f"msg-{next(self._refs)}"

    async def update(self, channel: ChannelId, message_ref: str, view: View, key: str) -> None:
        self._record("update", channel, view)

    async def send_private(
        self, person: PersonId, view: View, key: str, context: ChannelId | None
    ) -> None:
        self._record("private", person, view)

    # -- waiting -------------------------------------------------------------------

    def expect(self, match: Match, count: int = 1) -> Expectation:
        expectation = Expectation(match, count)
        self._expectations.append(expectation)
        return expectation

    def _record(self, kind: str, target: str, view: View) -> None:
        delivery = Delivery(kind, target, view, time.perf_counter())
        self.deliveries.append(delivery)
        for expectation in list(self._expectations):
            if expectation.match(delivery):
                expectation.remaining -= 1
                expectation.last_at = delivery.at
                if expectation.remaining <= 0:
                    expectation.done.set()
                    self._expectations.remove(expectation)


# -- what the bot should say ---------------------------------------------------------


def card_field(card: Card, label: str) -> str | None:
    return next((f.value for f in card.fields if f.label == label), None)


def is_card_of(view: View, number: int) -> bool:
    return isinstance(view, Card) and view.title.startswith(f"#{number} ")


def card_owned_by(number: int, owner: str | None) -> Match:
    """The card update of #number in the team channel, claimed by `owner` (None: anyone)."""

    def match(d: Delivery) -> bool:
        if d.kind != "update" or d.target != CHANNEL or not is_card_of(d.view, number):
            return False
        assert isinstance(d.view, Card)
        shown = card_field(d.view, TEXTS.card_owner)
        status = card_field(d.view, TEXTS.card_status)
        claimed = status == TEXTS.status_names["claimed"] and shown != TEXTS.card_nobody
        return claimed and (owner is None or shown == owner)

    return match


def told(people: Iterable[str], prefix: str) -> Match:
    """A private notice to one of `people` starting with `prefix`."""
    targets = frozenset(people)

    def match(d: Delivery) -> bool:
        return (
            d.kind == "private"
            and d.target in targets
            and isinstance(d.view, Notice)
            and d.view.text.startswith(prefix)
        )

    return match


def yours(number: int, customer: str) -> str:
    return TEXTS.claimed_you.format(number=number, customer=customer, source=SOURCE)


# -- what a claim costs the database --------------------------------------------------


class Statements:
    """Every statement the bot's engines run, and every transaction they open (a BEGIN
    and a COMMIT or ROLLBACK: on PostgreSQL two round trips of their own; a statement
    run in AUTOCOMMIT opens none), each with its `time.perf_counter()`, so that a
    claim's share can be counted between two instants. On SQLite nothing here crosses
    a network: the counts say what the same claim would cost on PostgreSQL."""

    def __init__(self, engines: Iterable[AsyncEngine]) -> None:
        self.statements: list[float] = []
        self.transactions: list[float] = []
        for engine in dict.fromkeys(engines):  # SQLite's reader is another engine
            event.listen(engine.sync_engine, "before_cursor_execute", self._statement)
            event.listen(engine.sync_engine, "begin", self._begin)

    def _statement(self, _conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE (storage/database.py)
            self.statements.append(time.perf_counter())

    def _begin(self, conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            self.transactions.append(time.perf_counter())

    def between(self, start: float, end: float) -> tuple[int, int]:
        """(statements, transactions begun) from `start` to `end`."""
        return (
            sum(1 for at in self.statements if start <= at <= end),
            sum(1 for at in self.transactions if start <= at <= end),
        )


# -- the run -------------------------------------------------------------------------


@dataclass
class Results:
    setup_seconds: float = 0.0
    #: 1-minute load average before and after (a busy machine makes the figures worse)
    load: list[float] = field(default_factory=list)
    router_ms: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)
    #: per sequential claim: (statements, transactions) in the router's share
    #: (`handle()`) and until both deliveries
    router_statements: list[tuple[int, int]] = field(default_factory=list)
    round_trip_statements: list[tuple[int, int]] = field(default_factory=list)
    #: per round: (wall ms, router ms, winner, problems)
    rounds: list[tuple[float, float, str, list[str]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, database_url: str, *, timeout: float) -> None:
        settings = load_settings(
            {"DATABASE_URL": database_url, "INLOOP_ADMINS": ADMIN, "INLOOP_LOG_LEVEL": "WARNING"}
        )
        self.platform = BenchPlatform()
        self.app = App(settings, {"console": self.platform})
        self.statements = Statements([self.app.db.engine, self.app.db.reader_engine])
        self.timeout = timeout
        # unique per run, so that a reused database never sees an event id or key twice
        self.run = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)

    def _event_id(self, kind: str) -> EventId:
        return EventId(f"bench-{self.run}-{kind}-{next(self._ids)}")

    async def command(self, who: PersonId, text: str) -> None:
        await self.app.handle(Command(self._event_id("cmd"), who, CHANNEL, text))

    async def mention(self, customer: str) -> None:
        external_id = f"{self.run}-{next(self._ids)}"
        await self.app.handle(
            MentionReceived(
                source=SOURCE,
                external_id=external_id,
                conversation_key=external_id,
                author=Author(customer, customer),
                text=f"Hello, my order for {customer} has not arrived yet. Can you help?",
                url=f"https://example.com/{external_id}",
                created_at=datetime.now(UTC),
            )
        )

    async def conversations(self) -> dict[str, int]:
        """This run's conversations whose card is posted: customer name → number."""
        async with self.app.db.transaction() as session:
            rows = await session.execute(
                select(col(Conversation.customer_name), col(Conversation.id))
                .where(
                    col(Conversation.source) == SOURCE,
                    col(Conversation.conversation_key).startswith(f"{self.run}-"),
                    col(Conversation.card_ref).is_not(None),
                )
                .order_by(col(Conversation.id))
            )
            return {name: number for name, number in rows if number is not None}

    async def wait(self, *expectations: Expectation) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                for expectation in expectations:
                    await expectation.done.wait()
        except TimeoutError:
            return False
        return True

    # -- setup ---------------------------------------------------------------------

    async def setup(self, conversations: int, crowd: Sequence[PersonId]) -> dict[str, int]:
        await self.command(ADMIN, "team add support")
        # Everyone who claims is already known to Inloop (meeting someone new costs a
        # platform lookup, which is not what is measured here).
        for who in crowd:
            await self.command(who, "teams")
        customers = [f"Customer{i:04d}" for i in range(1, conversations + 1)]
        for customer in customers:
            await self.mention(customer)
        await self.app.settle()
        numbers = await self.conversations()
        missing = [c for c in customers if c not in numbers]
        if missing:
            raise SystemExit(f"setup failed: no card posted for {len(missing)} conversations")
        return numbers

    # -- 1. sequential claims ------------------------------------------------------

    async def sequential(self, numbers: dict[str, int], results: Results) -> None:
        employees = [PersonId(f"console:{name}") for name in EMPLOYEES]
        for i, (customer, number) in enumerate(numbers.items()):
            who = employees[i % len(employees)]
            card = self.platform.expect(card_owned_by(number, display_name(who)))
            notice = self.platform.expect(told([who], yours(number, customer)))
            started = time.perf_counter()
            await self.command(who, f"claim {number}")
            returned = time.perf_counter()
            if not await self.wait(card, notice):
                results.failures.append(
                    f"claim {number} by {who}: card {'ok' if card.done.is_set() else 'missing'}, "
                    f"notice {'ok' if notice.done.is_set() else 'missing'} "
                    f"after {self.timeout:.0f} s"
                )
                await self.app.settle()
                continue
            delivered = max(card.last_at, notice.last_at)
            results.router_ms.append((returned - started) * 1000)
            results.round_trip_ms.append((delivered - started) * 1000)
            results.router_statements.append(self.statements.between(started, returned))
            results.round_trip_statements.append(self.statements.between(started, delivered))
            await self.app.settle()  # outside the measurement: the next claim starts idle

    # -- 2. concurrent claims on one conversation ---------------------------------

    async def concurrent(self, crowd: Sequence[PersonId], rounds: int, results: Results) -> None:
        for r in range(1, rounds + 1):
            customer = f"Crowd{r:02d}"
            await self.mention(customer)
            await self.app.settle()
            number = (await self.conversations())[customer]
            answers = self.platform.expect(told(crowd, f"#{number} "), count=len(crowd))
            card = self.platform.expect(card_owned_by(number, None))
            mark = len(self.platform.deliveries)
            started = time.perf_counter()
            await asyncio.gather(*(self.command(who, f"claim {number}") for who in crowd))
            returned = time.perf_counter()
            answered = await self.wait(answers, card)
            finished = max(answers.last_at, card.last_at) if answered else time.perf_counter()
            wall = (finished - started) * 1000
            await self.app.settle()
            problems = [] if answered else [f"not all answered within {self.timeout:.0f} s"]
            winner = self._check_round(number, customer, crowd, mark, problems)
            results.rounds.append((wall, (returned - started) * 1000, winner, problems))
            results.failures += [f"concurrent round {r} (#{number}): {p}" for p in problems]

    def _check_round(
        self,
        number: int,
        customer: str,
        crowd: Sequence[PersonId],
        mark: int,
        problems: list[str],
    ) -> str:
        """Exactly one winner, 49 told who won, the card shows the winner."""
        delivered = self.platform.deliveries[mark:]
        private: dict[str, list[str]] = {who: [] for who in crowd}
        for d in delivered:
            if d.kind == "private" and d.target in private and isinstance(d.view, Notice):
                private[d.target].append(d.view.text)
        not_once = [who for who, texts in private.items() if len(texts) != 1]
        if not_once:
            problems.append(f"{len(not_once)} people got no answer or more than one")
        winners = [who for who, texts in private.items() if yours(number, customer) in texts]
        if len(winners) != 1:
            problems.append(f"{len(winners)} people were told the conversation is theirs")
            return "?"
        winner = display_name(winners[0])
        lost = TEXTS.claimed_by_other.format(number=number, owner=winner)
        told_lost = sum(1 for texts in private.values() if texts == [lost])
        if told_lost != len(crowd) - 1:
            problems.append(f"{told_lost} of {len(crowd) - 1} were told {lost!r}")
        cards = [d for d in delivered if is_card_of(d.view, number)]
        if len(cards) != 1 or not card_owned_by(number, winner)(cards[0]):
            problems.append(
                f"card updates for the claim: {len(cards)}, expected one naming {winner}"
            )
        return winner


# -- reporting -----------------------------------------------------------------------


def report(results: Results, args: argparse.Namespace, url: str) -> None:
    shown = make_url(url).render_as_string(hide_password=True)
    load = " / ".join(f"{x:.2f}" for x in results.load)
    print(
        f"Inloop claim benchmark · {shown}\n"
        f"Python {platform.python_version()} · {os.cpu_count()} CPUs · "
        f"load average before / after: {load} · "
        f"setup (team, {args.claims} conversations) {results.setup_seconds:.1f} s\n"
    )
    if results.round_trip_ms:
        rows = [
            ("router only: handle() returned", results.router_ms),
            ("round trip: card + notice delivered", results.round_trip_ms),
        ]
        print(f"{len(results.round_trip_ms)} claims, one at a time (ms)")
        print(f"  {'':<38}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
        for label, values in rows:
            figures = "".join(f"{percentile(values, p):>8.2f}" for p in (50, 90, 99))
            print(f"  {label:<38}{figures}{max(values):>8.2f}")
        p50 = percentile(results.round_trip_ms, 50)
        p99 = percentile(results.round_trip_ms, 99)
        print(
            f"  target p50 <= {TARGET_P50_MS:g} ms: {verdict(p50 <= TARGET_P50_MS)}; "
            f"p99 <= {TARGET_P99_MS:g} ms: {verdict(p99 <= TARGET_P99_MS)}"
        )
        print("  database work per claim, median (round trips on PostgreSQL: statements")
        print("  + a BEGIN and a COMMIT per transaction)")
        for label, counts in (
            ("router only", results.router_statements),
            ("round trip", results.round_trip_statements),
        ):
            statements = percentile([n for n, _ in counts], 50)
            transactions = percentile([t for _, t in counts], 50)
            print(
                f"    {label:<12}{statements:>3.0f} statements in {transactions:.0f} "
                f"transaction(s): {statements + 2 * transactions:.0f} round trips"
            )
        print()
    if results.rounds:
        print(
            f"{args.concurrent} concurrent claims on one conversation, {len(results.rounds)} rounds"
        )
        print(f"  {'round':<7}{'all answered ms':>16}{'router ms':>11}  {'winner':<12}check")
        for r, (wall, router, winner, problems) in enumerate(results.rounds, 1):
            check = "OK" if not problems else "FAIL: " + "; ".join(problems)
            print(f"  {r:<7}{wall:>16.1f}{router:>11.1f}  {winner:<12}{check}")
        worst = max(wall for wall, *_ in results.rounds)
        print(
            f"  worst {worst:.1f} ms; target <= {TARGET_CONCURRENT_MS:g} ms: "
            f"{verdict(worst <= TARGET_CONCURRENT_MS)}\n"
        )
    if results.failures:
        print(f"correctness: FAIL ({len(results.failures)})")
        for failure in results.failures:
            print(f"  - {failure}")
    else:
        print("correctness: OK")


# -- entry point -----------------------------------------------------------------------


async def run(args: argparse.Namespace, url: str) -> Results:
    bench = Bench(url, timeout=args.timeout)
    results = Results()
    crowd = [PersonId(f"console:crowd{i:02d}") for i in range(1, args.concurrent + 1)]
    employees = [PersonId(f"console:{name}") for name in EMPLOYEES]
    results.load.append(os.getloadavg()[0])
    await bench.app.start()
    try:
        began = time.perf_counter()
        numbers = await bench.setup(args.claims, [*employees, *crowd])
        results.setup_seconds = time.perf_counter() - began
        await bench.sequential(numbers, results)
        if args.concurrent:
            await bench.concurrent(crowd, args.rounds, results)
    finally:
        await bench.app.stop()
    results.load.append(os.getloadavg()[0])
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.claims", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--claims", type=int, default=1000, help="sequential claims (default 1000)")
    parser.add_argument(
        "--concurrent", type=int, default=50, help="people claiming at once (default 50; 0: skip)"
    )
    parser.add_argument("--rounds", type=int, default=10, help="concurrent rounds (default 10)")
    add_database_options(parser)
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for any one answer"
    )
    args = parser.parse_args(argv)
    if args.claims < 1 or args.concurrent < 0 or args.rounds < 1:
        parser.error("--claims and --rounds must be at least 1, --concurrent at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
