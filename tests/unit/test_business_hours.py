"""Business-time calendar: weekly hours, German public holidays per state, closed days, daylight saving."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.business_hours import BusinessCalendar, parse_weekly_hours
from bot.domain.zone import BERLIN
from bot.line_rules import LineHours


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def calendar(
    weekly: str = "Mo-Fr 08:00-18:00", state: str | None = None, closed: tuple[str, ...] = ()
) -> BusinessCalendar:
    return LineHours(weekly=weekly, state=state, closed=list(closed)).calendar


def test_friday_evening_call_is_due_monday_morning() -> None:
    friday = berlin(2026, 6, 12, 17, 50)
    assert calendar().add_business_minutes(friday, 30) == berlin(2026, 6, 15, 8, 20)


def test_call_at_night_counts_from_next_opening() -> None:
    evening = berlin(2026, 3, 10, 19, 0)
    assert calendar().add_business_minutes(evening, 30) == berlin(2026, 3, 11, 8, 30)
    assert calendar().business_minutes_between(evening, berlin(2026, 3, 11, 8, 45)) == 45


def test_lunch_break_does_not_count() -> None:
    split = calendar("Mo-Fr 08:00-12:00,14:00-18:00")
    assert split.add_business_minutes(berlin(2026, 3, 10, 11, 50), 30) == berlin(2026, 3, 10, 14, 20)
    assert split.business_minutes_between(berlin(2026, 3, 10, 11, 0), berlin(2026, 3, 10, 15, 0)) == 120


def test_fronleichnam_closes_bavaria_but_not_hamburg() -> None:
    wednesday = berlin(2026, 6, 3, 17, 50)  # Corpus Christi is Thursday 4 June 2026
    assert calendar(state="BY").add_business_minutes(wednesday, 30) == berlin(2026, 6, 5, 8, 20)
    assert calendar(state="HH").add_business_minutes(wednesday, 30) == berlin(2026, 6, 4, 8, 20)
    assert calendar(state="BY").closed_reason(date(2026, 6, 4)) == "Fronleichnam"
    assert calendar(state="HH").closed_reason(date(2026, 6, 4)) is None
    assert not calendar(state="BY").is_open(berlin(2026, 6, 4, 10))
    assert calendar(state="HH").is_open(berlin(2026, 6, 4, 10))


def test_christmas_and_new_year() -> None:
    # Wed 23 Dec 2026 17:45; 24 Dec is closed by configuration, 25/26 are holidays, then the weekend;
    # 31 Dec closed by configuration, 1 Jan a holiday.
    hours = calendar(state="NW", closed=("12-24", "12-31"))
    assert hours.add_business_minutes(berlin(2026, 12, 23, 17, 45), 30) == berlin(2026, 12, 28, 8, 15)
    assert hours.add_business_minutes(berlin(2026, 12, 30, 17, 50), 30) == berlin(2027, 1, 4, 8, 20)
    assert hours.next_opening(berlin(2026, 12, 30, 18, 0)) == berlin(2027, 1, 4, 8, 0)
    assert hours.closed_reason(date(2027, 1, 1)) == "Neujahr"


def test_closed_day_ranges_are_skipped() -> None:
    hours = calendar(closed=("2026-08-03..2026-08-14",))
    assert hours.add_business_minutes(berlin(2026, 7, 31, 17, 0), 90) == berlin(2026, 8, 17, 8, 30)


@pytest.mark.parametrize(
    ("week_start", "change"),
    [(date(2026, 3, 23), "spring"), (date(2026, 10, 19), "autumn")],
)
def test_daylight_saving_weeks_count_wall_clock_hours(week_start: date, change: str) -> None:
    """The weekend of the change is inside: the next week still opens at 08:00 local, and a full week has 50 h."""
    hours = calendar()
    monday = datetime.combine(week_start, datetime.min.time(), tzinfo=BERLIN).replace(hour=8)
    next_monday = monday + timedelta(days=7)
    assert hours.business_minutes_between(monday, next_monday) == 50 * 60
    friday_late = monday.replace(day=monday.day + 4, hour=17, minute=50)
    due = hours.add_business_minutes(friday_late, 30)
    assert due is not None
    assert due.astimezone(BERLIN).replace(tzinfo=None) == next_monday.replace(minute=20, tzinfo=None), change
    # In UTC the opening moved by an hour: naive 24 h arithmetic would be wrong.
    assert hours.next_opening(friday_late) is not None
    utc_open = hours.next_opening(friday_late).astimezone(UTC)  # type: ignore[union-attr]
    assert utc_open.hour == (6 if change == "spring" else 7)


def test_twenty_four_seven_and_closing_at_midnight() -> None:
    always = calendar("Mo-So 00:00-24:00")
    start = berlin(2026, 3, 28, 23, 50)  # the night before the spring change: 23 h Sunday
    assert always.add_business_minutes(start, 30) == start + timedelta(minutes=30)
    assert always.business_minutes_between(berlin(2026, 3, 29), berlin(2026, 3, 30)) == 23 * 60


def test_never_open_calendar_gives_none() -> None:
    hours = calendar(closed=("2026-01-01..2026-12-31",))
    assert hours.add_business_minutes(berlin(2026, 12, 31, 9), 600_000) is None


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("Mo-Fr", "days and times"),
        ("Mo-Xx 08:00-12:00", "no day"),
        ("Fr-Mo 08:00-12:00", "forward"),
        ("Mo 12:00-08:00", "ends before"),
        ("Mo 08:00-25:00", "impossible"),
        ("Mo 08:00-12:00,11:00-13:00", "overlap"),
        ("Mo 08:00-12:00; Mo 13:00-14:00", "twice"),
        ("", "no opening hours"),
    ],
)
def test_bad_hours_are_refused_with_a_reason(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_weekly_hours(spec)


def test_hours_are_described_in_german() -> None:
    spec = "mo-fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00"
    assert parse_weekly_hours(spec).describe() == "Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00"
    assert parse_weekly_hours("Tu,Th 9:00-17:00").describe() == "Di 09:00-17:00; Do 09:00-17:00"


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
    minutes=st.integers(min_value=0, max_value=5000),
)
def test_adding_and_measuring_business_minutes_agree(start: datetime, minutes: int) -> None:
    hours = calendar("Mo-Fr 08:00-12:00,13:00-17:30; Sa 09:00-12:00", state="BY", closed=("12-24",))
    begin = start.replace(tzinfo=UTC)
    due = hours.add_business_minutes(begin, minutes)
    assert due is not None
    assert hours.business_minutes_between(begin, due) == minutes
    assert minutes == 0 or hours.is_open(due - timedelta(seconds=1))
