"""A returning customer's card (issue 15, "The card remembers").

Target: the card of a customer with 100 earlier conversations costs no more than
1 ms over a new customer's; the card's history line is one indexed read.

    .venv/bin/python -m bench.customers                  # SQLite file in a temp dir
    .venv/bin/python -m bench.customers --postgres       # a throwaway PostgreSQL server
    .venv/bin/python -m bench.customers --database postgresql+asyncpg://user@host/db

A real `App` (migrations, router, handlers) runs on a quiet in-memory platform. Set
up, not timed: team support, `--others` customers with `--each` conversations each
(so that the table is not just the two customers measured), a veteran customer with
100 conversations, then one more from the veteran and a first one from a newcomer.
Timed: `handlers.card.render` of each of the two last conversations, in turns, in a
read transaction of its own: what every claim, reply or follow-up pays to redraw
the card (its facts, the customer's history, the relationship owner).

Checks (exit 1 when one fails): the veteran's card says "Returning: 100 before",
the newcomer's says nothing of the sort, and the history read's query plan uses the
(customer_id, id) index.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bench.common import (
    QuietPlatform,
    add_database_options,
    load_average,
    percentile,
    run_bench,
    verdict,
)
from bot.app import App
from bot.config import load_settings
from bot.context import Context
from bot.events import Author, ChannelId, Command, EventId, MentionReceived, PersonId
from bot.outbox import OutboxWriter
from handlers import card
from storage import customers
from storage.models import Conversation

CHANNEL = ChannelId("console:#support")
ADMIN = PersonId("console:admin")
#: the issue's target: the veteran's card over the newcomer's, in ms
TARGET_EXTRA_MS = 1.0
EARLIER = 100
BATCH = 200

_ids = itertools.count(1)


@dataclass
class Results:
    veteran_ms: list[float] = field(default_factory=list)
    newcomer_ms: list[float] = field(default_factory=list)
    conversations: int = 0
    plan: str = ""
    failures: list[str] = field(default_factory=list)


def _mention(name: str, key: str, at: datetime) -> MentionReceived:
    n = next(_ids)
    return MentionReceived(
        source="twitter",
        external_id=f"m-{n}",
        conversation_key=key,
        author=Author(name, f"@{name.lower()}"),
        text="Il mio ordine è arrivato rotto",
        url="",
        created_at=at,
    )


async def run(args: argparse.Namespace, url: str) -> Results:
    results = Results()
    clock_now = [datetime(2026, 11, 2, 9, 0, tzinfo=UTC)]
    settings = load_settings({"DATABASE_URL": url, "INLOOP_ADMINS": ADMIN})
    app = App(settings, {"console": QuietPlatform()}, clock=lambda: clock_now[0], run_timers=False)
    await app.start()
    try:
        await app.handle(Command(EventId("setup-team"), ADMIN, CHANNEL, "team add support"))
        # Other customers first, then the veteran's 100 conversations, spread over weeks.
        mentions = [
            _mention(f"Other{c}", f"o-{c}-{i}", clock_now[0])
            for i in range(args.each)
            for c in range(args.others)
        ]
        mentions += [_mention("Veteran", f"v-{i}", clock_now[0]) for i in range(EARLIER)]
        for start in range(0, len(mentions), BATCH):
            await app.handle_many(mentions[start : start + BATCH])
            clock_now[0] += timedelta(minutes=5)
        await app.handle_many(
            [_mention("Veteran", "v-last", clock_now[0]), _mention("Newcomer", "n-1", clock_now[0])]
        )
        await app.settle()
        async with app.db.read() as session:
            veteran = await _conversation(session, "v-last")
            newcomer = await _conversation(session, "n-1")
            results.conversations = int(
                (await session.execute(text("SELECT count(*) FROM conversation"))).scalar_one()
            )
            results.plan = await _plan(session, veteran)

        async def render(conversation: Conversation) -> tuple[float, str]:
            async with app.db.read() as session:
                ctx = Context(
                    session=session,
                    out=OutboxWriter(session, clock_now[0]),
                    directory=app.directory,
                    now=clock_now[0],
                    channel_language="en",
                )
                started = time.perf_counter()
                view = await card.render(ctx, conversation, CHANNEL)
                elapsed = (time.perf_counter() - started) * 1000
            return elapsed, "\n".join(f"{f.label}: {f.value}" for f in view.fields)

        for _ in range(args.warmup):
            await render(veteran)
            await render(newcomer)
        for _ in range(args.rounds):
            ms, shown = await render(veteran)
            results.veteran_ms.append(ms)
            if f"Returning: {EARLIER} before" not in shown:
                results.failures.append(f"the veteran's card did not say so: {shown!r}")
                break
            ms, shown = await render(newcomer)
            results.newcomer_ms.append(ms)
            if "Returning" in shown:
                results.failures.append(f"the newcomer's card says Returning: {shown!r}")
                break
        if "ix_conversation_customer_id" not in results.plan:
            results.failures.append("the history read does not use ix_conversation_customer_id")
    finally:
        await app.stop()
    return results


async def _conversation(session: AsyncSession, key: str) -> Conversation:
    found = (
        await session.scalars(select(Conversation).where(col(Conversation.conversation_key) == key))
    ).one()
    session.expunge(found)
    return found


async def _plan(session: AsyncSession, conversation: Conversation) -> str:
    """The database's plan for the card's history read."""
    statement = customers._history_statement().params(
        customer=conversation.customer_id, before=conversation.id
    )
    bind = session.get_bind()
    compiled = statement.compile(bind, compile_kwargs={"literal_binds": True})
    explain = "EXPLAIN QUERY PLAN " if bind.dialect.name == "sqlite" else "EXPLAIN "
    rows = await session.execute(text(explain + str(compiled)))
    return "\n".join(" ".join(str(v) for v in row) for row in rows)


def report(results: Results, args: argparse.Namespace, url: str) -> None:
    backend = make_url(url).get_backend_name()
    print(f"bench.customers on {backend} · {platform.python_version()} · load {load_average()}")
    print(f"{results.conversations} conversations in the table; {args.rounds} renders of each card")
    if results.veteran_ms and results.newcomer_ms:
        for p in (50, 90, 99):
            v, n = percentile(results.veteran_ms, p), percentile(results.newcomer_ms, p)
            print(f"  p{p}: veteran {v:.3f} ms · newcomer {n:.3f} ms · extra {v - n:+.3f} ms")
        extra = percentile(results.veteran_ms, 50) - percentile(results.newcomer_ms, 50)
        print(
            f"target: extra p50 <= {TARGET_EXTRA_MS} ms: "
            f"{verdict(extra <= TARGET_EXTRA_MS)} ({extra:+.3f} ms)"
        )
    print("history read plan:")
    for line in results.plan.splitlines():
        print(f"  {line}")
    for failure in results.failures:
        print(f"FAILED: {failure}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.customers", description=__doc__)
    add_database_options(parser)
    parser.add_argument("--others", type=int, default=1000, help="other customers (1000)")
    parser.add_argument("--each", type=int, default=5, help="their conversations each (5)")
    parser.add_argument("--rounds", type=int, default=1000, help="renders of each card (1000)")
    parser.add_argument("--warmup", type=int, default=50)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
