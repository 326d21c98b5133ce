"""What every bench shares: the database it runs on, the exit code, percentiles."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

from bot.config import ConfigError
from bot.events import ChannelId, PersonId, local_part
from bot.platform import EventSink, PersonInfo
from bot.views import View

TESTS = Path(__file__).resolve().parents[1] / "tests"


class QuietPlatform:
    """A chat platform that delivers into thin air, for benches to time the core: each
    bench's own platform records what it needs on top. Everyone is staff, named after
    their id."""

    name = "console"
    command_prefix = "!inloop"
    pace_seconds = 0.0
    account_limit = None
    connected = True

    async def start(self, sink: EventSink) -> None:
        self.sink = sink

    async def stop(self) -> None:
        pass

    async def send(self, channel: ChannelId, view: View, key: str) -> str:
        return key

    async def update(self, channel: ChannelId, message_ref: str, view: View, key: str) -> None:
        pass

    def messages_per_update(self, view: View) -> int:
        return 1

    async def reply(self, channel: ChannelId, message_ref: str, view: View, key: str) -> str:
        return await self.send(channel, view, key)

    async def send_private(
        self, person: PersonId, view: View, key: str, context: ChannelId | None
    ) -> None:
        pass

    async def find_sent(
        self,
        target: str,
        key: str,
        *,
        since: datetime,
        thread: str | None = None,
        private: bool = False,
    ) -> None:
        return None  # nothing is ever half-sent here

    async def user_info(self, person: PersonId) -> PersonInfo:
        return PersonInfo(display_name=display_name(person), is_staff=True)


def display_name(person: str) -> str:
    """The name `QuietPlatform` gives a person (benches look for it on cards)."""
    return local_part(person).capitalize()


def tests_module(name: str) -> ModuleType:
    """A helper of tests/ (not a package: it is put on the path once)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    return importlib.import_module(name)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


class _Postgres(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...

    def create_database(self, name: str | None = None) -> str: ...


def start_postgres() -> _Postgres:
    """tests/pg_server.py's throwaway server (tests/ is not a package: put it on the path)."""
    server: _Postgres = tests_module("pg_server").PostgresServer()
    server.start()
    return server


def add_database_options(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """--database URL | --postgres; the group, for a bench to add a choice of its own."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--database", metavar="URL", help="default: a SQLite file in a temporary directory"
    )
    where.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL (tests/pg_server.py)"
    )
    return where


class _ErrorCounter(logging.Handler):
    """Every handler, job and delivery error reaches the log: any of them fails the run."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class _Outcome(Protocol):
    failures: list[str]


R = TypeVar("R", bound=_Outcome)


def run_bench(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, str], Coroutine[Any, Any, R]],
    report: Callable[[R, argparse.Namespace, str], None],
) -> int:
    """The part every bench shares: the database (a temporary SQLite file, a throwaway
    PostgreSQL, or --database), logged errors counted as failures, the report, the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    errors = _ErrorCounter()
    logging.getLogger().addHandler(errors)
    with tempfile.TemporaryDirectory(prefix="inloop-bench-") as tmp:
        server = start_postgres() if args.postgres else None
        try:
            url = args.database or (
                server.create_database() if server else f"sqlite+aiosqlite:///{tmp}/inloop.db"
            )
            try:
                results = asyncio.run(run(args, url))
            except ConfigError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        finally:
            if server is not None:
                server.stop()
    if errors.count:
        results.failures.append(f"{errors.count} errors were logged (see above)")
    report(results, args, url)
    return 1 if results.failures else 0


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for a bench's report ("?" where unknown)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"
