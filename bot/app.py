"""The composition root: builds config, database, platforms, router, outbox; starts and stops.

The only module of `bot/` that imports `handlers/`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock, utc_now
from bot.config import Settings
from bot.context import Context
from bot.duties import Duties, LeaseTiming, instance_id, session_settings, status_lines
from bot.events import ChannelId, Event, PersonId, local_part, platform_of
from bot.health import Health, OpsRoutes, OpsServer
from bot.inbox import Inbox
from bot.intake.feeds import FeedPoller
from bot.intake.webhook import Webhook
from bot.messages import texts_for
from bot.metrics import Metrics
from bot.outbox import OutboxWorker, OutboxWriter
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
    customer_data,
    customers,
    digest,
    escalation,
    feeds,
    forms,
    help,
    home,
    queue,
    routing,
    watch,
    weeks,
)
from storage import conversations, teams
from storage import customer_data as customer_data_store
from storage import customers as customer_store
from storage.database import Database
from storage.migrate import upgrade

log = logging.getLogger("inloop")

#: seconds a stop may take (platforms closed, the outbox's sends ended, the database
#: let go) before Inloop stops without waiting for what is left
STOP_GRACE = 4.0
#: seconds after a signal by which the process is gone, whatever holds it up (a thread
#: in a DNS lookup, a library that swallowed the cancellation)
SIGNAL_DEADLINE = 8.0
#: seconds the database may take to answer at a start (a `SELECT 1` while the migrations
#: and the admins' promotion run): one that takes the connection and then says nothing
#: stops the start, said in one line, where it held it for good
DATABASE_ANSWERS_WITHIN = 10.0
#: the duties that run in one instance at a time (bot/duties.py says why each)
TIMERS, FEEDS = "timers", "feeds"
T = TypeVar("T")
#: platforms that are a duty: Matrix syncs as one device, whose sync token is one
EXCLUSIVE_PLATFORMS = frozenset({"matrix"})


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
        lease_timing: LeaseTiming | None = None,
    ):
        self.settings = settings
        #: False: nothing runs on real time, the caller drives `scheduler.run_due` (tests)
        self.run_timers = run_timers
        self.platforms = dict(platforms)
        self.clock = clock
        # One Database per process: on SQLite its lock is what keeps two writers from
        # waiting on each other inside the event loop (see build_platforms).
        self.db = db or Database(settings.database_url)
        self.instance = instance_id()
        # The leases on a small pool of their own: a busy main pool must not hold up a
        # renewal. On SQLite there is one instance, and every duty runs in it.
        timing = lease_timing or LeaseTiming()
        self.duties = Duties(
            None
            if self.db.is_sqlite
            else Database(
                settings.database_url, pool_size=1, server_settings=session_settings(timing)
            ),
            self.instance,
            report_error,
            timing=timing,
        )
        #: what the platforms acknowledged and did not handle yet, kept through a crash
        self.inbox = Inbox(self.db, self.duties.liveness, utc_now, report_error)
        self.directory = Directory(
            lookup=self._lookup,
            admins=frozenset(settings.admins),
            default_language=settings.language,
        )
        # What operators watch: counted always, served when METRICS_PORT is set.
        self.metrics = Metrics()
        self.metrics.watch_outbox(self.db, list(self.platforms))
        for duty in duty_names(settings):
            self.metrics.watch_duty(duty, partial(self._holds, duty))
        # Delivery retries run on real time even when tests freeze the domain clock.
        self.outbox = OutboxWorker(
            self.db,
            self.platforms,
            utc_now,
            report_error,
            max_attempts=settings.outbox_max_attempts,
            # each platform's documented rate per channel (Slack: about one a second)
            pacing={name: p.pace_seconds for name, p in self.platforms.items()},
            metrics=self.metrics,
            gave_up=self.handle,
            burst_view=self._burst_card,
            # rows are leased in this instance's name, free once it is no longer alive
            liveness=self.duties.liveness,
            delivers=self._runs_here,
        )
        self.router = Router(
            self.db,
            self.directory,
            clock,
            report_error,
            channel_language=settings.language,
            channel_timezone=settings.default_tz,
            prefixes={name: p.command_prefix for name, p in self.platforms.items()},
            outbox=self.outbox,
            metrics=self.metrics,
        )
        for module in (help, claims, queue, home, admin, advice):
            module.register(self.router)
        relationships = customers.Relationships(
            timedelta(minutes=settings.relationship_hold_minutes), settings.default_tz
        )
        routing.register(self.router, relationships)
        watch.register(self.router, relationships)
        customers.register(self.router, relationships)
        customer_data.register(self.router, customer_data.Retention(settings.retention_days))
        digest.register(self.router, settings.digest_tz, settings.claim_target_minutes)
        advice.register_sla(self.router, timedelta(hours=settings.advice_sla_hours))
        targets = escalation.Defaults(settings.claim_target_minutes, settings.reply_target_minutes)
        escalation.register(self.router, targets)
        admin.register_targets(self.router, targets)
        # On PostgreSQL only one instance runs the timers (the `timers` duty): a shorter
        # poll picks up soon what the others planned (a snooze, a new commitment).
        poll = 30.0 if self.db.is_sqlite else 5.0
        self.scheduler = Scheduler(self.db, clock, report_error, poll_seconds=poll)
        commitments.register(
            self.router, self.scheduler, settings.default_tz, self.metrics.reminder_queued
        )
        # Monday 09:00 in DIGEST_TZ; a restart later that morning still posts it, once.
        monday_nine = weekly("1", "09:00", settings.digest_tz)
        self.scheduler.every(digest.WEEKLY, monday_nine.next_after, catch_up=timedelta(hours=12))
        self.scheduler.every(escalation.SWEEP, escalation.minute_after)
        self.scheduler.every(digest.CLOSE_DAYS, escalation.minute_after)
        # A new holder of the timers (or a restart) sweeps at once for the quarter it missed.
        self.scheduler.every(
            advice.SLA_SWEEP, advice.quarter_hour_after, catch_up=timedelta(minutes=15)
        )
        self.scheduler.every(customers.HOLD_SWEEP, customers.minute_after)
        # daily; a restart later that day still runs it, once (the tick's id is the day)
        self.scheduler.every(
            customer_data.RETENTION_SWEEP, customer_data.daily_after, catch_up=timedelta(hours=23)
        )
        self.feeds = FeedPoller(
            self.db,
            clock,
            report_error,
            interval_minutes=settings.feed_poll_minutes,
            metrics=self.metrics,
        )
        feeds.register(self.router, settings.feed_poll_minutes, self.feeds.check)
        self.intake: list[IntakeSource] = [self.feeds]
        # /healthz and /readyz on the webhook's port; /metrics there and on its own
        # port when METRICS_PORT is set (README, "Watching Inloop").
        metrics_on = settings.metrics_port is not None
        # A platform that is a duty held by another instance is not this one's to connect.
        health = Health(self.db, self.platforms, runs_here=self._runs_here)
        self.ops = OpsRoutes(health, self.metrics if metrics_on else None)
        self.ops_server: OpsServer | None = None
        if settings.metrics_port is not None:
            self.ops_server = OpsServer(
                self.ops, host=settings.metrics_host, port=settings.metrics_port
            )
        self.webhook: Webhook | None = None
        if settings.intake_secret:
            self.webhook = Webhook(
                self.db,
                settings.intake_secret,
                utc_now,  # signatures are checked against real time, always
                report_error,
                host=settings.intake_host,
                port=settings.intake_port,
                metrics=self.metrics,
                ops=self.ops,
            )
            self.intake.append(self.webhook)

    async def start(self) -> None:
        """Raises NoAnswer when the database stops answering (DATABASE_ANSWERS_WITHIN)."""
        await self.db.while_answering(upgrade(self.db), DATABASE_ANSWERS_WITHIN)
        if self.ops_server is not None:
            # First: /readyz says "not ready" (and why) while the rest starts.
            await self.ops_server.start()
        await self.db.while_answering(self._promote_admins(), DATABASE_ANSWERS_WITHIN)
        self.outbox.start()
        # Every duty claimed at once, each started on its own: a slow Matrix start
        # delays neither the timers nor the feeds (here or at a take-over).
        self.duties.add(
            TIMERS,
            partial(self.scheduler.start, self, run_timers=self.run_timers),
            self.scheduler.stop,
        )
        for name, platform in self.platforms.items():
            if name in EXCLUSIVE_PLATFORMS:
                self.duties.add(name, partial(self._start_duty, platform), platform.stop)
        self.duties.add(FEEDS, partial(self.feeds.start, self), self.feeds.stop)
        self.duties.start()
        # Before the platforms: what fell during a downtime is recorded (or sent late)
        # before anyone can type a command about it.
        await self.duties.started([TIMERS])
        for name, platform in self.platforms.items():
            if name not in EXCLUSIVE_PLATFORMS:
                await platform.start(self)
        for source in self.intake:
            if source is not self.feeds:
                await source.start(self)
        await self.duties.started()
        log.info("Inloop started: %s (instance %s)", ", ".join(self.platforms), self.instance)

    async def serve(self, until: asyncio.Event) -> None:
        """Start, run until `until` is set, stop. Cancelled at any moment (a signal), it
        stops what had started; a start that fails stops the others cleanly too."""
        try:
            await self.start()
            keep_from_collector()
            await until.wait()
        finally:
            await self.stop()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop every part, in order, within about `grace` seconds.

        A part that does not stop in time (a slow client on the webhook, a platform
        that does not answer) is left behind, said in a log line, and the next one
        is stopped all the same: nothing uncommitted is worth a process that will
        not exit, and what was committed is in the database already.
        """
        parts: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            # The timers, Matrix and the feeds: stopped, and their leases given up. Then
            # every source and platform, a duty's too (held or not: the feed poller's
            # client may have served `feed add`); a second stop does nothing.
            ("the duties", self.duties.stop),
            *((type(source).__name__, source.stop) for source in self.intake),
            *((name, platform.stop) for name, platform in self.platforms.items()),
            ("the outbox", self.outbox.stop),
            *([("the metrics server", self.ops_server.stop)] if self.ops_server else []),
            ("the database", self.db.dispose),
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        for name, stop in parts:
            try:
                # each part gets at least a moment, even when those before used it all
                async with asyncio.timeout_at(max(deadline, loop.time() + 0.25)):
                    await stop()
            except TimeoutError:
                log.warning("%s did not stop within %g s; stopping without it", name, grace)
            except Exception as exc:
                report_error(exc, f"stopping {name}")

    # -- EventSink -----------------------------------------------------------------------

    async def handle(self, event: Event) -> bool:
        return await self.router.handle(event)

    async def handle_many(self, events: Sequence[Event]) -> list[bool]:
        return await self.router.handle_many(events)

    async def settle(self) -> None:
        await self.outbox.settle()

    async def _promote_admins(self) -> None:
        async with self.db.transaction() as session:
            await self.directory.promote_admins(session, self.clock())

    def _holds(self, duty: str) -> bool:
        return duty in self.duties.held

    async def _start_duty(self, platform: Platform) -> None:
        await platform.start(self)
        self.outbox.kick()  # what waited for it (another instance's, maybe) goes now

    def _runs_here(self, platform: str) -> bool:
        return platform not in EXCLUSIVE_PLATFORMS or self._holds(platform)

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
            # Nobody can vouch for them: a command naming them is refused, while a
            # sender or an INLOOP_ADMINS entry still gets a row (Directory.ensure).
            raise LookupError(f"{platform_of(person)} is not running")
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


def duty_names(settings: Settings) -> list[str]:
    """The duties `inloop run` takes with these settings, in the order it starts them."""
    matrix = bool(settings.matrix_homeserver and settings.matrix_user_id)
    return [TIMERS, *(["matrix"] if matrix else []), FEEDS]


def keep_from_collector() -> None:
    """Once the process has started: what is alive now (modules, the engine and its
    compiled statements, the handlers, the platforms' clients) lives as long as the
    process, and every full collection of the garbage collector walked all of it. Frozen
    (`gc.freeze`), it is left out of them; what is made later is collected as before.
    10–20 % of the bot's CPU per event under load (`bench.slack --throughput`, which
    calls this after its start as `inloop run` does). Only for a process that runs one
    App: tests start many in one process, and what is frozen is never collected."""
    gc.collect()
    gc.freeze()


async def on_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """A one-shot command's `work` (`inloop status`, `db upgrade`, `digest`, `customer`)
    on the settings' database, which is let go after it. Given up (NoAnswer) once the
    database stops answering (DATABASE_ANSWERS_WITHIN), as `inloop run`'s start is: a
    server that takes the connection and says nothing held it for asyncpg's minute."""
    db = Database(settings.database_url)
    try:
        return await db.while_answering(work(db), DATABASE_ANSWERS_WITHIN)
    finally:
        await db.dispose()


async def status(settings: Settings) -> list[str]:
    """`inloop status`: which instance runs each duty, and the outbox's backlog."""
    return await on_database(settings, lambda db: status_lines(db, duty_names(settings), utc_now()))


async def run(settings: Settings) -> None:
    """`inloop run`: start what the settings ask for and run until stopped.

    SIGTERM or SIGINT stops it at any moment: while a platform is still starting
    (retrying a homeserver that answers 500), while it runs, while the outbox is
    sending. A second signal stops it at once, and after SIGNAL_DEADLINE seconds
    nothing holds it up any more. Committed work is in the database either way.
    """
    db = Database(settings.database_url)
    platforms = build_platforms(settings, db)
    console = platforms.get("console")
    # The console ends on its own (end of input, /quit); servers run until a signal.
    finished = console.finished if isinstance(console, ConsolePlatform) else asyncio.Event()
    if console is not None:
        # The console shares the terminal with the log: keep the log to what matters.
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    app = App(settings, platforms, db=db)
    # The whole life in one task, so that a signal can cancel whatever it is waiting
    # for: a start's retries as much as the wait for the end.
    life = asyncio.create_task(app.serve(finished), name="inloop")
    deadline = threading.Timer(SIGNAL_DEADLINE, _exit_now)
    deadline.daemon = True

    def on_signal(signum: signal.Signals) -> None:
        if deadline.is_alive():  # the second one: no more waiting for a clean stop
            log.warning("%s again: stopping now", signum.name)
        else:
            log.info("%s: stopping", signum.name)
            deadline.start()
        finished.set()  # in case the start is past caring for the cancellation
        life.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await life
    except asyncio.CancelledError:
        if not deadline.is_alive():  # cancelled by something else than our signal
            raise
    finally:
        # The deadline, once started, is left to run: the process may still be held up
        # after this returns (the event loop's shutdown waits for its threads).
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _exit_now() -> None:
    """The last resort of a signal: the process goes, whatever is still running.

    Only what was not committed is lost, as it would be on a crash: SQLite and
    PostgreSQL keep every committed transaction.
    """
    log.error("Inloop did not stop within %.0f s of the signal; exiting now", SIGNAL_DEADLINE)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


class DigestArgumentError(ValueError):
    """`inloop digest --week/--team` naming what is not there. A ValueError, which the
    CLI prints after `inloop: `: worded like its other errors, naming the argument."""

    def __init__(self, option: str, problem: str):
        super().__init__(f"argument {option}: {problem}")
        self.option = option
        self.problem = problem


async def export_digest(settings: Settings, week: str, team: str, form: str) -> tuple[str, bytes]:
    """`inloop digest`: the week's figures as text, CSV or JSON, and the chart's PNG.

    Raises DigestArgumentError when the week or the team is wrong.
    """
    texts = texts_for(settings.language)

    async def export(db: Database) -> tuple[str, bytes]:
        await upgrade(db)
        now = utc_now()
        parsed = weeks.parse_week(week, now, settings.digest_tz)
        if parsed is None:
            raise DigestArgumentError("--week", texts.digest_cli_bad_week.format(value=week))
        async with db.read() as session:
            figures = await digest.build(
                session, parsed, settings.digest_tz, team, settings.claim_target_minutes, now
            )
            if figures is None:
                known = ", ".join(sorted(t.name for t in await teams.every(session))) or "—"
                problem = texts.digest_cli_unknown_team.format(team=team, teams=known)
                raise DigestArgumentError("--team", problem)
        body = {
            "text": lambda: digest.as_text(figures, texts),
            "csv": lambda: digest.as_csv(figures),
            "json": lambda: digest.as_json(figures),
        }[form]()
        return body, digest.chart(figures, texts).png

    return await on_database(settings, export)


class CustomerArgumentError(ValueError):
    """`inloop customer … REF` naming no customer (worded like the CLI's other errors)."""


async def _customer_of(session: AsyncSession, ref: str, language: str) -> int:
    """The customer a REF names: `#N` (or N), the customer of conversation N, or
    `source:handle`."""
    texts = texts_for(language)
    written = ref.strip()
    if written.lstrip("#").isdigit():
        number = int(written.lstrip("#"))
        conversation = await conversations.get(session, number)
        if conversation is None:
            raise CustomerArgumentError(texts.no_such_conversation.format(number=number))
        if conversation.erased_at is not None:
            raise CustomerArgumentError(texts.customer_erased_ref.format(number=number))
        if conversation.customer_id is None:
            raise CustomerArgumentError(texts.customer_unknown.format(ref=written))
        return conversation.customer_id
    source, _, handle = written.partition(":")
    if not source.strip() or not handle.strip():
        raise CustomerArgumentError(texts.customer_bad_ref.format(ref=written))
    identity = await customer_store.identity(session, source.strip(), handle.strip())
    if identity is None:
        raise CustomerArgumentError(texts.customer_unknown.format(ref=written))
    return identity.customer_id


async def export_customer(settings: Settings, ref: str) -> bytes:
    """`inloop customer export REF`: what `customer export` sends, as the file's bytes.

    Raises CustomerArgumentError when REF names no customer.
    """

    async def export(db: Database) -> bytes:
        await upgrade(db)
        async with db.transaction() as session:
            customer = await _customer_of(session, ref, settings.language)
            data = await customer_data_store.export(session, customer, utc_now())
            conversations.audit(
                session,
                None,
                None,
                customer_data.EXPORTED,
                utc_now(),
                detail=f"customer {customer} (command line)",
            )
        return customer_data_store.as_json(data)

    return await on_database(settings, export)


async def erase_customer(settings: Settings, ref: str, *, confirm: bool) -> str:
    """`inloop customer erase REF [--confirm]`: without `confirm`, what would be erased;
    with it, erased the way `customer erase REF confirm` erases (the card edits wait
    in the outbox for the running Inloop to deliver). What to print.

    Raises CustomerArgumentError when REF names no customer.
    """
    texts = texts_for(settings.language)

    async def erase(db: Database) -> str:
        await upgrade(db)
        async with db.transaction() as session:
            customer = await _customer_of(session, ref, settings.language)
            if not confirm:
                held = await customer_data_store.held(session, customer)
                return "\n".join(
                    [
                        texts.customer_erase_preview.format(
                            customer=ref,
                            identities=", ".join(held.identities) or "—",
                            conversations=held.conversations,
                            mentions=held.mentions,
                            advice=held.advice,
                        ),
                        texts.customer_erase_how.format(
                            command=f"inloop customer erase {ref} --confirm"
                        ),
                    ]
                )
            now = utc_now()
            ctx = Context(
                session=session,
                out=OutboxWriter(session, now),
                directory=Directory(_nobody, frozenset(settings.admins), settings.language),
                now=now,
                channel_language=settings.language,
                channel_timezone=settings.default_tz,
            )
            done = await customer_data.erase_customer(ctx, customer)
        return texts.customer_erased.format(
            identities=done.identities,
            conversations=done.conversations,
            mentions=done.mentions,
        )

    return await on_database(settings, erase)


async def _nobody(person: PersonId) -> PersonInfo:
    """The command line asks no platform about anyone."""
    raise LookupError(person)
