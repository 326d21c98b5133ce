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
import json
import logging
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Column, MetaData, String, Table, Text, insert

from bench.common import percentile, start_postgres, tests_module
from bot.app import App, build_platforms, keep_from_collector
from bot.config import load_settings
from bot.platforms.slack.adapter import SlackPlatform
from storage.database import Database

TARGET_RATIO = 1.5
#: issue 18: over the durable floor (baseline + 1 row through Inloop's database layer)
TARGET_P50_OVER_FLOOR_MS = 3.0
TARGET_P99_OVER_FLOOR_MS = 10.0
TARGET_EVENTS_PER_S = 1000.0
TARGET_CPU_MS = 1.0
ROOT = Path(__file__).resolve().parents[1]
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
    if store is not None:
        await store.create()
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

    def __init__(self, path: Path, *, orm: bool, url: str = "") -> None:
        self.table = Table(
            "kept",
            MetaData(),
            Column("event_id", String(255), primary_key=True),
            Column("text", Text),
        )
        self.raw: sqlite3.Connection | None = None
        self.db: Database | None = None
        if orm:  # Inloop's own database layer, on the database Inloop runs on
            self.db = Database(url or f"sqlite+aiosqlite:///{path}")
            return
        self.raw = sqlite3.connect(path)
        self.raw.execute("PRAGMA journal_mode=WAL")
        self.raw.execute("PRAGMA synchronous=NORMAL")
        self.raw.execute("CREATE TABLE IF NOT EXISTS kept (event_id TEXT PRIMARY KEY, text TEXT)")
        self.raw.commit()

    async def create(self) -> None:
        if self.db is not None:
            async with self.db.engine.begin() as conn:
                await conn.run_sync(self.table.metadata.create_all)

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


def inloop_settings(fake: Any, url: str) -> Any:
    return load_settings(
        {
            "DATABASE_URL": url,
            "INLOOP_ADMINS": "slack:UADMIN",
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_APP_TOKEN": fake.app_token,
            "SLACK_API_URL": fake.api_url,
            "INLOOP_LOG_LEVEL": "WARNING",
        }
    )


@asynccontextmanager
async def running_inloop(fake: Any, url: str, *, timed: bool) -> AsyncIterator[App]:
    """A real App on Slack (Socket Mode, the fake's address), set up and started."""
    platforms = build_platforms(inloop_settings(fake, url))
    slack = platforms["slack"]
    assert isinstance(slack, SlackPlatform)
    # Slack's per-channel pace (1 message a second) is a rate limit, not latency: an
    # event arriving more than a second after the last card is not held back. Events
    # here come back to back, so the pace is off to measure the path itself.
    slack.pace_seconds = 0.0
    app = App(inloop_settings(fake, url), platforms)
    if timed:
        _time_parts(app, slack)
    await app.start()
    keep_from_collector()  # as `inloop run` does once started
    try:
        yield app
    finally:
        await app.stop()


def _time_parts(app: App, slack: SlackPlatform) -> None:
    """The split of Inloop's time, measured on the same events (not part of the timer)."""
    handle, handle_many, send = app.handle, app.handle_many, slack.send
    core = PARTS["core: router + handlers + commit"]

    async def timed_handle(event: Any) -> bool:
        started = time.perf_counter()
        try:
            return await handle(event)
        finally:
            core.append((time.perf_counter() - started) * 1000)

    async def timed_handle_many(events: Any) -> list[bool]:
        # channel messages come here, in groups (of one, when they come one at a time)
        started = time.perf_counter()
        try:
            return await handle_many(events)
        finally:
            core.append((time.perf_counter() - started) * 1000)

    async def timed_send(*args: Any) -> str:
        started = time.perf_counter()
        try:
            return await send(*args)
        finally:
            PARTS["adapter: chat.postMessage call"].append((time.perf_counter() - started) * 1000)

    setattr(app, "handle", timed_handle)  # noqa: B010
    setattr(app, "handle_many", timed_handle_many)  # noqa: B010
    setattr(slack, "send", timed_send)  # noqa: B010


async def inloop(fake: Any, events: int, ids: itertools.count[int], url: str) -> list[float]:
    async with running_inloop(fake, url, timed=True) as app:
        await fake.connected()
        await _set_up(fake)
        timer = Timer(fake, OWNER, app.settle)
        # the customer's first message makes Inloop look them up (users.info): not measured
        await timer.one(fake_slack.message("UCUST", SHARED, "hello", "1.0"), f"warm-{next(ids)}")
        PARTS["core: router + handlers + commit"].clear()
        return await _run(timer, "UCUST", events, ids)


async def _set_up(fake: Any) -> None:
    """An admin makes team support (its channel COWNER) and watches CSHARED for it."""
    setup = [("team add support", OWNER), ("team watch", SHARED)]
    for n, (text, where) in enumerate(setup):
        before = len(fake.ephemeral)
        await fake.push(
            "slash_commands", fake_slack.command("UADMIN", where, text, f"bench-setup-{n}")
        )
        await _until(lambda before=before: len(fake.ephemeral) > before)  # type: ignore[misc]


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


def _fake_slack() -> Any:
    fake = fake_slack.FakeSlack()
    for uid, name in [("UADMIN", "Ada"), ("UANN", "Ann")]:
        fake.users[uid] = fake_slack.user(uid, name)
    fake.users["UCUST"] = fake_slack.user("UCUST", "Giulia", guest=True)
    return fake


async def main_async(events: int, rounds: int, durable: bool, postgres: Any) -> int:
    fake = await _fake_slack().start()
    ids = itertools.count(1)
    results: dict[str, list[float]] = {"baseline": [], "inloop": []}
    if durable:
        if postgres is None:
            results[DURABLE_RAW] = []
        results[DURABLE_ORM] = []
    sides: list[tuple[str, Callable[[], Awaitable[list[float]]]]]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):

                def url(name: str, r: int = r) -> str:
                    if postgres is not None:
                        return str(postgres.create_database())
                    return f"sqlite+aiosqlite:///{Path(tmp) / f'{name}{r}.db'}"

                sides = [
                    ("baseline", partial(baseline, fake, events, ids)),
                    ("inloop", partial(inloop, fake, events, ids, url("round"))),
                ]
                if durable:
                    for name, orm in ((DURABLE_RAW, False), (DURABLE_ORM, True)):
                        if name not in results:
                            continue
                        path = Path(tmp) / f"kept{r}{orm}.db"
                        store = Store(path, orm=orm, url=url("kept") if orm else "")
                        sides.append((name, partial(baseline, fake, events, ids, store)))
                for name, run in sides if r % 2 == 0 else sides[::-1]:
                    results[name] += await run()
    finally:
        await fake.stop()
    cards = len(fake.in_channel(OWNER))
    expected = rounds * (events + 1)
    ok = cards == expected
    print(f"Python {platform.python_version()} on {platform.platform()}")
    print(f"database: {'PostgreSQL' if postgres is not None else 'SQLite'}")
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
    print(f"\np50 ratio inloop/baseline: {ratio:.2f} (the first target, <= {TARGET_RATIO})")
    if durable:
        floor, mine = results[DURABLE_ORM], results["inloop"]
        for p, target in ((50, TARGET_P50_OVER_FLOOR_MS), (99, TARGET_P99_OVER_FLOOR_MS)):
            over = percentile(mine, p) - percentile(floor, p)
            print(
                f"Inloop p{p} over the durable floor: {over:+.2f} ms "
                f"(target <= +{target:.0f} ms: {verdict(over <= target)})"
            )
    print(f"cards posted by Inloop: {cards} (expected {expected}) {'ok' if ok else 'WRONG'}")
    return 0 if ok else 1


# -- throughput: the fake Slack in a process of its own ---------------------------------------


def fake_process() -> None:
    """The child's entry point: a fake Slack that drives a burst in one watched channel.

    It prints its address as JSON, then obeys one JSON command per line on stdin:
    `setup` (team add, team watch, the customer's first message: not measured) and
    `run` (`events` messages, `in_flight` outstanding at any time), answering each with
    one JSON line."""
    asyncio.run(_fake_main())


async def _fake_main() -> None:
    fake = await _fake_slack().start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"api_url": fake.api_url}), flush=True)
    try:
        while line := await reader.readline():
            job = json.loads(line)
            if job["cmd"] == "setup":
                await fake.connected()
                await _set_up(fake)
                before = len(fake.in_channel(OWNER))
                await fake.push(
                    "events_api",
                    fake_slack.event(fake_slack.message("UCUST", SHARED, "hi", "1.0"), "w"),
                )
                await _until(lambda before=before: len(fake.in_channel(OWNER)) > before)  # type: ignore[misc]
                print(json.dumps({"ok": True}), flush=True)
            elif job["cmd"] == "connected":
                await fake.connected()
                print(json.dumps({"ok": True}), flush=True)
            elif job["cmd"] == "run":
                print(json.dumps(await _burst(fake, job["events"], job["in_flight"])), flush=True)
    finally:
        await fake.stop()


async def _burst(fake: Any, events: int, in_flight: int) -> dict[str, Any]:
    """Keep `in_flight` messages outstanding: each card posted lets the next one go."""
    before = len(fake.in_channel(OWNER))
    done = asyncio.Event()
    pushed = 0
    posted = 0
    sent_at: list[float] = []
    latencies: list[float] = []
    pushes: set[asyncio.Task[str]] = set()

    def push_next() -> None:
        nonlocal pushed
        if pushed >= events:
            return
        pushed += 1
        body = fake_slack.message(
            "UCUST", SHARED, f"burst {pushed}", f"{3_000_000 + pushed}.000100"
        )
        sent_at.append(time.perf_counter())
        task = loop.create_task(fake.push("events_api", fake_slack.event(body, f"B{pushed}")))
        pushes.add(task)
        task.add_done_callback(pushes.discard)

    def on_post(card: Any) -> None:
        nonlocal posted
        if card.channel != OWNER:
            return
        posted += 1
        # cards come in the order of their messages (one channel, Slack's order kept)
        latencies.append((time.perf_counter() - sent_at[posted - 1]) * 1000)
        push_next()
        if posted >= events:
            done.set()

    loop = asyncio.get_running_loop()
    fake.on_post = on_post
    started = time.perf_counter()
    for _ in range(min(in_flight, events)):
        push_next()
    await asyncio.wait_for(done.wait(), 300)
    seconds = time.perf_counter() - started
    fake.on_post = None
    cards = fake.in_channel(OWNER)[before:]
    wanted = {f"burst {n}" for n in range(1, events + 1)}
    seen = {w for c in cards for w in wanted if w in fake_slack.read(c.text, c.blocks)}
    return {
        "seconds": seconds,
        "cards": len(cards),
        "distinct": len(seen),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


@asynccontextmanager
async def fake_child() -> AsyncIterator[tuple[Any, Callable[[dict[str, Any]], Awaitable[Any]]]]:
    """A fake Slack in a child process: its address, and a way to give it a command."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), *sys.path]))}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import bench.slack; bench.slack.fake_process()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    async def ask(job: dict[str, Any]) -> Any:
        stdin.write((json.dumps(job) + "\n").encode())
        await stdin.drain()
        return json.loads(await stdout.readline())

    address = json.loads(await stdout.readline())
    fake = argparse.Namespace(
        bot_token="xoxb-test", app_token="xapp-test", api_url=address["api_url"]
    )
    try:
        yield fake, ask
    finally:
        stdin.close()
        await child.wait()


async def _burst_baseline(events: int, in_flight: int) -> tuple[dict[str, Any], float]:
    """The minimal Bolt app (posts each message's text to the owner channel), the same burst."""
    async with fake_child() as (fake, ask):
        session = aiohttp.ClientSession()
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, session=session)
        app = AsyncApp(client=client, signing_secret="unused", request_verification_enabled=False)

        @app.event("message")
        async def on_message(body: dict[str, Any], client: AsyncWebClient) -> None:
            await client.chat_postMessage(channel=OWNER, text=body["event"]["text"])

        socket_client = AsyncWebClient(token=fake.app_token, base_url=fake.api_url, session=session)
        handler = AsyncSocketModeHandler(app, fake.app_token, web_client=socket_client)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        try:
            await ask({"cmd": "connected"})
            cpu = time.process_time()
            figures = await ask({"cmd": "run", "events": events, "in_flight": in_flight})
            return figures, time.process_time() - cpu
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
            await session.close()


async def _burst_inloop(events: int, in_flight: int, url: str) -> tuple[dict[str, Any], float]:
    async with fake_child() as (fake, ask), running_inloop(fake, url, timed=False) as app:
        await ask({"cmd": "setup"})
        await app.settle()
        cpu = time.process_time()
        figures = await ask({"cmd": "run", "events": events, "in_flight": in_flight})
        return figures, time.process_time() - cpu


async def throughput(events: int, in_flight: int, url: str) -> int:
    sides = {
        "baseline (minimal Bolt app)": await _burst_baseline(events, in_flight),
        "Inloop": await _burst_inloop(events, in_flight, url),
    }
    print(f"database: {'PostgreSQL' if url.startswith('postgresql') else 'SQLite'}")
    print(f"{events} customer messages in one watched channel, {in_flight} in flight\n")
    print("| side | events/s | bot CPU ms/event | envelope -> card p50 ms | p99 ms | cards |")
    print("|---|---:|---:|---:|---:|---|")
    ok = True
    for name, (figures, cpu) in sides.items():
        right = figures["cards"] == events and figures["distinct"] == events
        ok = ok and right
        print(
            f"| {name} | {events / figures['seconds']:,.0f} | {cpu * 1000 / events:.3f} | "
            f"{figures['p50']:.1f} | {figures['p99']:.1f} | "
            f"{figures['cards']} ({'ok' if right else 'WRONG'}) |"
        )
    figures, cpu = sides["Inloop"]
    rate, cpu_ms = events / figures["seconds"], cpu * 1000 / events
    print(
        f"\nInloop: {rate:,.0f} events/s (target >= {TARGET_EVENTS_PER_S:,.0f}: "
        f"{verdict(rate >= TARGET_EVENTS_PER_S)}), {cpu_ms:.3f} ms of bot CPU per event "
        f"(target <= {TARGET_CPU_MS} ms: {verdict(cpu_ms <= TARGET_CPU_MS)})"
    )
    return 0 if ok else 1


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


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
    parser.add_argument(
        "--throughput",
        type=int,
        metavar="N",
        help="instead: N messages with --in-flight outstanding, events/s and bot CPU",
    )
    parser.add_argument("--in-flight", type=int, default=50, help="for --throughput")
    parser.add_argument(
        "--postgres", action="store_true", help="Inloop (and the floor) on a throwaway PostgreSQL"
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.rounds < 1 or args.in_flight < 1:
        parser.error("--events, --rounds and --in-flight must be at least 1")
    if args.throughput is not None and args.throughput < 1:
        parser.error("--throughput must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    server = start_postgres() if args.postgres else None
    try:
        if args.throughput is not None:
            with tempfile.TemporaryDirectory() as tmp:
                url = (
                    server.create_database()
                    if server is not None
                    else f"sqlite+aiosqlite:///{tmp}/inloop.db"
                )
                return asyncio.run(throughput(args.throughput, args.in_flight, url))
        return asyncio.run(main_async(args.events, args.rounds, args.durable, server))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
