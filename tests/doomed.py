"""An Inloop on Slack in a process of its own, to be killed (SIGKILL), and the instance that
takes over after it: another instance on PostgreSQL, the next process on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fake_slack import FakeSlack
from harness import eventually
from slack_chat import SlackChat

ROOT = Path(__file__).parent.parent

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


@dataclass
class Crash:
    """A team on Slack, an instance of it to be killed (`doomed`, started by the test when
    what it finds at its start is ready), and the one that takes over (`take_over`)."""

    url: str
    fake: FakeSlack
    doomed: Doomed
    taker: SlackChat | None = None

    async def take_over(self) -> SlackChat:
        self.taker = await SlackChat(self.url, self.fake).start()
        return self.taker

    async def settled(self) -> None:
        """The taker has sent what is due, and a moment has passed for anything to come
        twice."""
        assert self.taker is not None
        await self.taker.app.settle()
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def crash(url: str, fake: FakeSlack) -> AsyncIterator[Crash]:
    """Team support set up; at the end, the doomed instance killed (if the test did not)
    and the taker stopped."""
    await team(url, fake)
    running = Crash(url, fake, Doomed(url, fake))
    try:
        yield running
    finally:
        await running.doomed.kill()
        if running.taker is not None:
            await running.taker.stop()
