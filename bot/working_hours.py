"""A team's working hours, and how much of a wait fell inside them.

A team's targets (time to claim, time to reply) count only working time: a
conversation that arrives on Friday at 17:50 for a team that works Monday to
Friday 09:00-18:00 has waited 10 minutes by Monday at 09:00, not 63 hours.

Hours are "DAYS HH:MM-HH:MM in ZONE", wall-clock, like commitments (see
bot/recurrence.py for how missing and repeated local times are read: PEP 495's
`fold=0`). Each working day opens one window; when the end is not after the
start (22:00-06:00) the window runs into the next morning. `None` hours mean
always: every minute counts.

Pure: no I/O, so the nudges and the digest compute the same figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot.recurrence import zone

#: a day's minutes; an end of 24:00 is written 1440
DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class WorkingHours:
    """ISO weekdays (1 = Monday … 7 = Sunday) from `start` to `end` local minutes."""

    days: frozenset[int]
    #: minutes after local midnight, 0 … 1439
    start: int
    #: 1 … 1440; not after `start`: the window ends the next day at `end`
    end: int
    tz: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < DAY_MINUTES or not 0 < self.end <= DAY_MINUTES:
            raise ValueError(f"working hours {self.start}-{self.end} out of a day")
        if self.start == self.end % DAY_MINUTES and self.end != DAY_MINUTES:
            raise ValueError("working hours that start when they end")
        if not self.days or not self.days <= set(range(1, 8)):
            raise ValueError(f"working days {sorted(self.days)}")

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The UTC instants the window opened on local date `day` starts and ends
        (whatever its weekday)."""
        close_day = day if self.end > self.start else day + timedelta(days=1)
        return _instant(day, self.start, self.tz), _instant(close_day, self.end, self.tz)


def _instant(day: date, minute: int, tz: str) -> datetime:
    """Local wall-clock `minute` of `day` as a UTC instant (1440: the next midnight)."""
    if minute == DAY_MINUTES:
        day, minute = day + timedelta(days=1), 0
    local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone(tz))
    return local.astimezone(UTC)


def business_time(start: datetime, end: datetime, hours: WorkingHours | None) -> timedelta:
    """How much of [start, end) fell inside the working hours (all of it for None).

    `start` and `end` are aware datetimes; an end before the start is no time.
    Each local day from the one before `start` (its window may run past midnight)
    to the one of `end` adds its window's overlap, measured in UTC: a day of a DST
    change is 23 or 25 hours long when the hours cover it whole.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return timedelta(0)
    if hours is None:
        return end - start
    tz = zone(hours.tz)
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    total = timedelta(0)
    while day <= last:
        if day.isoweekday() in hours.days:
            opens, closes = hours.window(day)
            overlap = min(closes, end) - max(opens, start)
            if overlap > timedelta(0):
                total += overlap
        day += timedelta(days=1)
    return total


def business_minutes(start: datetime, end: datetime, hours: WorkingHours | None) -> float:
    """`business_time` in minutes: what a target in minutes is compared with."""
    return business_time(start, end, hours).total_seconds() / 60
