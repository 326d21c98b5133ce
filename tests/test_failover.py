"""An instance killed (SIGKILL) mid-way: what it held is taken over, nothing lost, nothing twice.

The instance that dies is a process of its own, on Slack (Socket Mode, against the fake
Slack in this process): it is killed while a card's post is in flight (the fake Slack
took it and answers late), or while a command it acknowledged waits for a person's
profile (`users.info`, before anything is stored). What takes over is another instance
on PostgreSQL, or, on SQLite, the next process (a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from fake_slack import FakeSlack, event, message
from harness import eventually
from slack_chat import OWNER, SHARED, SlackChat
from storage.database import Database
from storage.models import OutboxRow

TESTS = Path(__file__).parent
ROOT = TESTS.parent
#: what issue 17 asks of a take-over after an instance died
FAILOVER = 10.0

_INSTANCE = """
import asyncio
from bot.app import App, build_platforms
from bot.config import load_settings

async def main() -> None:
    settings = load_settings({env!r})
    platforms = build_platforms(settings)
    platforms["slack"].pace_seconds = 0.001  # as SlackChat: the pacing kept, but small
    app = App(settings, platforms)
    await app.start()
    print(app.instance, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    served = await FakeSlack().start()
    yield served
    await served.stop()


class Doomed:
    """An Inloop on Slack in a process of its own, to be killed."""

    def __init__(self, url: str, fake: FakeSlack):
        self.env = {
            "DATABASE_URL": url,
            "INLOOP_ADMINS": "slack:UADMIN",
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_APP_TOKEN": fake.app_token,
            "SLACK_API_URL": fake.api_url,
        }
        self.fake = fake
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Doomed:
        connections = self.fake.connections
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _INSTANCE.format(env=self.env),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        await asyncio.wait_for(self.process.stdout.readline(), 60)
        await eventually(lambda: self.fake.connections > connections)
        return self

    async def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def team(url: str, fake: FakeSlack) -> None:
    """Team support in #OWNER, watching #SHARED (set up by an instance that then stops)."""
    setup = await SlackChat(url, fake).start()
    try:
        await setup.setup_team()
    finally:
        await setup.stop()


async def stored_cards(url: str, count: int) -> None:
    """Wait until `count` cards are written to the outbox (by the other process)."""
    db = Database(url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:
            async with db.read() as session:
                written = await session.scalar(
                    select(func.count()).where(col(OutboxRow.conversation_id).is_not(None))
                )
            if written == count:
                return
            assert loop.time() < deadline, f"{written} cards written, not {count}"
            await asyncio.sleep(0.05)
    finally:
        await db.dispose()


def card_numbers(fake: FakeSlack) -> list[str]:
    """The cards posted in the owner channel, by number, in the order posted."""
    return [p.text.split(" ")[0] for p in fake.in_channel(OWNER)]


async def test_cards_an_instance_was_posting_when_killed_are_posted_once_within_ten_seconds(
    database_url: str, fake: FakeSlack
) -> None:
    await team(database_url, fake)
    doomed = await Doomed(database_url, fake).start()
    taker: SlackChat | None = None
    try:
        # The first card's post reaches Slack, which keeps it; its answer never comes back.
        in_flight = fake.answer_slowly("chat.postMessage", 120)
        for n in range(1, 6):
            body = message("UCUST", SHARED, f"customer message {n}", f"1700000000.00000{n}")
            await fake.acked(await fake.push("events_api", event(body, f"EvCard{n}")))
        await asyncio.wait_for(in_flight.wait(), 20)
        await stored_cards(database_url, 5)  # every card waits in its outbox
        await doomed.kill()
        loop = asyncio.get_running_loop()
        killed_at = loop.time()

        # Another instance (PostgreSQL), or the next process (SQLite: a restart).
        taker = await SlackChat(database_url, fake).start()
        await eventually(lambda: len(fake.in_channel(OWNER)) >= 5, within=15)
        took = loop.time() - killed_at
        await taker.app.settle()
        await asyncio.sleep(0.5)  # time for a card to come twice

        assert took < FAILOVER, f"the cards came {took:.1f} s after the kill"
        assert card_numbers(fake) == ["#1", "#2", "#3", "#4", "#5"]
    finally:
        await doomed.kill()
        if taker is not None:
            await taker.stop()


async def test_a_restart_on_sqlite_posts_what_its_predecessor_was_posting_at_once(
    tmp_path: Path, fake: FakeSlack
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}"
    await team(url, fake)
    doomed = await Doomed(url, fake).start()
    restarted: SlackChat | None = None
    try:
        in_flight = fake.answer_slowly("chat.postMessage", 120)
        body = message("UCUST", SHARED, "la scatola era rotta", "1700000000.000001")
        await fake.acked(await fake.push("events_api", event(body, "EvCrash")))
        await asyncio.wait_for(in_flight.wait(), 20)
        await doomed.kill()

        restarted = await SlackChat(url, fake).start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        # the post that got through is found (its key in the message's metadata), not
        # posted again; and the restart does not wait out the dead process's lease
        await eventually(lambda: fake.count("conversations.history") >= 1, within=5)
        assert loop.time() - started < 2.0
        await restarted.app.settle()
        body = message("UCUST", SHARED, "e il rimborso?", "1700000000.000002")
        await restarted.send_event(event(body, "EvAfter")["event"], "EvAfter")
        await eventually(lambda: len(fake.in_channel(OWNER)) >= 2)

        assert card_numbers(fake) == ["#1", "#2"]
    finally:
        await doomed.kill()
        if restarted is not None:
            await restarted.stop()
