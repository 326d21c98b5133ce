"""Working hours: only time inside them counts towards a team's targets.

The examples are the cases people meet (a Friday evening, a night shift, the
days the clocks change); the properties hold for any instants, zones and hours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.working_hours import WorkingHours, business_minutes, business_time

ROME = "Europe/Rome"
NEW_YORK = "America/New_York"
OFFICE = WorkingHours(frozenset({1, 2, 3, 4, 5}), 9 * 60, 18 * 60, ROME)
ALL_DAY = WorkingHours(frozenset(range(1, 8)), 0, 24 * 60, ROME)


def rome(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(ROME))


def test_a_friday_evening_wait_counts_from_monday_morning() -> None:
    arrived = rome(2026, 11, 20, 17, 50)  # Friday
    assert business_minutes(arrived, rome(2026, 11, 20, 23, 0), OFFICE) == 10
    assert business_minutes(arrived, rome(2026, 11, 23, 8, 59), OFFICE) == 10  # Monday
    assert business_minutes(arrived, rome(2026, 11, 23, 9, 20), OFFICE) == 30


def test_without_working_hours_every_minute_counts() -> None:
    start = rome(2026, 11, 20, 17, 50)
    assert business_minutes(start, start + timedelta(hours=63), None) == 63 * 60
    assert business_minutes(start, start - timedelta(minutes=5), None) == 0


def test_a_night_shift_runs_past_midnight() -> None:
    nights = WorkingHours(frozenset({1}), 22 * 60, 6 * 60, ROME)  # Monday 22:00 to 06:00
    monday = rome(2026, 11, 16, 12, 0)
    assert business_time(monday, rome(2026, 11, 17, 12, 0), nights) == timedelta(hours=8)
    # Tuesday night is no shift: only Monday's opens
    assert business_time(monday, rome(2026, 11, 18, 12, 0), nights) == timedelta(hours=8)


def test_a_whole_day_on_the_days_the_clocks_change_is_23_and_25_hours() -> None:
    # Europe/Rome springs forward on 2026-03-29 and falls back on 2026-10-25.
    assert business_time(rome(2026, 3, 29), rome(2026, 3, 30), ALL_DAY) == timedelta(hours=23)
    assert business_time(rome(2026, 10, 25), rome(2026, 10, 26), ALL_DAY) == timedelta(hours=25)


def test_office_hours_are_nine_hours_on_the_days_the_clocks_change() -> None:
    # New York changes on Sundays at 02:00: a Sunday office day is still 9 hours.
    sundays = WorkingHours(frozenset({7}), 9 * 60, 18 * 60, NEW_YORK)
    ny = ZoneInfo(NEW_YORK)
    for day in (datetime(2026, 3, 8, tzinfo=ny), datetime(2026, 11, 1, tzinfo=ny)):
        assert business_time(day, day + timedelta(days=1), sundays) == timedelta(hours=9)


def test_hours_inside_the_hour_that_does_not_exist_start_after_it() -> None:
    # 02:30 does not exist in Rome on 2026-03-29: like a commitment at 02:30, the
    # window opens at 03:30 (PEP 495 fold=0), so 02:30-04:00 leaves 30 minutes.
    early = WorkingHours(frozenset({7}), 2 * 60 + 30, 4 * 60, ROME)
    assert business_time(rome(2026, 3, 29), rome(2026, 3, 30), early) == timedelta(minutes=30)


# -- properties ------------------------------------------------------------------------------

ZONES = st.sampled_from([ROME, NEW_YORK, "Australia/Lord_Howe", "Asia/Kolkata", "UTC"])
INSTANTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


#: a wait of three years walks a thousand days: no per-example deadline on a busy machine
patient = settings(deadline=None)


@st.composite
def working_hours(draw: st.DrawFn) -> WorkingHours:
    days = draw(st.frozensets(st.integers(1, 7), min_size=1))
    start = draw(st.integers(0, 24 * 60 - 1))
    end = draw(st.integers(1, 24 * 60).filter(lambda e: e % (24 * 60) != start or e == 24 * 60))
    return WorkingHours(days, start, end, draw(ZONES))


@patient
@given(INSTANTS, INSTANTS, working_hours())
def test_working_time_is_never_more_than_the_time_that_passed(
    a: datetime, b: datetime, hours: WorkingHours
) -> None:
    start, end = min(a, b), max(a, b)
    assert timedelta(0) <= business_time(start, end, hours) <= end - start


@patient
@given(INSTANTS, INSTANTS, INSTANTS, working_hours())
def test_a_wait_split_in_two_adds_up(
    a: datetime, b: datetime, c: datetime, hours: WorkingHours
) -> None:
    first, middle, last = sorted((a, b, c))
    whole = business_time(first, last, hours)
    assert whole == business_time(first, middle, hours) + business_time(middle, last, hours)


@patient
@given(INSTANTS, ZONES)
def test_every_day_all_day_is_always(start: datetime, tz: str) -> None:
    always = WorkingHours(frozenset(range(1, 8)), 0, 24 * 60, tz)
    end = start + timedelta(days=3, minutes=17)
    assert business_time(start, end, always) == end - start


@patient
@given(st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 1)))
def test_an_office_week_is_45_hours_whatever_the_season(day: date) -> None:
    monday = day - timedelta(days=day.weekday())
    start = datetime(monday.year, monday.month, monday.day, tzinfo=ZoneInfo(ROME))
    end = start + timedelta(days=7)  # local midnight a week later, whatever DST did
    assert business_time(start, end, OFFICE) == timedelta(hours=45)
