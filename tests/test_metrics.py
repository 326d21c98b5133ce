"""What operators watch, scraped the way Prometheus scrapes it: over HTTP, from the
webhook's port and from METRICS_PORT, while people claim and customers write in."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from test_cli import inloop

from bot.intake.webhook import sign
from fake_slack import FakeSlack
from harness import Chat, channel, eventually
from slack_chat import SlackChat
from storage.models import Feed

SECRET = "test-secret-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Watched:
    """A running Inloop with its webhook and its metrics port, and an HTTP client."""

    def __init__(self, chat: Chat, http: aiohttp.ClientSession):
        self.chat = chat
        self.http = http
        app = chat.app
        assert app.webhook is not None and app.ops_server is not None
        self.webhook = f"http://127.0.0.1:{app.webhook.port}"
        self.metrics_port = f"http://127.0.0.1:{app.ops_server.port}"

    async def scrape(self, base: str | None = None) -> Samples:
        return await self.read(self.http, base or self.metrics_port)

    @staticmethod
    async def read(http: aiohttp.ClientSession, base: str) -> Samples:
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            body = await resp.text()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }

    async def post(self, body: bytes) -> int:
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Inloop-Timestamp": ts,
            "X-Inloop-Signature": sign(SECRET, ts, body),
        }
        async with self.http.post(f"{self.webhook}/v1/mentions", data=body, headers=headers) as r:
            await r.read()
        await self.chat.app.settle()
        return r.status


def mention(n: int) -> dict[str, Any]:
    return {
        "source": "twitter",
        "external_id": f"tw-{n}",
        "author": {"name": "Giulia Neri", "handle": "@giulianeri"},
        "text": "Ordine arrivato con la scatola rotta",
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def watched(database_url: str) -> AsyncIterator[Watched]:
    chat = Chat(database_url, INTAKE_SECRET=SECRET, INTAKE_PORT="0", METRICS_PORT="0")
    await chat.start()
    await chat.say("boss", "team add support")
    try:
        async with aiohttp.ClientSession() as http:
            yield Watched(chat, http)
    finally:
        await chat.stop()


async def test_counters_move_with_a_claim_a_webhook_202_and_400_and_a_delivery(
    watched: Watched,
) -> None:
    before = await watched.scrape()

    assert await watched.post(json.dumps(mention(1)).encode()) == 202
    assert await watched.post(b'{"source": ') == 400
    await watched.chat.say("ann", "claim 1")
    after = await watched.scrape()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("inloop_webhook_requests_total", status="202") == 1
    assert moved("inloop_webhook_requests_total", status="400") == 1
    assert moved("inloop_events_handled_total", kind="MentionReceived", result="handled") == 1
    assert moved("inloop_events_handled_total", kind="Command", result="handled") == 1
    assert moved("inloop_command_seconds_count", command="claim") == 1
    assert moved("inloop_command_seconds_sum", command="claim") > 0
    # the card, and the claim's private answer and card update
    assert moved("inloop_outbox_deliveries_total", platform="console", result="sent") >= 3
    assert value(after, "inloop_outbox_depth", platform="console") == 0
    # the same registry on the webhook's port
    on_webhook = await watched.scrape(watched.webhook)
    assert value(on_webhook, "inloop_webhook_requests_total", status="202") == 1


async def test_the_outbox_depth_and_age_are_read_at_each_scrape(watched: Watched) -> None:
    await watched.chat.app.outbox.stop()  # rows pile up, as when a platform is down

    await watched.chat.mention("Giulia", "first", settle=False)
    await watched.chat.mention("Marco", "second", settle=False)
    piled = await watched.scrape()

    assert value(piled, "inloop_outbox_depth", platform="console") == 2
    # written at the chat's clock (16 November): days old by the real one
    assert value(piled, "inloop_outbox_oldest_age_seconds", platform="console") > 86_400
    await watched.chat.app.outbox.deliver_due()
    drained = await watched.scrape()
    assert value(drained, "inloop_outbox_depth", platform="console") == 0
    assert value(drained, "inloop_outbox_oldest_age_seconds", platform="console") == 0


async def test_deliveries_count_429s_and_what_was_given_up(watched: Watched) -> None:
    chat = watched.chat
    chat.app.outbox._backoff = type(chat.app.outbox._backoff)(first=0.01)
    chat.platform.rate_limited = 1
    await chat.mention("Giulia", "rate-limited once")
    await eventually(lambda: len(chat.platform.in_channel(channel("support"))) == 1)
    chat.platform.gone.add("console:#support")
    await chat.mention("Marco", "to a channel that is gone")

    samples = await watched.scrape()

    assert value(samples, "inloop_outbox_deliveries_total", platform="console", result="429") == 1
    given_up = value(
        samples, "inloop_outbox_deliveries_total", platform="console", result="given_up"
    )
    assert given_up == 1


async def test_a_reminder_s_lag_is_how_late_after_the_block_s_start_it_was_queued(
    watched: Watched,
) -> None:
    chat = watched.chat
    await chat.say("ann", "commit daily 09:30 30m UTC")
    start = chat.clock().replace(hour=9, minute=30)

    await chat.at(start + timedelta(seconds=45))  # the scheduler was 45 s late
    samples = await watched.scrape()

    assert value(samples, "inloop_reminder_lag_seconds_count") == 1
    assert value(samples, "inloop_reminder_lag_seconds_sum") == 45
    assert value(samples, "inloop_reminder_lag_seconds_bucket", le="30.0") == 0
    assert value(samples, "inloop_reminder_lag_seconds_bucket", le="60.0") == 1


async def test_duties_report_whether_this_instance_holds_them(watched: Watched) -> None:
    metrics = watched.chat.app.metrics
    metrics.duty_held("matrix", True)
    metrics.duty_held("feeds", False)

    samples = await watched.scrape()

    assert value(samples, "inloop_duty_held", duty="matrix") == 1
    assert value(samples, "inloop_duty_held", duty="feeds") == 0


async def test_a_failing_feed_poll_is_counted(watched: Watched) -> None:
    # A feed whose host refuses: the poller backs off, and the scrape shows it failed.
    chat = watched.chat
    now = chat.clock()
    async with chat.app.db.transaction() as session:
        feed = Feed(url="http://127.0.0.1:9/feed.xml", since=now, next_poll_at=now, created_at=now)
        session.add(feed)
    await chat.app.feeds.poll_due()

    samples = await watched.scrape()

    assert value(samples, "inloop_feed_polls_total", result="failed") == 1


async def test_metrics_are_off_unless_a_port_is_set(database_url: str) -> None:
    chat = await Chat(database_url, INTAKE_SECRET=SECRET, INTAKE_PORT="0").start()
    try:
        assert chat.app.webhook is not None and chat.app.ops_server is None
        base = f"http://127.0.0.1:{chat.app.webhook.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/metrics") as resp:
                answer: Any = await resp.json()
                assert resp.status == 404, answer
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
    finally:
        await chat.stop()


async def test_the_metrics_port_serves_without_the_webhook(tmp_path: Path) -> None:
    chat = await Chat(f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}", METRICS_PORT="0").start()
    try:
        assert chat.app.webhook is None and chat.app.ops_server is not None
        base = f"http://127.0.0.1:{chat.app.ops_server.port}"
        await chat.say("boss", "help")
        async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as resp:
            body = await resp.text()
        assert 'inloop_events_handled_total{kind="Command",result="handled"} 1.0' in body
    finally:
        await chat.stop()
    # Each App counts in a registry of its own, never in prometheus-client's global one.
    assert prometheus_client.REGISTRY.get_sample_value("inloop_events_handled_total") is None
    names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("inloop") for name in names)


# -- the settings, from the command line ---------------------------------------------------


def test_check_config_says_whether_metrics_are_on_and_where(tmp_path: Path) -> None:
    off = inloop(tmp_path, "check-config")
    on = inloop(
        tmp_path,
        "check-config",
        env={"METRICS_PORT": "9464", "INTAKE_SECRET": SECRET, "METRICS_HOST": "0.0.0.0"},
    )

    assert "  metrics: off (METRICS_PORT is not set)" in off.stdout.splitlines()
    assert (
        "  metrics: on, http://0.0.0.0:9464/metrics and on the webhook's port"
        in on.stdout.splitlines()
    )


def test_a_metrics_port_that_is_taken_is_named_and_nothing_starts(tmp_path: Path) -> None:
    database = tmp_path / "inloop.db"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {"METRICS_PORT": str(port), "DATABASE_URL": f"sqlite+aiosqlite:///{database}"}

        done = inloop(tmp_path, "run", env=env)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"inloop: cannot listen on 127.0.0.1:{port} (METRICS_PORT): address already in use"
    ]
    assert not database.exists()


def test_a_metrics_port_that_is_not_a_port_is_a_configuration_error(tmp_path: Path) -> None:
    done = inloop(tmp_path, "check-config", env={"METRICS_PORT": "prometheus"})

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "inloop: configuration error: METRICS_PORT: 'prometheus' is not a whole number"
    ]


async def test_a_scrape_and_a_probe_never_wait_for_a_writer(tmp_path: Path) -> None:
    """On SQLite a long write holds the one write lock: the scrape reads beside it."""
    chat = await Chat(f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}", METRICS_PORT="0").start()
    holding, release = asyncio.Event(), asyncio.Event()

    async def long_write() -> None:
        async with chat.app.db.transaction() as session:
            await session.execute(text("UPDATE person SET display_name = display_name"))
            holding.set()
            await release.wait()

    writer = asyncio.create_task(long_write())
    try:
        await holding.wait()
        assert chat.app.ops_server is not None
        base = f"http://127.0.0.1:{chat.app.ops_server.port}"
        async with asyncio.timeout(5), aiohttp.ClientSession() as http:
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                assert 'inloop_outbox_depth{platform="console"} 0.0' in await resp.text()
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
    finally:
        release.set()
        await writer
        await chat.stop()


async def test_slack_deliveries_count_a_server_error_retried_and_a_429(database_url: str) -> None:
    fake = await FakeSlack().start()
    slack = await SlackChat(database_url, fake, METRICS_PORT="0").start()
    try:
        await slack.setup_team()
        # The card's first post meets a 500, then 429s (the client waits out the first
        # itself), then goes through.
        fake.fail("chat.postMessage", "internal_error", status=500)
        fake.fail("chat.postMessage", "ratelimited", status=429, retry_after=0, times=2)
        await slack.customer_card("anyone there?", ts="100.1")
        assert slack.app.ops_server is not None
        base = f"http://127.0.0.1:{slack.app.ops_server.port}"
        async with aiohttp.ClientSession() as http:
            samples = await Watched.read(http, base)
    finally:
        await slack.stop()
        await fake.stop()

    def deliveries(result: str) -> float:
        return value(samples, "inloop_outbox_deliveries_total", platform="slack", result=result)

    assert deliveries("retried") == 1
    assert deliveries("429") >= 1
    assert deliveries("sent") >= 1
    assert deliveries("given_up") == 0
