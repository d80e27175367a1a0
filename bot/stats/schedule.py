"""The weekly digest's schedule: a weekday and a time of day in the team's time zone (pure, no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

WEEKDAYS = {
    **{name: n for n, name in enumerate(("mo", "di", "mi", "do", "fr", "sa", "so"))},
    **{name: n for n, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{
        name: n
        for n, name in enumerate(("montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag", "sonntag"))
    },
    **{
        name: n for n, name in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
    },
}
_SCHEDULE = re.compile(r"^\s*([a-zA-Z]+)\.?\s+(\d{1,2}):(\d{2})\s*$")
GRACE = timedelta(hours=24)
"""A digest that could not be posted at its time (the bot was down) is still posted within this window."""


@dataclass(frozen=True, slots=True)
class WeeklySchedule:
    weekday: int
    """Monday = 0."""
    at: time

    def due_at(self, now: datetime, tz: tzinfo) -> datetime:
        """The most recent scheduled moment at or before ``now`` (timezone-aware)."""
        local = now.astimezone(tz)
        monday = local.date() - timedelta(days=local.weekday())
        moment = datetime.combine(monday + timedelta(days=self.weekday), self.at, tzinfo=tz)
        if moment > local:
            moment = datetime.combine(monday + timedelta(days=self.weekday - 7), self.at, tzinfo=tz)
        return moment


def parse_schedule(value: str) -> WeeklySchedule:
    """``"mo 08:00"``, ``"Freitag 16:30"``, ``"fri 7:15"`` → :class:`WeeklySchedule`; ValueError otherwise."""
    match = _SCHEDULE.match(value)
    if match is None or match.group(1).lower() not in WEEKDAYS:
        raise ValueError(f"{value!r} is not a weekday and time such as 'mo 08:00' or 'fri 16:30'")
    hour, minute = int(match.group(2)), int(match.group(3))
    if hour > 23 or minute > 59:
        raise ValueError(f"{value!r}: no such time of day")
    return WeeklySchedule(WEEKDAYS[match.group(1).lower()], time(hour, minute))
