"""When a weekly block happens: local wall-clock rules turned into UTC instants.

A block is "DAYS at HH:MM in ZONE". Each local date gives at most one instant,
so daylight-saving changes can neither drop a block nor repeat it:

- on the spring-forward day a start inside the gap (02:30 in Europe/Rome or
  America/New_York) happens once, at the same distance after the gap's start,
  i.e. 03:30 local (PEP 495: `fold=0` reads a missing time with the offset from
  before the change);
- on the fall-back day a start inside the repeated hour (01:30 in New York)
  happens once, at its first occurrence (`fold=0` again).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def valid_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone this machine knows."""
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a directory of zones
        return False
    return True


@dataclass(frozen=True)
class Weekly:
    """ISO weekdays (1 = Monday … 7 = Sunday) at a local time in an IANA zone."""

    weekdays: frozenset[int]
    at: time
    tz: str

    def instant(self, day: date) -> datetime:
        """The UTC instant of the block on local date `day` (whatever its weekday)."""
        local = datetime.combine(day, self.at, tzinfo=zone(self.tz))
        return local.astimezone(UTC)

    def between(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Starts s with after < s <= until, in order."""
        tz = zone(self.tz)
        day = after.astimezone(tz).date() - timedelta(days=1)
        last = until.astimezone(tz).date() + timedelta(days=1)
        while day <= last:
            if day.isoweekday() in self.weekdays:
                start = self.instant(day)
                if after < start <= until:
                    yield start
            day += timedelta(days=1)

    def next_after(self, after: datetime) -> datetime | None:
        """The first start strictly after `after` (None only with no weekdays at all)."""
        # Within 8 days there is always one of the weekdays, whatever the DST shifts.
        return next(self.between(after, after + timedelta(days=8)), None)


def weekly(days: str, start: str, tz: str) -> Weekly:
    """From the stored form: days "1,3,5", start "09:00"."""
    hours, minutes = start.split(":")
    return Weekly(
        frozenset(int(d) for d in days.split(",") if d), time(int(hours), int(minutes)), tz
    )
