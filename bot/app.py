"""The composition root: builds config, database, platforms, router, outbox; starts and stops.

The only module of `bot/` that imports `handlers/`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping, Sequence
from typing import Protocol

from bot.clock import Clock, utc_now
from bot.config import Settings
from bot.events import Event, PersonId, platform_of
from bot.intake.feeds import FeedPoller
from bot.intake.webhook import Webhook
from bot.outbox import OutboxWorker
from bot.people import Directory
from bot.platform import EventSink, PersonInfo, Platform
from bot.platforms.console.adapter import ConsolePlatform
from bot.platforms.matrix.adapter import MatrixPlatform, matrix_settings
from bot.router import Router
from handlers import admin, claims, feeds, help, queue, routing, watch
from storage.database import Database
from storage.migrate import upgrade

log = logging.getLogger("inloop")


class IntakeSource(Protocol):
    """A door for customer mentions from outside the chat (webhook, feed poller)."""

    async def start(self, sink: EventSink) -> None: ...

    async def stop(self) -> None: ...


def report_error(exc: BaseException, where: str) -> None:
    """The one error hook: every handler, job and delivery failure ends up here."""
    log.error("%s: %s", where, exc, exc_info=exc)


class App:
    """Inloop, assembled. Also the EventSink every adapter hands its events to."""

    def __init__(
        self,
        settings: Settings,
        platforms: Mapping[str, Platform],
        *,
        clock: Clock = utc_now,
        db: Database | None = None,
    ):
        self.settings = settings
        self.platforms = dict(platforms)
        self.clock = clock
        # One Database per process: on SQLite its lock is what keeps two writers from
        # waiting on each other inside the event loop (see build_platforms).
        self.db = db or Database(settings.database_url)
        self.directory = Directory(
            lookup=self._lookup,
            admins=frozenset(settings.admins),
            default_language=settings.language,
        )
        # Delivery retries run on real time even when tests freeze the domain clock.
        self.outbox = OutboxWorker(
            self.db,
            self.platforms,
            utc_now,
            report_error,
            max_attempts=settings.outbox_max_attempts,
            # each platform's documented rate per channel (Slack: about one a second)
            pacing={name: p.pace_seconds for name, p in self.platforms.items()},
        )
        self.router = Router(
            self.db,
            self.directory,
            clock,
            report_error,
            channel_language=settings.language,
            prefixes={name: p.command_prefix for name, p in self.platforms.items()},
            after_commit=self.outbox.kick,
        )
        for module in (help, claims, queue, admin, routing, watch):
            module.register(self.router)
        feeds.register(self.router, settings.feed_poll_minutes)
        self.feeds = FeedPoller(
            self.db, clock, report_error, interval_minutes=settings.feed_poll_minutes
        )
        self.intake: list[IntakeSource] = [self.feeds]
        self.webhook: Webhook | None = None
        if settings.intake_secret:
            self.webhook = Webhook(
                self.db,
                settings.intake_secret,
                utc_now,  # signatures are checked against real time, always
                report_error,
                host=settings.intake_host,
                port=settings.intake_port,
            )
            self.intake.append(self.webhook)

    async def start(self) -> None:
        await upgrade(self.db)
        async with self.db.transaction() as session:
            await self.directory.promote_admins(session, self.clock())
        self.outbox.start()
        for platform in self.platforms.values():
            await platform.start(self)
        for source in self.intake:
            await source.start(self)
        log.info("Inloop started: %s", ", ".join(self.platforms))

    async def stop(self) -> None:
        for source in self.intake:
            await source.stop()
        for platform in self.platforms.values():
            await platform.stop()
        await self.outbox.stop()
        await self.db.dispose()

    # -- EventSink -----------------------------------------------------------------------

    async def handle(self, event: Event) -> bool:
        return await self.router.handle(event)

    async def handle_many(self, events: Sequence[Event]) -> list[bool]:
        return await self.router.handle_many(events)

    async def settle(self) -> None:
        await self.outbox.settle()

    async def _lookup(self, person: PersonId) -> PersonInfo:
        platform = self.platforms.get(platform_of(person))
        if platform is None:
            # Someone on a platform that is not running (e.g. named in INLOOP_ADMINS).
            return PersonInfo(display_name=person.partition(":")[2], is_staff=False)
        return await platform.user_info(person)


def build_platforms(settings: Settings, db: Database) -> dict[str, Platform]:
    """The chat platforms the settings ask for; the console when they ask for none.

    `db` is the App's own: an adapter that keeps state there (Matrix: its session and
    sync token) shares its write lock instead of blocking SQLite under the App.
    """
    platforms: dict[str, Platform] = {}
    # Slack and Matrix adapters are added here when their settings are present.
    if settings.matrix_homeserver and settings.matrix_user_id:
        platforms["matrix"] = MatrixPlatform(matrix_settings(settings), db, utc_now)
    if not platforms:
        console_admin = next((a for a in settings.admins if platform_of(a) == "console"), None)
        persona = console_admin.partition(":")[2] if console_admin else "you"
        platforms["console"] = ConsolePlatform(utc_now, persona=persona)
    return platforms


async def run(settings: Settings) -> None:
    """`inloop run`: start what the settings ask for and run until stopped."""
    db = Database(settings.database_url)
    platforms = build_platforms(settings, db)
    stopped = asyncio.Event()
    console = platforms.get("console")
    if isinstance(console, ConsolePlatform):
        # The console shares the terminal with the log: keep the log to what matters.
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
        console.finished = stopped
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    app = App(settings, platforms, db=db)
    await app.start()
    try:
        await stopped.wait()
    finally:
        await app.stop()
