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
from bot.messages import CATALOG
from bot.views import Card
from handlers.commitments import BLOCK_MINUTES, LOG_MINUTES, duration
from harness import Chat, FakeClock, person
from recording import RecordingPlatform
from storage.models import DialogueSession, OutboxRow

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


def local(zone: str, y: int, m: int, d: int, hh: int, mm: int, *, fold: int = 0) -> datetime:
    """A wall-clock time in `zone`, as a UTC instant."""
    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


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

        # Monday 06:00 UTC to Wednesday 06:00 UTC, a pass every 15 minutes
        seen = {who: [] for who in ("ann", "bob", "cara")}  # type: dict[str, list[datetime]]
        while week.clock.now < MONDAY + timedelta(days=2):
            counts = {who: len(reminders(week, who)) for who in seen}
            await at(week, week.clock.now + timedelta(minutes=15))
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
        seen = await drive(week, the_day + timedelta(days=1), timedelta(minutes=30), "ann")
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


# -- exactly once: restarts, downtime, several instances ---------------------------------

NINE = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


async def test_a_restart_in_the_middle_of_a_block_neither_repeats_nor_loses_it(
    database_url: str,
) -> None:
    week = await Week(database_url, now=NINE - timedelta(hours=1)).start()
    await week.say("ann", "commit daily 09:00 30m UTC")
    await at(week, NINE)
    assert len(reminders(week, "ann")) == 1

    week = await week.restart(NINE + timedelta(minutes=12))
    try:
        await at(week, NINE + timedelta(minutes=29))
        assert len(reminders(week, "ann")) == 1  # not again
        assert checkins(week, "ann") == []
        await at(week, NINE + timedelta(minutes=30))
        assert len(checkins(week, "ann")) == 1
        assert "Block 1 is recorded as done: 30m" in await week.press("ann", "done", "1")
        assert [(s.outcome, s.minutes_given) for s in await sessions(week)] == [("done", 30)]
    finally:
        await week.stop()


async def test_after_ten_minutes_down_the_reminder_is_sent_late_and_says_so(
    database_url: str,
) -> None:
    week = await Week(database_url, now=NINE - timedelta(hours=2)).start()
    await week.say("ann", "commit daily 09:00 30m Europe/Rome")  # 08:00 UTC
    await at(week, NINE - timedelta(hours=1, minutes=5))
    # down from 07:55 to 08:10 UTC
    week = await week.restart(NINE - timedelta(minutes=50))
    try:
        await week.app.settle()
        [late] = reminders(week, "ann")
        assert late.text.splitlines()[0] == "Sent late: Inloop was not running at 09:00."
        assert [s.outcome for s in await sessions(week)] == ["reminded"]
        # the check-in still comes at the block's end
        await at(week, NINE - timedelta(minutes=30))
        assert len(checkins(week, "ann")) == 1
    finally:
        await week.stop()


async def test_after_three_hours_down_the_block_is_recorded_missed_never_sent(
    database_url: str,
) -> None:
    week = await Week(database_url, now=NINE - timedelta(days=3)).start()
    await week.say("ann", "commit daily 09:00 30m UTC")
    await at(week, NINE - timedelta(days=3, minutes=-1))
    # down for three days: Friday 09:01 to Monday 12:00
    week = await week.restart(NINE + timedelta(hours=3))
    try:
        await week.app.settle()
        assert reminders(week, "ann") == []  # no burst of stale reminders
        recorded = await sessions(week)
        assert [(s.outcome, s.occurrence_start) for s in recorded] == [
            ("missed", NINE - timedelta(days=2)),
            ("missed", NINE - timedelta(days=1)),
            ("missed", NINE),
        ]
        told = await week.say("ann", "commitments")
        assert "last: missed (Inloop was not running)" in told
        # and the next one is reminded as usual
        await at(week, NINE + timedelta(days=1))
        assert len(reminders(week, "ann")) == 1
    finally:
        await week.stop()


async def test_two_instances_remind_each_occurrence_once(database_url: str) -> None:
    first = await Week(database_url, now=NINE - timedelta(hours=1)).start()
    second = await Week(database_url, now=NINE - timedelta(hours=1)).start()
    if "timers" not in second.app.duties.held:
        # On PostgreSQL the timers are one instance's duty (bot/duties.py). Should two
        # ever fire at once (a holder stalled past its lease), each is still once.
        await second.app.scheduler.start(second.app, run_timers=False)
    try:
        await first.say("ann", "commit daily 09:00 30m UTC")
        await at(second, NINE - timedelta(minutes=30))  # the other instance learns of it
        assert second.app.scheduler.timers == 1
        first.clock.now = second.clock.now = NINE
        if first.app.db.is_sqlite:  # one writer at a time on one thread
            await first.app.scheduler.run_due(NINE)
            await second.app.scheduler.run_due(NINE)
        else:
            await asyncio.gather(
                first.app.scheduler.run_due(NINE), second.app.scheduler.run_due(NINE)
            )
        # One reminder queued. (The outbox does not claim rows: each instance's worker
        # delivers what is pending, a core limit this test does not hide.)
        async with first.app.db.read() as session:
            queued = (
                await session.scalars(
                    select(col(OutboxRow.payload)).where(col(OutboxRow.target) == person("ann"))
                )
            ).all()
        assert [p for p in queued if "Dialogue time" in p] != []
        assert len([p for p in queued if "Dialogue time" in p]) == 1
        assert len(await sessions(first)) == 1
    finally:
        await first.stop()
        await second.stop()


async def test_the_unique_row_guards_an_occurrence_whatever_the_event(week: Week) -> None:
    week.clock.now = NINE - timedelta(hours=1)
    await week.say("ann", "commit daily 09:00 30m UTC")
    week.clock.now = NINE
    # Two different events for the same occurrence (say, two instances' own ids)
    for event_id in ("first", "second"):
        await week.app.handle(OccurrenceDue(EventId(event_id), NINE, (1,)))
    await week.app.settle()
    assert len(reminders(week, "ann")) == 1
    assert len(await sessions(week)) == 1


# -- away, snooze, check-ins -----------------------------------------------------------


async def test_away_blocks_are_recorded_without_reminders_until_back(week: Week) -> None:
    week.clock.now = NINE - timedelta(hours=1)
    await week.say("ann", "commit daily 09:00 30m UTC")
    told = await week.say("ann", "away until 2026-11-17")
    assert told.startswith("Away until 2026-11-17 (included)")
    assert "Away until 2026-11-17" in await week.say("ann", "commitments")
    await at(week, NINE)
    await at(week, NINE + timedelta(days=1))
    assert reminders(week, "ann") == []
    await at(week, NINE + timedelta(days=2))
    assert len(reminders(week, "ann")) == 1
    assert await week.say("ann", "away until 2026-11-30") != ""
    assert "Welcome back" in await week.say("ann", "back")
    await at(week, NINE + timedelta(days=3))
    assert len(reminders(week, "ann")) == 2
    assert [s.outcome for s in await sessions(week)] == ["away", "away", "checkin", "reminded"]


async def test_while_away_the_next_block_shown_is_the_first_after_the_absence(
    week: Week,
) -> None:
    await week.say("ann", "commit mon,wed,fri 09:00 30m UTC")  # Monday 06:00: today's is next
    await week.say("ann", "away until 2026-11-20")  # this Friday, included

    listed = (await week.say("ann", "commitments")).splitlines()
    assert listed[1] == "1. Mon, Wed, Fri at 09:00 for 30m (UTC) — next: Mon 2026-11-23 09:00 (UTC)"
    await week.say("ann", "back")
    assert "next: Mon 2026-11-16 09:00 (UTC)" in await week.say("ann", "commitments")
    await week.say("ann", "away until 2026-11-20")
    told = await week.say("ann", "commit daily 00:00 15m UTC")  # midnight of the day back counts
    assert "Next: Sat 2026-11-21 00:00 (UTC)." in told
    # and it is the block that reminds
    await at(week, datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    assert reminders(week, "ann") == []
    await at(week, datetime(2026, 11, 21, 0, 0, tzinfo=UTC))
    assert len(reminders(week, "ann")) == 1


async def test_snooze_reminds_again_in_15_minutes_and_moves_the_check_in(week: Week) -> None:
    week.clock.now = NINE - timedelta(hours=1)
    await week.say("ann", "commit daily 09:00 30m UTC")
    await at(week, NINE + timedelta(minutes=2))
    told = await week.press("ann", "snooze", "1")
    assert told == "I will remind you again at 09:17."
    assert await week.say("ann", "snooze 1") == "I will remind you again at 09:17."  # same
    await at(week, NINE + timedelta(minutes=16))
    assert len(reminders(week, "ann")) == 1
    await at(week, NINE + timedelta(minutes=17))
    again = reminders(week, "ann")
    assert len(again) == 2
    assert again[1].text.startswith("Snooze over")
    assert again[1].title == "Dialogue time: 30m, until 09:47"
    assert await week.press("ann", "start", "1") == (
        "Good conversations! I will ask how it went at 09:47."
    )
    await at(week, NINE + timedelta(minutes=46))
    assert checkins(week, "ann") == []
    await at(week, NINE + timedelta(minutes=47))
    assert len(checkins(week, "ann")) == 1


async def test_every_check_in_answer_is_recorded(week: Week) -> None:
    week.clock.now = NINE - timedelta(hours=1)
    await week.say("ann", "commit daily 09:00 30m UTC")
    answers = [
        ("done", "Block 1 is recorded as done: 30m. Thank you!"),
        ("partial", "How many minutes did you give? Type `!inloop partial 2 MINUTES`."),
        ("skip", "Block 3 is recorded as skipped."),
        (None, ""),
    ]
    for day, (action, expected) in enumerate(answers):
        await at(week, NINE + timedelta(days=day))
        await at(week, NINE + timedelta(days=day, minutes=30))
        checkin = checkins(week, "ann")[-1]
        assert [b.label for b in checkin.buttons] == ["Done", "Partial", "Skipped"]
        if action is not None:
            assert await week.press("ann", action, str(day + 1)) == expected
    assert (
        await week.say("ann", "partial 2 20")
        == "Block 2 is recorded as partial: 20m of 30m. Thank you!"
    )
    await at(week, NINE + timedelta(days=3, hours=12, minutes=30))  # the last one unanswered
    recorded = [(s.outcome, s.minutes_planned, s.minutes_given) for s in await sessions(week)]
    assert recorded[:4] == [
        ("done", 30, 30),
        ("partial", 30, 20),
        ("skipped", 30, 0),
        ("no_answer", 30, 0),
    ]
    # someone else's block is not theirs to answer
    assert await week.say("bob", "done 1") == "There is no block 1 of yours."


async def test_the_reminder_lists_my_unreplied_then_the_unclaimed_oldest_first(
    week: Week,
) -> None:
    week.clock.now = NINE - timedelta(hours=1)
    await week.say("boss", "team add support")
    for i in range(14):
        await week.mention(f"Customer{i}", f"message {i}")
        week.clock.advance(minutes=1)
    await week.say("ann", "claim 3")
    await week.say("ann", "claim 5")
    await week.say("ann", "replied 5")  # answered: not waiting for her any more
    await week.say("ann", "commit daily 09:00 30m UTC")
    await at(week, NINE)
    [card] = reminders(week, "ann")
    lines = card.text.splitlines()
    assert lines[0] == "Yours, waiting for your reply (1):"
    assert lines[1].startswith("#3 · twitter · Customer2 · Claimed")
    assert lines[2] == "Unclaimed in support (12):"
    assert [line.split(" ·")[0] for line in lines[3:12]] == [
        "#1", "#2", "#4", "#6", "#7", "#8", "#9", "#10", "#11"
    ]  # fmt: skip
    assert lines[12:] == ["…and 3 more."]


async def test_log_records_time_given_outside_a_block(week: Week) -> None:
    await week.say("boss", "team add support")
    await week.mention("Giulia", "hello")
    assert await week.say("ann", "log 20m 1") == "Logged 20m of dialogue time on #1. Thank you!"
    assert await week.say("ann", "log 1h") == "Logged 1h of dialogue time. Thank you!"
    assert [(s.outcome, s.minutes_given, s.conversation_id) for s in await sessions(week)] == [
        ("logged", 20, 1),
        ("logged", 60, None),
    ]


async def test_commitments_lists_mine_and_managers_see_anyones(week: Week) -> None:
    await week.say("ann", "commit mon,wed,fri 09:00 30m Europe/Rome")
    await week.say("ann", "commit weekdays 16:30 1h30m America/New_York")
    mine = (await week.say("ann", "commitments")).splitlines()
    assert mine == [
        "Commitments of Ann:",
        "1. Mon, Wed, Fri at 09:00 for 30m (Europe/Rome)"
        " — next: Mon 2026-11-16 09:00 (Europe/Rome)",
        "2. weekdays at 16:30 for 1h30m (America/New_York)"
        " — next: Mon 2026-11-16 16:30 (America/New_York)",
    ]
    assert (await week.say("bob", "commitments @ann")).startswith("Not allowed")
    assert (await week.say("boss", "commitments console:ann")).splitlines()[1:] == mine[1:]
    assert await week.say("bob", "uncommit 1") == "There is no commitment 1 of yours."
    assert "Commitment 1 ended" in await week.say("ann", "uncommit 1")
    assert len((await week.say("ann", "commitments")).splitlines()) == 2
    await at(week, MONDAY + timedelta(hours=2))
    assert reminders(week, "ann") == []  # 09:00 in Rome: the ended one is silent
    await at(week, MONDAY + timedelta(hours=15, minutes=30))  # 16:30 in New York
    assert len(reminders(week, "ann")) == 1


# -- invalid input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("commit mon,funday 09:00 30m", "`mon,funday` is not a list of days"),
        ("commit weekdays 25:00 30m", "`25:00` is not a time"),
        ("commit weekdays 9am 30m", "`9am` is not a time"),
        ("commit weekdays 09:00 10m", "`10m` is not a block length: a weekly block is 15m to 4h"),
        ("commit weekdays 09:00 5h", "`5h` is not a block length: a weekly block is 15m to 4h"),
        ("commit weekdays 09:00 30", "`30` is not a block length: a weekly block is 15m to 4h"),
        ("commit weekdays 09:00 30m Mars/Olympus", "`Mars/Olympus` is not an IANA time zone"),
        ("commit weekdays 09:00 30m Europe", "`Europe` is not an IANA time zone"),
        ("commit weekdays 09:00", ""),
        ("away until 2026-02-30", "`2026-02-30` is not a date"),
        ("away until 2026-11-15", "2026-11-15 is already past."),
        ("away 2026-12-01", ""),
        ("log 0m", "`0m` is not a time to log: one session is 1m to 8h"),
        ("log 8h30m", "`8h30m` is not a time to log: one session is 1m to 8h"),
        ("log 20m x", "`x` is not a conversation number."),
        ("uncommit one", "`one` is not a commitment number."),
        ("done x", "`x` is not a block number."),
    ],
)
async def test_invalid_input_answers_with_what_was_wrong_and_the_usage(
    week: Week, command: str, problem: str
) -> None:
    told = (await week.say("ann", command)).splitlines()
    usage = told[told.index("Usage:") + 1]
    assert usage.startswith(f"!inloop {command.split()[0]} ")
    said = told[: told.index("Usage:")]
    assert len(said) == (1 if problem else 0)
    if problem:
        assert said[0].startswith(problem)
    assert await week.say("ann", "commitments") == (
        "No commitments yet. `commit mon,wed,fri 09:00 30m` makes one."
    )


async def test_a_session_logged_may_be_longer_than_a_block_and_both_limits_are_said(
    week: Week,
) -> None:
    refused = await week.say("ann", "commit weekdays 09:00 5h")
    assert refused.startswith("`5h` is not a block length: a weekly block is 15m to 4h")
    assert "DURATION: 15m to 4h" in refused  # the usage line says it too

    assert await week.say("ann", "log 5h") == "Logged 5h of dialogue time. Thank you!"
    assert "DURATION: 1m to 8h" in await week.say("ann", "help log")


@pytest.mark.parametrize("language", sorted(CATALOG))
def test_the_usage_lines_state_the_limits_the_commands_enforce(language: str) -> None:
    usage = CATALOG[language].usage
    for command, (low, high) in (("commit", BLOCK_MINUTES), ("log", LOG_MINUTES)):
        assert f"{duration(low)} " in usage[command], command
        assert f" {duration(high)}" in usage[command], command


async def test_a_partial_answer_must_fit_the_block(week: Week) -> None:
    week.clock.now = NINE - timedelta(hours=1)
    await week.say("ann", "commit daily 09:00 30m UTC")
    await at(week, NINE)
    await at(week, NINE + timedelta(minutes=30))
    told = await week.say("ann", "partial 1 45")
    assert told.startswith("`45` is not a number of minutes from 1 to 30.")
    assert [s.outcome for s in await sessions(week)] == ["checkin"]


async def test_starting_during_a_snooze_starts_the_block_then(week: Week) -> None:
    week.clock.now = NINE - timedelta(hours=1)
    await week.say("ann", "commit daily 09:00 30m UTC")
    await at(week, NINE)
    await week.press("ann", "snooze", "1")
    week.clock.now = NINE + timedelta(minutes=5)
    told = await week.press("ann", "start", "1")
    assert told == "Good conversations! I will ask how it went at 09:35."
    await at(week, NINE + timedelta(minutes=15))
    assert len(reminders(week, "ann")) == 1  # started: the snooze's reminder is off
    await at(week, NINE + timedelta(minutes=35))
    assert len(checkins(week, "ann")) == 1
