"""A running Inloop on a recording platform, driven the way people use it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.app import App
from bot.config import load_settings
from bot.events import (
    Action,
    Author,
    ChannelId,
    Command,
    EventId,
    MentionReceived,
    Message,
    PersonId,
    Reaction,
)
from recording import RecordingPlatform

_ids = itertools.count(1)


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 16, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until `check()` holds (deliveries retried after a backoff), or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def person(name: str) -> PersonId:
    return PersonId(f"console:{name}")


def channel(name: str) -> ChannelId:
    return ChannelId(f"console:#{name}")


class Chat:
    """Inloop with one recording platform. People are `console:NAME`, channels `console:#NAME`."""

    def __init__(self, database_url: str, *, admins: str = "console:boss", **env: str):
        self.clock = FakeClock()
        self.platform = RecordingPlatform()
        settings = load_settings({"DATABASE_URL": database_url, "INLOOP_ADMINS": admins, **env})
        # Tests drive time themselves (`at`): no timer runs on the real clock.
        self.app = App(settings, {"console": self.platform}, clock=self.clock, run_timers=False)

    async def start(self) -> Chat:
        await self.app.start()
        return self

    async def stop(self) -> None:
        await self.app.stop()

    async def at(self, when: datetime) -> None:
        """The clock reaches `when`: whatever the scheduler has due then happens."""
        self.clock.now = when
        await self.app.scheduler.run_due(when)
        await self.app.settle()

    async def say(self, who: str, text: str, where: str = "support") -> str:
        """`who` types `!inloop TEXT` in #where; returns what they were told privately."""
        before = len(self.platform.private(person(who)))
        await self.app.handle(
            Command(EventId(f"cmd-{next(_ids)}"), person(who), channel(where), text)
        )
        await self.app.settle()
        told = self.platform.private(person(who))[before:]
        return "\n".join(told)

    async def press(self, who: str, action: str, value: str, where: str = "support") -> str:
        before = len(self.platform.private(person(who)))
        await self.app.handle(
            Action(EventId(f"act-{next(_ids)}"), person(who), channel(where), action, value)
        )
        await self.app.settle()
        return "\n".join(self.platform.private(person(who))[before:])

    async def post(
        self,
        who: str,
        text: str,
        where: str,
        *,
        ref: str,
        thread: str | None = None,
        files: tuple[str, ...] = (),
    ) -> None:
        """`who` writes a plain message (not a command) in #where, maybe with files."""
        event_id = EventId(f"msg-{next(_ids)}")
        await self.app.handle(
            Message(event_id, person(who), channel(where), text, ref, thread, files=files)
        )
        await self.app.settle()

    async def react(self, who: str, message_ref: str, emoji: str, where: str = "support") -> str:
        before = len(self.platform.private(person(who)))
        await self.app.handle(
            Reaction(
                EventId(f"react-{next(_ids)}"), person(who), channel(where), message_ref, emoji
            )
        )
        await self.app.settle()
        return "\n".join(self.platform.private(person(who))[before:])

    async def mention(
        self,
        customer: str,
        text: str,
        *,
        source: str = "twitter",
        external_id: str | None = None,
        key: str | None = None,
        tags: tuple[str, ...] = (),
        url: str = "",
        settle: bool = True,
    ) -> None:
        external_id = external_id or f"ext-{next(_ids)}"
        await self.app.handle(
            MentionReceived(
                source=source,
                external_id=external_id,
                conversation_key=key or external_id,
                author=Author(customer, f"@{customer.lower()}"),
                text=text,
                url=url,
                created_at=self.clock(),
                tags=tags,
            )
        )
        if settle:
            await self.app.settle()
