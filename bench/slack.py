"""Socket Mode event → chat.postMessage, Inloop against a minimal Bolt app (issue "Slack").

Target: Inloop's p50 within 1.5× of a minimal Bolt app that posts one message for
the same event, measured in the same run on the same fake Slack.

    .venv/bin/python -m bench.slack                   # 300 events per side, 3 rounds
    .venv/bin/python -m bench.slack --events 100 --rounds 5
    .venv/bin/python -m bench.slack --durable         # + the baseline keeping each event

Both apps connect by Socket Mode to the fake Slack of the tests (tests/fake_slack.py,
on 127.0.0.1). One event at a time: the timer starts just before the fake Slack
writes the envelope to the websocket and stops when the fake Slack receives the
`chat.postMessage` that answers it. The next event is sent after that.

- baseline: `AsyncApp` + `AsyncSocketModeHandler`, one `@app.event("message")` listener
  that calls `client.chat_postMessage` (the same aiohttp session reuse as Inloop).
- Inloop: a real `App` on SQLite; the event is a customer's message in a watched
  channel, so it goes through the router (dedup, person, watch listener, routing,
  a new conversation) and the outbox worker posts the card in the owner channel.

Rounds alternate baseline and Inloop so that machine noise hits both alike.
Exits 1 if a correctness check fails (never for timing), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Column, MetaData, String, Table, Text, insert

from bench.common import percentile, tests_module
from bot.app import App, build_platforms
from bot.config import load_settings
from bot.platforms.slack.adapter import SlackPlatform
from storage.database import Database

TARGET_RATIO = 1.5
PARTS: dict[str, list[float]] = {
    "core: router + handlers + commit": [],
    "adapter: chat.postMessage call": [],
}
OWNER, SHARED, BASE = "COWNER", "CSHARED", "CBASE"
DURABLE_RAW = "baseline + 1 row committed (sqlite3)"
DURABLE_ORM = "baseline + 1 row committed (SQLAlchemy)"


fake_slack: Any = tests_module("fake_slack")


class Timer:
    """Times envelope → chat.postMessage to one channel, one event at a time."""

    def __init__(
        self, fake: Any, channel: str, idle: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.fake = fake
        self.idle = idle
        self.channel = channel
        self.arrived = asyncio.Event()
        self.at = 0.0
        fake.on_post = self._posted

    def _posted(self, posted: Any) -> None:
        if posted.channel == self.channel:
            self.at = time.perf_counter()
            self.arrived.set()

    async def one(self, body: dict[str, Any], event_id: str) -> float:
        # Not timed: let the previous event's tail finish (Inloop books the delivery
        # after posting), so each figure is one event on an otherwise idle app.
        if self.idle is not None:
            await self.idle()
        await asyncio.sleep(0.002)
        self.arrived.clear()
        started = time.perf_counter()
        await self.fake.push("events_api", fake_slack.event(body, event_id))
        await asyncio.wait_for(self.arrived.wait(), 30)
        return (self.at - started) * 1000


async def baseline(
    fake: Any, events: int, ids: itertools.count[int], store: Store | None = None
) -> list[float]:
    """The minimal Bolt app; with `store`, it first keeps the event durably (see `Store`)."""
    session = aiohttp.ClientSession()
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, session=session)
    app = AsyncApp(client=client, signing_secret="unused", request_verification_enabled=False)

    @app.event("message")
    async def on_message(body: dict[str, Any], client: AsyncWebClient) -> None:
        if store is not None:
            await store.keep(body["event_id"], body["event"]["text"])
        await client.chat_postMessage(channel=BASE, text=body["event"]["text"])

    socket_client = AsyncWebClient(token=fake.app_token, base_url=fake.api_url, session=session)
    handler = AsyncSocketModeHandler(app, fake.app_token, web_client=socket_client)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        timer = Timer(fake, BASE)
        return await _run(timer, "UCUST", events, ids)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await session.close()
        if store is not None:
            await store.close()


class Store:
    """The least an app can do to keep an event before answering it: one row, committed.

    Not part of the target. It shows what durability alone costs, which the outbox
    rule (every message a row committed before it is sent) asks of Inloop and not of
    the baseline: with the bare driver (sqlite3, on the loop) and through Inloop's
    own database layer (SQLAlchemy async session, the same engine settings).
    """

    def __init__(self, path: Path, *, orm: bool) -> None:
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("CREATE TABLE IF NOT EXISTS kept (event_id TEXT PRIMARY KEY, text TEXT)")
        raw.commit()
        # the one way in that this store measures
        self.raw: sqlite3.Connection | None = None if orm else raw
        if orm:
            raw.close()
        self.db = Database(f"sqlite+aiosqlite:///{path}") if orm else None
        self.table = Table("kept", MetaData(), Column("event_id", String), Column("text", Text))

    async def keep(self, event_id: str, text: str) -> None:
        if self.raw is not None:
            with self.raw:
                self.raw.execute("INSERT INTO kept VALUES (?, ?)", (event_id, text))
            return
        assert self.db is not None
        async with self.db.transaction() as session:
            await session.execute(insert(self.table), {"event_id": event_id, "text": text})

    async def close(self) -> None:
        if self.raw is not None:
            self.raw.close()
        if self.db is not None:
            await self.db.dispose()


async def inloop(fake: Any, events: int, ids: itertools.count[int], db: Path) -> list[float]:
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
            "INLOOP_ADMINS": "slack:UADMIN",
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_APP_TOKEN": fake.app_token,
            "SLACK_API_URL": fake.api_url,
            "INLOOP_LOG_LEVEL": "WARNING",
        }
    )
    platforms = build_platforms(settings)
    slack = platforms["slack"]
    assert isinstance(slack, SlackPlatform)
    # Slack's per-channel pace (1 message a second) is a rate limit, not latency: an
    # event arriving more than a second after the last card is not held back. Events
    # here come back to back, so the pace is off to measure the path itself.
    slack.pace_seconds = 0.0
    app = App(settings, platforms)
    handle, send = app.handle, slack.send

    async def timed_handle(event: Any) -> bool:
        started = time.perf_counter()
        try:
            return await handle(event)
        finally:
            PARTS["core: router + handlers + commit"].append((time.perf_counter() - started) * 1000)

    async def timed_send(*args: Any) -> str:
        started = time.perf_counter()
        try:
            return await send(*args)
        finally:
            PARTS["adapter: chat.postMessage call"].append((time.perf_counter() - started) * 1000)

    # the split of Inloop's time, measured on the same events (not part of the timer)
    setattr(app, "handle", timed_handle)  # noqa: B010
    setattr(slack, "send", timed_send)  # noqa: B010
    await app.start()
    try:
        await fake.connected()
        setup = [("team add support", OWNER), ("team watch", SHARED)]
        for n, (text, where) in enumerate(setup):
            before = len(fake.ephemeral)
            await fake.push(
                "slash_commands", fake_slack.command("UADMIN", where, text, f"bench-setup-{n}")
            )
            await _until(lambda before=before: len(fake.ephemeral) > before)  # type: ignore[misc]
        timer = Timer(fake, OWNER, app.settle)
        # the customer's first message makes Inloop look them up (users.info): not measured
        await timer.one(fake_slack.message("UCUST", SHARED, "hello", "1.0"), f"warm-{next(ids)}")
        return await _run(timer, "UCUST", events, ids)
    finally:
        await app.stop()


async def _run(timer: Timer, uid: str, events: int, ids: itertools.count[int]) -> list[float]:
    times = []
    for _ in range(events):
        n = next(ids)
        body = fake_slack.message(uid, SHARED, f"question {n}", f"{2_000_000 + n}.000100")
        times.append(await timer.one(body, f"Ev{n}"))
    return times


async def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def main_async(events: int, rounds: int, durable: bool) -> int:
    fake = await fake_slack.FakeSlack().start()
    for uid, name in [("UADMIN", "Ada"), ("UANN", "Ann")]:
        fake.users[uid] = fake_slack.user(uid, name)
    fake.users["UCUST"] = fake_slack.user("UCUST", "Giulia", guest=True)
    ids = itertools.count(1)
    results: dict[str, list[float]] = {"baseline": [], "inloop": []}
    if durable:
        results |= {DURABLE_RAW: [], DURABLE_ORM: []}
    sides: list[tuple[str, Callable[[], Awaitable[list[float]]]]]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):
                sides = [
                    ("baseline", partial(baseline, fake, events, ids)),
                    ("inloop", partial(inloop, fake, events, ids, Path(tmp) / f"round{r}.db")),
                ]
                if durable:
                    for name, orm in ((DURABLE_RAW, False), (DURABLE_ORM, True)):
                        store = Store(Path(tmp) / f"kept{r}{orm}.db", orm=orm)
                        sides.append((name, partial(baseline, fake, events, ids, store)))
                for name, run in sides if r % 2 == 0 else sides[::-1]:
                    results[name] += await run()
    finally:
        await fake.stop()
    cards = len(fake.in_channel(OWNER))
    expected = rounds * (events + 1)
    ok = cards == expected
    print(f"Python {platform.python_version()} on {platform.platform()}")
    print(f"{rounds} rounds x {events} events per side; one event at a time\n")
    print("| side | n | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for name, values in results.items():
        cells = [percentile(values, p) for p in (50, 90, 99, 100)]
        print(f"| {name} | {len(values)} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    print("\nInloop's time, split (p50 ms):")
    for name, values in PARTS.items():
        print(f"- {name}: {percentile(values, 50):.2f}")
    ratio = percentile(results["inloop"], 50) / percentile(results["baseline"], 50)
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"\np50 ratio inloop/baseline: {ratio:.2f} ({verdict} the target <= {TARGET_RATIO})")
    print(f"cards posted by Inloop: {cards} (expected {expected}) {'ok' if ok else 'WRONG'}")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.slack", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=300, help="events per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (sides alternate)")
    parser.add_argument(
        "--durable",
        action="store_true",
        help="also time the baseline keeping each event in SQLite before it posts",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.rounds < 1:
        parser.error("--events and --rounds must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(main_async(args.events, args.rounds, args.durable))


if __name__ == "__main__":
    sys.exit(main())
