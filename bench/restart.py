"""A kill -9 in the middle of a send, then a restart (issue 17 §1): when is every card out?

1,000 cards wait in one Slack channel's outbox (against tests/fake_slack.py, paced at
`--pace` seconds a post: 36 ms, 1,000 cards in 36 s). An instance, a process of its
own, starts posting them; the fake Slack keeps its `--kill-at`th post and never
answers it, and the instance is killed (SIGKILL) right then. A second process starts
on the same database (on SQLite, the restart; with --postgres, just as well another
instance) and posts the rest.

    .venv/bin/python -m bench.restart                # SQLite
    .venv/bin/python -m bench.restart --postgres     # a throwaway PostgreSQL

Reported: seconds from the kill to the last card, and from the first start to the
last card; cards posted twice and cards missing (both must be 0). Exits 1 if a card
is twice or missing, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import add_database_options, run_bench, tests_module
from bot.app import App, build_platforms
from bot.config import load_settings
from bot.events import Author, MentionReceived

OWNER = "COWNER"
ROOT = Path(__file__).resolve().parents[1]
fake_slack = tests_module("fake_slack")

_INSTANCE = """
import asyncio, logging
from bot.app import App, build_platforms
from bot.config import load_settings

async def main() -> None:
    settings = load_settings({env!r})
    platforms = build_platforms(settings)
    platforms["slack"].pace_seconds = {pace!r}
    app = App(settings, platforms)
    await app.start()
    print("started", flush=True)
    await asyncio.Event().wait()

logging.basicConfig(level=logging.ERROR)
asyncio.run(main())
"""


@dataclass
class Results:
    cards: int = 0
    #: how long the channel stood still: the kill to the next card
    kill_to_next_s: float = 0.0
    kill_to_last_s: float = 0.0
    start_to_last_s: float = 0.0
    posted_before_kill: int = 0
    twice: int = 0
    missing: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    failures: list[str] = field(default_factory=list)


def _env(url: str, fake: Any) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "INLOOP_ADMINS": "slack:UADMIN",
        "INLOOP_LOG_LEVEL": "ERROR",
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_API_URL": fake.api_url,
    }


async def _write_cards(url: str, fake: Any, count: int) -> None:
    """Team support in #OWNER, and `count` cards waiting in its outbox."""
    settings = load_settings(_env(url, fake))
    app = App(settings, build_platforms(settings))
    await app.start()
    try:
        await fake.connected()
        pushed = await fake.push(
            "slash_commands", fake_slack.command("UADMIN", OWNER, "team add support", "t-1")
        )
        await fake.acked(pushed)
        await _until(lambda: bool(fake.told("UADMIN")), 30)
        await app.outbox.stop()  # the cards wait, as if written during a downtime
        now = datetime.now(UTC)
        for start in range(0, count, 100):
            await app.handle_many(
                [
                    MentionReceived(
                        source="twitter",
                        external_id=f"restart-{n}",
                        conversation_key=f"restart-{n}",
                        author=Author(f"Customer{n}", f"@customer{n}"),
                        text=f"message {n}",
                        url="",
                        created_at=now,
                    )
                    for n in range(start, min(count, start + 100))
                ]
            )
    finally:
        await app.stop()


async def _instance(url: str, fake: Any, pace: float) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _INSTANCE.format(env=_env(url, fake), pace=pace),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    await asyncio.wait_for(process.stdout.readline(), 120)
    return process


async def _until(check: Callable[[], bool], within: float) -> None:
    """Wait until `check()` holds; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.002)


def _cards(fake: Any) -> list[str]:
    return [p.text.split(" ")[0] for p in fake.in_channel(OWNER) if p.text.startswith("#")]


async def run(args: argparse.Namespace, url: str) -> Results:
    results = Results(cards=args.cards)
    fake = await fake_slack.FakeSlack().start()
    fake.users["UADMIN"] = fake_slack.user("UADMIN", "Ada")
    processes: list[asyncio.subprocess.Process] = []
    try:
        await _write_cards(url, fake, args.cards)
        before = fake.count("chat.postMessage")
        began = time.monotonic()
        processes.append(await _instance(url, fake, args.pace))
        await _until(lambda: fake.count("chat.postMessage") - before >= args.kill_at - 1, 120)
        # The kill-at'th post is kept by Slack and never answered.
        kept = fake.answer_slowly("chat.postMessage", 3600)
        await asyncio.wait_for(kept.wait(), 60)
        processes[0].kill()
        await processes[0].wait()
        killed = time.monotonic()
        results.posted_before_kill = len(_cards(fake))
        processes.append(await _instance(url, fake, args.pace))
        with contextlib.suppress(TimeoutError):  # what is missing is reported below
            out = results.posted_before_kill
            await _until(lambda: len(set(_cards(fake))) > out, args.within)
            results.kill_to_next_s = time.monotonic() - killed
            await _until(lambda: len(set(_cards(fake))) >= args.cards, args.within)
        last = time.monotonic()
        await asyncio.sleep(2)  # time for a card to come twice
        results.kill_to_last_s = last - killed
        results.start_to_last_s = last - began
        cards = _cards(fake)
        results.twice = len(cards) - len(set(cards))
        results.missing = args.cards - len(set(cards))
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        await fake.stop()
    if results.twice:
        results.failures.append(f"{results.twice} cards posted twice")
    if results.missing:
        results.failures.append(f"{results.missing} cards missing after {args.within} s")
    results.load = os.getloadavg()
    return results


def report(results: Results, args: argparse.Namespace, url: str) -> None:
    print(f"database: {url.split('://')[0]}; {results.cards} cards, pace {args.pace} s")
    print(f"killed at post {args.kill_at}: {results.posted_before_kill} cards were out")
    print(f"kill → next card: {results.kill_to_next_s:.1f} s (the restart's start included)")
    print(f"kill → last card: {results.kill_to_last_s:.1f} s")
    print(f"first start → last card: {results.start_to_last_s:.1f} s")
    print(f"twice: {results.twice}, missing: {results.missing}")
    print("load average: " + " ".join(f"{x:.2f}" for x in results.load))
    for failure in results.failures:
        print(f"FAILED: {failure}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.restart", description=__doc__.split("\n")[0])
    add_database_options(parser)
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--pace", type=float, default=0.036, help="seconds between posts")
    parser.add_argument("--kill-at", type=int, default=100, help="the post the kill comes in")
    parser.add_argument("--within", type=float, default=300.0, help="seconds to wait at most")
    args = parser.parse_args(argv)
    if args.cards < 1 or not 1 <= args.kill_at <= args.cards or args.pace < 0:
        parser.error("need 1 <= --kill-at <= --cards and --pace >= 0")
    return run_bench(args, run, report)


if __name__ == "__main__":
    sys.exit(main())
