"""Commitments at scale (issue "Commitments").

Targets: with 10,000 people with commitments, start-up (timers rebuilt from the
database) <= 2 s and RSS <= 150 MB; 1,000 blocks starting in the same minute:
all reminders queued (outbox rows committed) within 2 s.

    .venv/bin/python -m bench.commitments                 # SQLite file in a temp dir
    .venv/bin/python -m bench.commitments --people 10000 --burst 1000
    .venv/bin/python -m bench.commitments --postgres      # a throwaway PostgreSQL server

The database is filled first, in this process, with plain INSERTs: the people,
their commitments (created a week ago), every occurrence of that week already
recorded (as a running Inloop would have), a team with open conversations, some
of them claimed. Then a fresh process (so that the filling does not count in its
memory) builds a real `App` on an in-memory platform, with the real APScheduler
timers, and measures:

1. start-up: `await app.start()` (migrations check, admins, outbox worker, the
   scheduler rebuilding one timer per commitment), wall time, then the
   process's resident memory (VmRSS, and the peak VmHWM);
2. the burst: `--burst` commitments start at 09:00 UTC on Monday. The domain
   clock is set there and one scheduler pass runs (`run_due`, what APScheduler's
   wake-up job calls): timed until it returns, when every reminder is a committed
   outbox row. Then, for information, until the platform has received them all.

Exits 1 if a check fails (wrong number of timers or reminders), never for timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text
from sqlmodel import col

from bench.common import QuietPlatform, add_database_options, start_postgres, verdict
from bot.app import App
from bot.config import load_settings
from bot.events import ChannelId, PersonId
from bot.recurrence import weekly
from bot.views import View
from storage.database import Database
from storage.migrate import upgrade
from storage.models import (
    Commitment,
    Conversation,
    DialogueSession,
    Mention,
    OutboxRow,
    Person,
    Team,
)

TARGET_STARTUP_S = 2.0
TARGET_RSS_MB = 150.0
TARGET_BURST_S = 2.0

#: the burst's instant: a Monday, 09:00 UTC; the bench starts a minute before
BURST_AT = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
ZONES = ("Europe/Rome", "America/New_York", "Asia/Tokyo", "UTC", "Europe/London")


class NullPlatform(QuietPlatform):
    """Takes every delivery and counts the private ones."""

    def __init__(self) -> None:
        self.private = 0
        self.all_private = asyncio.Event()
        self.expected = -1

    async def send_private(
        self, person: PersonId, view: View, key: str, context: ChannelId | None
    ) -> None:
        self.private += 1
        if self.private == self.expected:
            self.all_private.set()


# -- filling the database ------------------------------------------------------------------


async def fill(url: str, people: int, burst: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = BURST_AT - timedelta(minutes=1)
    week_ago = now - timedelta(days=7)
    db = Database(url)
    try:
        await upgrade(db)
        async with db.transaction() as session:
            await session.execute(
                insert(Person),
                [
                    {
                        "id": i,
                        "ref": f"console:p{i:05d}",
                        "display_name": f"P{i:05d}",
                        "role": "employee",
                        "locale": "",
                        "timezone": "",
                        "created_at": week_ago,
                    }
                    for i in range(1, people + 1)
                ],
            )
            await session.execute(
                insert(Team),
                [
                    {
                        "id": 1,
                        "name": "support",
                        "channel": "console:#support",
                        "tags": "",
                        "is_default": True,
                        "created_at": week_ago,
                    }
                ],
            )
            conversations, mentions = [], []
            for n in range(1, 61):
                owner = n if n <= min(20, people) else None  # the first 20 each claimed one
                conversations.append(
                    {
                        "id": n,
                        "source": "twitter",
                        "conversation_key": f"k{n}",
                        "customer_name": f"Customer {n}",
                        "customer_handle": "",
                        "url": "",
                        "team_id": 1,
                        "status": "claimed" if owner else "open",
                        "owner_id": owner,
                        "mention_count": 1,
                        "created_at": week_ago + timedelta(minutes=n),
                        "updated_at": week_ago + timedelta(minutes=n),
                    }
                )
                mentions.append(
                    {
                        "source": "twitter",
                        "external_id": f"e{n}",
                        "conversation_id": n,
                        "author_name": f"Customer {n}",
                        "author_handle": "",
                        "text": f"Message number {n} from a customer who wants an answer.",
                        "url": "",
                        "lang": "",
                        "tags": "",
                        "created_at": week_ago + timedelta(minutes=n),
                        "received_at": week_ago + timedelta(minutes=n),
                    }
                )
            await session.execute(insert(Conversation), conversations)
            await session.execute(insert(Mention), mentions)
            commitments, sessions = [], []
            for i in range(1, people + 1):
                if i <= burst:
                    days, start, tz = "1,2,3,4,5", "09:00", "UTC"
                else:
                    # never 09:00 UTC: quarter past or to the hour, in some zone
                    days = ",".join(str(d) for d in sorted(rng.sample(range(1, 8), 3)))
                    start = f"{rng.randrange(6, 19):02d}:{rng.choice((15, 45))}"
                    tz = rng.choice(ZONES)
                minutes = rng.choice((15, 30, 45, 60))
                commitments.append(
                    {
                        "id": i,
                        "person_id": i,
                        "days": days,
                        "start": start,
                        "minutes": minutes,
                        "timezone": tz,
                        "team_id": 1,
                        "created_at": week_ago,
                    }
                )
                # the week already lived: every occurrence recorded, as a running bot does
                for at in weekly(days, start, tz).between(week_ago, now):
                    sessions.append(
                        {
                            "commitment_id": i,
                            "person_id": i,
                            "occurrence_start": at,
                            "ends_at": at + timedelta(minutes=minutes),
                            "outcome": "done",
                            "minutes_planned": minutes,
                            "minutes_given": minutes,
                            "created_at": at,
                            "updated_at": at,
                        }
                    )
            await session.execute(insert(Commitment), commitments)
            for k in range(0, len(sessions), 5000):
                await session.execute(insert(DialogueSession), sessions[k : k + 5000])
            if db.engine.dialect.name == "postgresql":
                # the rows above carry their ids: the sequences must start after them
                for name in ("person", "team", "conversation", "commitment"):
                    await session.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                            f"(SELECT max(id) FROM {name}))"
                        )
                    )
    finally:
        await db.dispose()


# -- measuring (in a fresh process) ------------------------------------------------------------


def memory_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


async def measure(url: str, burst: int) -> dict[str, float]:
    now = BURST_AT - timedelta(minutes=1)
    clock_now = [now]
    platform = NullPlatform()
    settings = load_settings({"DATABASE_URL": url, "INLOOP_ADMINS": "console:admin"})
    app = App(settings, {"console": platform}, clock=lambda: clock_now[0])
    started = time.perf_counter()
    await app.start()
    startup = time.perf_counter() - started
    rss, peak = memory_mb()
    timers = app.scheduler.timers
    try:
        await app.settle()
        platform.private = 0
        platform.expected = burst
        clock_now[0] = BURST_AT
        started = time.perf_counter()
        fired = await app.scheduler.run_due(BURST_AT)
        queued_s = time.perf_counter() - started
        async with app.db.read() as session:
            queued = await session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(col(OutboxRow.payload).contains("Dialogue time"))
            )
        await asyncio.wait_for(platform.all_private.wait(), 60)
        delivered_s = time.perf_counter() - started
        _, burst_peak = memory_mb()
    finally:
        await app.stop()
    return {
        "startup_s": startup,
        "rss_mb": rss,
        "peak_mb": peak,
        "timers": timers,
        "fired": fired,
        "queued": int(queued or 0),
        "queued_s": queued_s,
        "delivered_s": delivered_s,
        "burst_peak_mb": burst_peak,
    }


def report(figures: dict[str, float], args: argparse.Namespace) -> bool:
    print(f"people with commitments: {args.people}, blocks at 09:00: {args.burst}")
    print(
        f"start-up (app.start, {int(figures['timers'])} timers rebuilt): "
        f"{figures['startup_s']:.3f} s  (target <= {TARGET_STARTUP_S} s: "
        f"{verdict(figures['startup_s'] <= TARGET_STARTUP_S)})"
    )
    print(
        f"RSS after start-up: {figures['rss_mb']:.1f} MB, peak {figures['peak_mb']:.1f} MB  "
        f"(target <= {TARGET_RSS_MB} MB: {verdict(figures['peak_mb'] <= TARGET_RSS_MB)})"
    )
    print(
        f"burst: {int(figures['queued'])} reminders queued in {figures['queued_s']:.3f} s  "
        f"(target <= {TARGET_BURST_S} s: {verdict(figures['queued_s'] <= TARGET_BURST_S)}); "
        f"all delivered to the platform after {figures['delivered_s']:.3f} s; "
        f"peak RSS {figures['burst_peak_mb']:.1f} MB"
    )
    ok = bool(figures["timers"] == args.people and figures["queued"] == args.burst)
    if not ok:
        print(
            f"CHECK FAILED: timers {figures['timers']} (want {args.people}), "
            f"reminders {figures['queued']} (want {args.burst})"
        )
    return ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.commitments", description=__doc__)
    parser.add_argument("--people", type=int, default=10_000, help="default 10000")
    parser.add_argument("--burst", type=int, default=1_000, help="default 1000")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    add_database_options(parser)
    args = parser.parse_args(argv)
    if not 0 < args.burst <= args.people:
        parser.error("--burst must be between 1 and --people")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:  # the child: measure and print JSON
        print(json.dumps(asyncio.run(measure(args.measure, args.burst))))
        return 0
    server = start_postgres() if args.postgres else None
    try:
        return _parent(args, server.create_database() if server is not None else None)
    finally:
        if server is not None:
            server.stop()


def _parent(args: argparse.Namespace, postgres_url: str | None) -> int:
    """Fill the database here, measure in a fresh child process, report."""
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or postgres_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        print(f"database: {'PostgreSQL' if url.startswith('postgresql') else 'SQLite'}")
        started = time.perf_counter()
        asyncio.run(fill(url, args.people, args.burst))
        print(f"(database filled in {time.perf_counter() - started:.1f} s)")
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.commitments",
                "--people",
                str(args.people),
                "--burst",
                str(args.burst),
                "--measure",
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return 1
        figures = json.loads(child.stdout.strip().splitlines()[-1])
    return 0 if report(figures, args) else 1


if __name__ == "__main__":
    sys.exit(main())
