"""Business hours: weekly opening hours in a time zone, minus public holidays and extra closed days.

Pure domain (no I/O, no clock): every question takes the moment it is about. Time counts only while open, so a
call at 19:00 with a 30-minute rule is due 30 minutes after the next opening, not overnight. Opening hours are
local wall-clock times; the calendar turns each open day into UTC intervals, so daylight-saving weeks count the
hours a person is actually at the desk (a 08:00-18:00 day is 600 minutes in March and in October).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise

MINUTES_PER_DAY = 24 * 60
HORIZON_DAYS = 400
"""How far the calendar looks for the next open minute; a calendar closed for longer counts as never open."""

_DAY_NAMES = {
    # German and English two-letter day names, Monday = 0.
    "mo": 0,
    "di": 1,
    "tu": 1,
    "mi": 2,
    "we": 2,
    "do": 3,
    "th": 3,
    "fr": 4,
    "sa": 5,
    "so": 6,
    "su": 6,
}
GERMAN_DAY_NAMES = ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")

ClosedDays = Callable[[date], str | None]
"""Why a date is closed (a holiday's name, "Betriebsurlaub"), or None when it is an ordinary day."""


def never_closed(_day: date) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Opening ranges per weekday (Monday first) in minutes after local midnight, sorted and not overlapping."""

    days: tuple[tuple[tuple[int, int], ...], ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError("weekly hours need seven days")

    @property
    def is_empty(self) -> bool:
        return not any(self.days)

    def describe(self) -> str:
        """``Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00``: equal neighbouring days folded into one group."""
        groups: list[tuple[int, int, tuple[tuple[int, int], ...]]] = []
        for weekday, ranges in enumerate(self.days):
            if groups and groups[-1][2] == ranges and groups[-1][1] == weekday - 1:
                groups[-1] = (groups[-1][0], weekday, ranges)
            else:
                groups.append((weekday, weekday, ranges))
        parts = []
        for first, last, ranges in groups:
            if not ranges:
                continue
            days = GERMAN_DAY_NAMES[first] + (f"-{GERMAN_DAY_NAMES[last]}" if last > first else "")
            parts.append(f"{days} {','.join(f'{_hhmm(start)}-{_hhmm(end)}' for start, end in ranges)}")
        return "; ".join(parts) or "geschlossen"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_days(text: str) -> list[int]:
    days: list[int] = []
    for part in text.split(","):
        names = [name.strip().lower().rstrip(".") for name in part.split("-")]
        if any(name not in _DAY_NAMES for name in names) or len(names) > 2:
            raise ValueError(f"{part.strip()!r} is no day or day range (Mo, Di, Mi, Do, Fr, Sa, So; e.g. Mo-Fr)")
        first, last = _DAY_NAMES[names[0]], _DAY_NAMES[names[-1]]
        if last < first:
            raise ValueError(f"{part.strip()!r}: a day range runs forward within the week (Mo-Fr, not Fr-Mo)")
        days.extend(range(first, last + 1))
    return days


def _parse_range(text: str) -> tuple[int, int]:
    match = _RANGE.match(text.strip())
    if not match:
        raise ValueError(f"{text.strip()!r} is no time range like 08:00-12:00")
    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    if start_h > 23 or start_m > 59 or end_m > 59 or end_h > 24 or (end_h == 24 and end_m):
        raise ValueError(f"{text.strip()!r} holds an impossible time")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if end <= start:
        raise ValueError(f"{text.strip()!r} ends before it starts (hours past midnight: close at 24:00)")
    return start, end


def parse_weekly_hours(spec: str) -> WeeklyHours:
    """Parse ``Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00`` (German or English day names; ``;`` separates
    groups). Raises ``ValueError`` naming the part it does not understand."""
    days: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    groups = [group.strip() for group in spec.split(";") if group.strip()]
    if not groups:
        raise ValueError("no opening hours given (e.g. 'Mo-Fr 08:00-18:00')")
    for group in groups:
        day_part, _, range_part = group.partition(" ")
        if not range_part.strip():
            raise ValueError(f"{group!r}: days and times are needed, e.g. 'Mo-Fr 08:00-18:00'")
        ranges = [_parse_range(item) for item in range_part.split(",")]
        for weekday in _parse_days(day_part):
            if days[weekday]:
                raise ValueError(f"{GERMAN_DAY_NAMES[weekday]} is given twice")
            days[weekday] = sorted(ranges)
    for weekday, ranges in enumerate(days):
        for (_, end), (start, _) in pairwise(ranges):
            if start < end:
                raise ValueError(f"{GERMAN_DAY_NAMES[weekday]}: time ranges overlap")
    return WeeklyHours(tuple(tuple(ranges) for ranges in days))


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """When a line is open. All moments in and out are timezone-aware; results are in UTC."""

    hours: WeeklyHours
    tz: tzinfo
    closed_days: ClosedDays = never_closed

    def closed_reason(self, day: date) -> str | None:
        """Why ``day`` is closed although the week has hours on it (a holiday, a closed day), or None."""
        return self.closed_days(day)

    def _local_date(self, moment: datetime) -> date:
        if moment.tzinfo is None:
            raise ValueError("business time needs timezone-aware moments")
        return moment.astimezone(self.tz).date()

    def _at(self, day: date, minutes: int) -> datetime:
        """The UTC moment of ``minutes`` after local midnight of ``day`` (24:00 is the next day's midnight)."""
        local = datetime.combine(day + timedelta(days=minutes // MINUTES_PER_DAY), time(0), tzinfo=self.tz)
        wall = local.replace(hour=(minutes % MINUTES_PER_DAY) // 60, minute=minutes % 60)
        # Round-trip through UTC so that a wall time skipped by the spring change lands on the real instant.
        return wall.astimezone(UTC)

    def day_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of local date ``day`` in UTC (none on a holiday or a closed day)."""
        ranges = self.hours.days[day.weekday()]
        if not ranges or self.closed_days(day) is not None:
            return []
        return [(self._at(day, start), self._at(day, end)) for start, end in ranges]

    def intervals_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals that end after ``moment``, in order, clipped to start no earlier than ``moment``."""
        start_day = self._local_date(moment) - timedelta(days=1)
        for offset in range(HORIZON_DAYS + 2):
            for start, end in self.day_intervals(start_day + timedelta(days=offset)):
                if end > moment:
                    yield max(start, moment), end

    def is_open(self, moment: datetime) -> bool:
        return any(start <= moment < end for start, end in self.day_intervals(self._local_date(moment)))

    def next_opening(self, moment: datetime) -> datetime | None:
        """The start of the next open interval that begins after ``moment`` (the next time the doors open)."""
        for start, _ in self.intervals_from(moment):
            if start > moment:
                return start
        return None

    def add_business_minutes(self, start: datetime, minutes: float) -> datetime | None:
        """The moment ``minutes`` of opening time after ``start``; None when the calendar is never open."""
        remaining = timedelta(minutes=minutes)
        for begin, end in self.intervals_from(start):
            if remaining <= timedelta(0):
                return begin
            if end - begin >= remaining:
                return begin + remaining
            remaining -= end - begin
        return None

    def business_minutes_between(self, start: datetime, end: datetime) -> int:
        """Whole minutes of opening time in ``[start, end)``."""
        total = timedelta(0)
        for begin, finish in self.intervals_from(start):
            if begin >= end:
                break
            total += min(finish, end) - begin
        return int(total.total_seconds() // 60)

    def first_opening_of_day(self, moment: datetime) -> datetime | None:
        """The first open minute of ``moment``'s local day, when that day opens at all."""
        intervals = self.day_intervals(self._local_date(moment))
        return intervals[0][0] if intervals else None

    def previous_closing(self, opening: datetime) -> datetime | None:
        """The end of the last open interval before ``opening`` (when the line last closed), within the horizon."""
        day = self._local_date(opening)
        for offset in range(HORIZON_DAYS + 1):
            ends = [end for _, end in self.day_intervals(day - timedelta(days=offset)) if end <= opening]
            if ends:
                return max(ends)
        return None
