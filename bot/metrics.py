"""What operators watch: Inloop's counters, in the Prometheus text format (`GET /metrics`).

One `Metrics` per App, built in bot/app.py and handed to the parts that count
(constructor injection). Its `CollectorRegistry` is its own, never
prometheus-client's process-wide default: two Apps in one process (the tests)
count apart, and nothing a library registers globally leaks into the scrape.

    inloop_events_handled_total{kind,result}       every event the router took: handled,
                                                   duplicate (a platform's retry), failed
    inloop_command_seconds{command}                a command or button, from its arrival
                                                   to its commit (histogram)
    inloop_outbox_depth{platform}                  rows waiting to be delivered, and the
    inloop_outbox_oldest_age_seconds{platform}     age of the oldest (read at scrape time)
    inloop_outbox_deliveries_total{platform,result}  sent, retried, 429, given_up
    inloop_webhook_requests_total{status}          the intake webhook's answers
    inloop_feed_polls_total{result}                ok, failed
    inloop_duty_held{duty}                         1 while this instance holds the duty
    inloop_reminder_lag_seconds                    a block's start to its reminder queued

Counting is always on (a few dictionary updates); serving it is what the settings
turn on (METRICS_PORT, see the README's "Watching Inloop").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlmodel import col

from bot.clock import Clock, utc_now
from bot.platform import DeliveryError
from storage.database import Database
from storage.models import OutboxRow, OutboxState

log = logging.getLogger(__name__)

#: seconds; a command is a transaction or two: most answer in milliseconds
COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: seconds; the scheduler looks every few seconds, a late start is minutes
REMINDER_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0)


class Metrics:
    def __init__(self, clock: Clock = utc_now):
        self.registry = CollectorRegistry()
        self._outbox = _OutboxDepth(clock)
        self.registry.register(self._outbox)
        self._events = Counter(
            "inloop_events_handled",
            "Events the router took, by kind (Command, Action, MentionReceived...) and result",
            ["kind", "result"],
            registry=self.registry,
        )
        self._command_seconds = Histogram(
            "inloop_command_seconds",
            "Seconds from a command's (or button's) arrival to its commit",
            ["command"],
            buckets=COMMAND_BUCKETS,
            registry=self.registry,
        )
        self._deliveries = Counter(
            "inloop_outbox_deliveries",
            "Outbox delivery attempts by platform and result (sent, retried, 429, given_up)",
            ["platform", "result"],
            registry=self.registry,
        )
        self._webhook = Counter(
            "inloop_webhook_requests",
            "Requests the intake webhook answered, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self._feed_polls = Counter(
            "inloop_feed_polls",
            "Feed polls by result (ok: fetched or unchanged; failed)",
            ["result"],
            registry=self.registry,
        )
        self._duties = Gauge(
            "inloop_duty_held",
            "1 while this instance holds the duty (Matrix sync, feed polling, ...), else 0",
            ["duty"],
            registry=self.registry,
        )
        self._reminder_lag = Histogram(
            "inloop_reminder_lag_seconds",
            "Seconds between a commitment block's start and its reminder being queued",
            buckets=REMINDER_BUCKETS,
            registry=self.registry,
        )

    # -- what the parts report ------------------------------------------------------------

    def event_handled(self, kind: str, result: str) -> None:
        """`result`: handled, duplicate, failed or deferred (`NotYet`: handled later)."""
        self._events.labels(kind, result).inc()

    def command_took(self, command: str, seconds: float) -> None:
        self._command_seconds.labels(command).observe(seconds)

    def delivered(self, platforms: Iterable[str]) -> None:
        """Rows the platforms took (one platform name per row)."""
        for platform in platforms:
            self._deliveries.labels(platform, "sent").inc()

    def delivery_failed(self, platform: str, error: DeliveryError, *, last_attempt: bool) -> None:
        """A failed attempt: a rate limit (429), retried later, or given up for good."""
        if error.retry_after is not None and not error.permanent and not error.uncertain:
            result = "429"
        elif error.permanent or last_attempt:
            result = "given_up"
        else:
            result = "retried"
        self._deliveries.labels(platform, result).inc()

    def webhook_answered(self, status: int) -> None:
        self._webhook.labels(str(status)).inc()

    def feed_polled(self, ok: bool) -> None:
        self._feed_polls.labels("ok" if ok else "failed").inc()

    def watch_duty(self, duty: str, holds: Callable[[], bool]) -> None:
        """Whether this instance holds `duty` (bot/duties.py), asked at each scrape."""
        self._duties.labels(duty).set_function(lambda: 1.0 if holds() else 0.0)

    def reminder_queued(self, lag_seconds: float) -> None:
        self._reminder_lag.observe(max(0.0, lag_seconds))

    # -- the scrape ------------------------------------------------------------------------

    def watch_outbox(self, db: Database, platforms: Sequence[str]) -> None:
        """Count the outbox's rows at each scrape (every platform shown, 0 when empty)."""
        self._outbox.db = db
        self._outbox.platforms = tuple(platforms)

    async def exposition(self) -> bytes:
        """The text a scrape gets: the outbox read now, then every metric."""
        await self._outbox.refresh()
        # No await from here on: what `collect` reports is what `refresh` just read.
        return generate_latest(self.registry)


class _OutboxDepth(Collector):
    """Outbox depth and oldest age per platform, read at scrape time.

    prometheus-client asks collectors synchronously and the database is async, so the
    scrape reads first (`refresh`: one grouped query, on the read engine, which on
    SQLite never takes nor waits for the write lock) and `collect` reports that.
    """

    def __init__(self, clock: Clock):
        self._clock = clock
        self.db: Database | None = None
        self.platforms: tuple[str, ...] = ()
        self._seen: dict[str, tuple[int, float]] = {}
        self._read = False

    async def refresh(self) -> None:
        self._seen, self._read = {}, False
        if self.db is None:
            return
        query = (
            select(col(OutboxRow.platform), func.count(), func.min(col(OutboxRow.created_at)))
            .where(col(OutboxRow.state) == OutboxState.PENDING)
            .group_by(col(OutboxRow.platform))
        )
        try:
            async with self.db.read() as session:
                rows = (await session.execute(query)).all()
        except Exception as exc:  # the scrape still shows the counters; /readyz says why
            log.warning("metrics: cannot read the outbox (%s)", type(exc).__name__)
            return
        now = self._clock()
        self._seen = {
            platform: (count, _age(now, oldest)) for platform, count, oldest in rows if platform
        }
        self._read = True

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self._read:
            return
        depth = GaugeMetricFamily(
            "inloop_outbox_depth", "Outbox rows waiting to be delivered", labels=["platform"]
        )
        age = GaugeMetricFamily(
            "inloop_outbox_oldest_age_seconds",
            "Age of the oldest outbox row waiting to be delivered (0 when none waits)",
            labels=["platform"],
        )
        for platform in sorted(set(self.platforms) | set(self._seen)):
            count, oldest = self._seen.get(platform, (0, 0.0))
            depth.add_metric([platform], count)
            age.add_metric([platform], oldest)
        yield depth
        yield age

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Named up front so the registry can check for clashes without a database read.
        yield GaugeMetricFamily("inloop_outbox_depth", "", labels=["platform"])
        yield GaugeMetricFamily("inloop_outbox_oldest_age_seconds", "", labels=["platform"])


def _age(now: datetime, oldest: datetime | None) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
