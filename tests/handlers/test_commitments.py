"""Commitments: weekly dialogue time, reminded once at the right instant, and recorded.

Every test runs on a fake clock: `at(chat, when)` moves it and runs what the
scheduler has due, the way APScheduler does in production, so nothing waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.app import App
from bot.config import load_settings
from bot.events import EventId, OccurrenceDue
from bot.views import Card
from harness import Chat, FakeClock, person
from recording import RecordingPlatform
from storage.models import DialogueSession

MONDAY = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)


class Week(Chat):
    """A Chat whose scheduler is driven by the test (no real-time timers)."""

    def __init__(
        self,
        database_url: str,
        *,
        now: datetime = MONDAY,
        platform: RecordingPlatform | None = None,
        **env: str,
    ):
        self.clock = FakeClock(now)
        self.platform = platform or RecordingPlatform()
        settings = load_settings(
            {"DATABASE_URL": database_url, "INLOOP_ADMINS": "console:boss", **env}
        )
        self.app = App(settings, {"console": self.platform}, clock=self.clock, run_timers=False)

    async def restart(self, now: datetime) -> Week:
        """Stop this instance, and start another on the same database at `now`."""
        await self.stop()
        again = Week(self.app.settings.database_url, now=now, platform=self.platform)
        return await again.start()

    async def start(self) -> Week:
        await super().start()
        return self


async def at(chat: Week, when: datetime) -> None:
    chat.clock.now = when
    await chat.app.scheduler.run_due(when)
    await chat.app.settle()


def reminders(chat: Week, who: str) -> list[Card]:
    return [
        d.view
        for d in chat.platform.delivered
        if d.kind == "private"
        and d.target == person(who)
        and isinstance(d.view, Card)
        and d.view.title.startswith("Dialogue time")
    ]


def checkins(chat: Week, who: str) -> list[Card]:
    return [
        d.view
        for d in chat.platform.delivered
        if d.kind == "private"
        and d.target == person(who)
        and isinstance(d.view, Card)
        and d.view.title == "How did your dialogue time go?"
    ]


async def drive(chat: Week, until: datetime, step: timedelta, who: str) -> list[datetime]:
    """Move the clock step by step; the instants at which `who` got a reminder."""
    seen: list[datetime] = []
    while chat.clock.now < until:
        before = len(reminders(chat, who))
        await at(chat, chat.clock.now + step)
        seen += [chat.clock.now] * (len(reminders(chat, who)) - before)
    return seen


async def sessions(chat: Week) -> list[DialogueSession]:
    async with chat.app.db.read() as session:
        return list(
            (
                await session.scalars(
                    select(DialogueSession).order_by(
                        col(DialogueSession.occurrence_start), col(DialogueSession.id)
                    )
                )
            ).all()
        )


@pytest.fixture
async def week(database_url: str) -> AsyncIterator[Week]:
    running = await Week(database_url).start()
    try:
        yield running
    finally:
        await running.stop()


def local(zone: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)  # type: ignore[misc]


# -- reminders at the right instants ----------------------------------------------------


async def test_reminders_come_at_the_start_in_each_persons_zone(database_url: str) -> None:
    week = await Week(database_url, INLOOP_DEFAULT_TZ="Asia/Tokyo").start()
    try:
        told = await week.say("ann", "commit mon,wed,fri 09:00 30m Europe/Rome")
        assert "Commitment 1: Mon, Wed, Fri at 09:00 for 30m (Europe/Rome)" in told
        assert "Next: Mon 2026-11-16 09:00 (Europe/Rome)" in told
        await week.say("bob", "commit weekdays 09:00 1h America/New_York")
        # no zone given and none from the platform: INLOOP_DEFAULT_TZ
        told = await week.say("cara", "commit daily 09:00 15m")
        assert "every day at 09:00 for 15m (Asia/Tokyo)" in told

        # Monday 06:00 UTC to Wednesday 06:00 UTC, a pass every 5 minutes
        seen = {who: [] for who in ("ann", "bob", "cara")}  # type: dict[str, list[datetime]]
        while week.clock.now < MONDAY + timedelta(days=2):
            counts = {who: len(reminders(week, who)) for who in seen}
            await at(week, week.clock.now + timedelta(minutes=5))
            for who in seen:
                seen[who] += [week.clock.now] * (len(reminders(week, who)) - counts[who])
    finally:
        await week.stop()

    assert seen["ann"] == [local("Europe/Rome", 2026, 11, 16, 9, 0)]  # Tuesday is not hers
    assert seen["bob"] == [
        local("America/New_York", 2026, 11, 16, 9, 0),
        local("America/New_York", 2026, 11, 17, 9, 0),
    ]
    assert seen["cara"] == [
        local("Asia/Tokyo", 2026, 11, 17, 9, 0),
        local("Asia/Tokyo", 2026, 11, 18, 9, 0),
    ]
    ann = reminders(week, "ann")[0]
    assert ann.title == "Dialogue time: 30m, until 09:30"
    assert [b.command for b in ann.buttons] == [
        "!inloop start 1",
        "!inloop skip 1",
        "!inloop snooze 1",
    ]


@pytest.mark.parametrize(
    ("zone", "day", "start", "expected"),
    [
        # spring forward: 02:00 → 03:00, so 02:30 does not exist; it fires once, at 03:30
        ("Europe/Rome", (2026, 3, 29), "02:30", (3, 30, 0)),
        ("America/New_York", (2026, 3, 8), "02:30", (3, 30, 0)),
        # fall back: the hour repeats; a block in it fires once, at its first occurrence
        ("America/New_York", (2026, 11, 1), "01:30", (1, 30, 0)),
        ("Europe/Rome", (2026, 10, 25), "02:30", (2, 30, 0)),
        ("Europe/Rome", (2026, 10, 25), "01:30", (1, 30, 0)),
    ],
)
async def test_a_block_fires_once_across_a_daylight_saving_change(
    database_url: str, zone: str, day: tuple[int, int, int], start: str, expected: tuple[int, ...]
) -> None:
    the_day = datetime(*day, 12, 0, tzinfo=UTC)
    week = await Week(database_url, now=the_day - timedelta(days=2)).start()
    try:
        await week.say("ann", f"commit daily {start} 15m {zone}")
        seen = await drive(week, the_day + timedelta(days=1), timedelta(minutes=15), "ann")
    finally:
        await week.stop()

    hours, minutes = (int(x) for x in start.split(":"))
    y, m, d = day
    before = datetime(y, m, d, tzinfo=UTC) - timedelta(days=1)
    after = datetime(y, m, d, tzinfo=UTC) + timedelta(days=1)
    assert seen == [
        local(zone, before.year, before.month, before.day, hours, minutes),
        local(zone, y, m, d, expected[0], expected[1], fold=expected[2]),
        local(zone, after.year, after.month, after.day, hours, minutes),
    ]
    on_the_day = seen[1].astimezone(ZoneInfo(zone))
    assert (on_the_day.hour, on_the_day.minute) == expected[:2]
