"""The composition root: builds config, database, platforms, router, outbox; starts and stops.

The only module of `bot/` that imports `handlers/`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from bot.clock import Clock, utc_now
from bot.config import Settings
from bot.events import ChannelId, Event, PersonId, local_part, platform_of
from bot.intake.feeds import FeedPoller
from bot.intake.webhook import Webhook
from bot.messages import texts_for
from bot.outbox import OutboxWorker
from bot.people import Directory
from bot.platform import EventSink, PersonInfo, Platform
from bot.platforms.console.adapter import ConsolePlatform
from bot.recurrence import weekly
from bot.router import Router
from bot.scheduler import Scheduler
from bot.views import View
from handlers import (
    admin,
    advice,
    card,
    claims,
    commitments,
    digest,
    feeds,
    forms,
    help,
    home,
    queue,
    routing,
    watch,
    weeks,
)
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
        run_timers: bool = True,
        db: Database | None = None,
    ):
        self.settings = settings
        #: False: nothing runs on real time, the caller drives `scheduler.run_due` (tests)
        self.run_timers = run_timers
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
            gave_up=self.handle,
            burst_view=self._burst_card,
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
        for module in (help, claims, queue, home, admin, routing, watch, advice):
            module.register(self.router)
        feeds.register(self.router, settings.feed_poll_minutes)
        digest.register(self.router, settings.digest_tz, settings.claim_target_minutes)
        advice.register_sla(self.router, timedelta(hours=settings.advice_sla_hours))
        self.scheduler = Scheduler(self.db, clock, report_error)
        commitments.register(self.router, self.scheduler, settings.default_tz)
        # Monday 09:00 in DIGEST_TZ; a restart later that morning still posts it, once.
        monday_nine = weekly("1", "09:00", settings.digest_tz)
        self.scheduler.every(digest.WEEKLY, monday_nine.next_after, catch_up=timedelta(hours=12))
        self.scheduler.every(advice.SLA_SWEEP, advice.quarter_hour_after)
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
        # Before the platforms: what fell during a downtime is recorded (or sent late)
        # before anyone can type a command about it.
        await self.scheduler.start(self, run_timers=self.run_timers)
        for platform in self.platforms.values():
            await platform.start(self)
        for source in self.intake:
            await source.start(self)
        log.info("Inloop started: %s", ", ".join(self.platforms))

    async def stop(self) -> None:
        await self.scheduler.stop()
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

    async def _burst_card(self, channel: ChannelId, since: datetime) -> View:
        """A channel's burst card, in its handler's words (the outbox decides when)."""
        platform = self.platforms.get(platform_of(channel))
        prefix = platform.command_prefix if platform is not None else ""
        texts = texts_for(self.settings.language)
        async with self.db.read() as session:
            return await card.burst(session, texts, prefix, channel, since, self.clock())

    async def _lookup(self, person: PersonId) -> PersonInfo:
        platform = self.platforms.get(platform_of(person))
        if platform is None:
            # Someone on a platform that is not running (e.g. named in INLOOP_ADMINS).
            return PersonInfo(display_name=local_part(person), is_staff=False)
        return await platform.user_info(person)


def build_platforms(settings: Settings, db: Database | None = None) -> dict[str, Platform]:
    """The chat platforms the settings ask for; the console when they ask for none.

    `db` is the App's own: an adapter that keeps state there (Matrix: its session and
    sync token) shares its write lock instead of blocking SQLite under the App.
    """
    # Each adapter is imported only when it is configured: slack-bolt and matrix-nio
    # (with its crypto) are tens of MB a console or one-platform bot does not need.
    platforms: dict[str, Platform] = {}
    if settings.slack_bot_token:
        from bot.platforms.slack.adapter import SlackPlatform

        platforms["slack"] = SlackPlatform(
            bot_token=settings.slack_bot_token,
            app_token=settings.slack_app_token,
            signing_secret=settings.slack_signing_secret,
            api_url=settings.slack_api_url,
            http_port=settings.slack_http_port,
            language=settings.language,
            forms=forms.forms(texts_for(settings.language)),
        )
    if settings.matrix_homeserver and settings.matrix_user_id:
        from bot.platforms.matrix.adapter import MatrixPlatform, matrix_settings

        platforms["matrix"] = MatrixPlatform(
            matrix_settings(settings), db or Database(settings.database_url), utc_now
        )
    if not platforms:
        console_admin = next((a for a in settings.admins if platform_of(a) == "console"), None)
        persona = local_part(console_admin) if console_admin else "you"
        platforms["console"] = ConsolePlatform(utc_now, persona=persona)
    return platforms


async def run(settings: Settings) -> None:
    """`inloop run`: start what the settings ask for and run until stopped."""
    db = Database(settings.database_url)
    platforms = build_platforms(settings, db)
    console = platforms.get("console")
    # The console ends on its own (end of input, /quit); servers run until a signal.
    stopped = console.finished if isinstance(console, ConsolePlatform) else asyncio.Event()
    if console is not None:
        # The console shares the terminal with the log: keep the log to what matters.
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    app = App(settings, platforms, db=db)
    try:
        await app.start()
    except BaseException:
        await app.stop()  # a platform refused to start: let the others go cleanly
        raise
    try:
        await stopped.wait()
    finally:
        await app.stop()


async def export_digest(settings: Settings, week: str, team: str, form: str) -> tuple[str, bytes]:
    """`inloop digest`: the week's figures as text, CSV or JSON, and the chart's PNG.

    Raises ValueError with the sentence to show when the week or the team is wrong.
    """
    texts = texts_for(settings.language)
    db = Database(settings.database_url)
    try:
        await upgrade(db)
        now = utc_now()
        parsed = weeks.parse_week(week, now, settings.digest_tz)
        if parsed is None:
            raise ValueError(texts.digest_bad_week.format(value=week))
        async with db.read() as session:
            figures = await digest.build(
                session, parsed, settings.digest_tz, team, settings.claim_target_minutes, now
            )
        if figures is None:
            raise ValueError(texts.digest_unknown_team.format(team=team))
        body = {
            "text": lambda: digest.as_text(figures, texts),
            "csv": lambda: digest.as_csv(figures),
            "json": lambda: digest.as_json(figures),
        }[form]()
        return body, digest.chart(figures, texts).png
    finally:
        await db.dispose()
