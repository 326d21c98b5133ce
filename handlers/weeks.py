"""ISO weeks in a time zone: what `digest 2026-W47` means, DST included."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bot.recurrence import zone

_WEEK = re.compile(r"^([0-9]{4})-W([0-9]{2})$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class IsoWeek:
    year: int
    week: int

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    def bounds(self, tz: str) -> tuple[datetime, datetime]:
        """Monday 00:00 to the next Monday 00:00, local time, as UTC instants.

        Computed from local midnights, so a week with a DST change is 167 or 169 hours.
        """
        local = zone(tz)
        start = datetime.combine(self.monday, time(0), local)
        end = datetime.combine(self.monday + timedelta(days=7), time(0), local)
        return start.astimezone(UTC), end.astimezone(UTC)

    def previous(self) -> IsoWeek:
        return IsoWeek.containing(self.monday - timedelta(days=7))

    @staticmethod
    def containing(day: date) -> IsoWeek:
        year, week, _ = day.isocalendar()
        return IsoWeek(year, week)


def parse_week(value: str, now: datetime, tz: str) -> IsoWeek | None:
    """`this`, `last` or `2026-W47`; None when it is none of these."""
    today = now.astimezone(zone(tz)).date()
    lowered = value.lower()
    if lowered == "this":
        return IsoWeek.containing(today)
    if lowered == "last":
        return IsoWeek.containing(today).previous()
    match = _WEEK.match(value)
    if match is None:
        return None
    year, week = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        return None
    return IsoWeek(year, week)
