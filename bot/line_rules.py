"""Per-line business hours and reminder rules, as configured in ``POOL_LINES`` (``hours`` and ``reminders``).

Public holidays come from the ``holidays`` package for the configured German state (Bundesland); extra closed days
are dates (``2026-05-15``), date ranges (``2026-08-03..2026-08-14``) or yearly days (``12-24``).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cached_property
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.domain.business_hours import BusinessCalendar, WeeklyHours, parse_weekly_hours
from bot.domain.cases import Case
from bot.domain.reminders import DueState, ReminderPolicy, due_state

GERMAN_STATES = ("BB", "BE", "BW", "BY", "HB", "HE", "HH", "MV", "NI", "NW", "RP", "SH", "SL", "SN", "ST", "TH")
_DATE = r"\d{4}-\d{2}-\d{2}"
_CLOSED_DAY = re.compile(rf"^(?:({_DATE})(?:\.\.({_DATE}))?|(\d{{2}})-(\d{{2}}))$")
MAX_CLOSED_RANGE_DAYS = 366


class LineHours(BaseModel):
    """When the line is staffed. Without a ``state`` only the nationwide public holidays count."""

    model_config = ConfigDict(frozen=True)

    weekly: str = Field(default="Mo-Fr 08:00-18:00", description="e.g. 'Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00'")
    timezone: str = "Europe/Berlin"
    state: str | None = Field(default=None, description="German state (Bundesland) code for holidays, e.g. 'NW'")
    closed: list[str] = Field(default_factory=list, description="extra closed days: dates, ranges a..b, or MM-DD")

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, value: str) -> str:
        parse_weekly_hours(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is no IANA time zone (e.g. Europe/Berlin)") from None
        return value

    @field_validator("state")
    @classmethod
    def _state(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper().removeprefix("DE-")
        if code not in GERMAN_STATES:
            raise ValueError(f"{value!r} is no German state code; one of {', '.join(GERMAN_STATES)}")
        return code

    @field_validator("closed")
    @classmethod
    def _closed(cls, values: list[str]) -> list[str]:
        for value in values:
            _closed_dates(value)
        return values

    @cached_property
    def weekly_hours(self) -> WeeklyHours:
        return parse_weekly_hours(self.weekly)

    @cached_property
    def calendar(self) -> BusinessCalendar:
        public = holidays.country_holidays("DE", subdiv=self.state, language="de")
        single: dict[date, str] = {}
        yearly: dict[tuple[int, int], str] = {}
        for value in self.closed:
            parsed = _closed_dates(value)
            if isinstance(parsed, tuple):
                yearly[parsed] = "geschlossen"
            else:
                single.update(dict.fromkeys(parsed, "geschlossen"))

        def closed_reason(day: date) -> str | None:
            name = public.get(day)
            if name is not None:
                return str(name)
            return single.get(day) or yearly.get((day.month, day.day))

        return BusinessCalendar(self.weekly_hours, ZoneInfo(self.timezone), closed_reason)


def _closed_dates(value: str) -> list[date] | tuple[int, int]:
    match = _CLOSED_DAY.match(value.strip())
    if not match:
        raise ValueError(f"closed day {value!r}: use 2026-05-15, 2026-08-03..2026-08-14 or 12-24 (every year)")
    first, last, month, day = match.groups()
    try:
        if month is not None:
            date(2024, int(month), int(day))  # a leap year, so 02-29 is accepted
            return int(month), int(day)
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else start
    except ValueError as exc:
        raise ValueError(f"closed day {value!r}: {exc}") from None
    if end < start or (end - start).days > MAX_CLOSED_RANGE_DAYS:
        raise ValueError(f"closed days {value!r}: the range must run forward, at most {MAX_CLOSED_RANGE_DAYS} days")
    return [date.fromordinal(ordinal) for ordinal in range(start.toordinal(), end.toordinal() + 1)]


class Mentionable(BaseModel):
    """A Teams user (AAD object id) or a team tag (tag id) to @mention."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=80)


class Escalation(BaseModel):
    """Whom an escalation reaches: a person (@mention in the case's thread) or another channel (a new post)."""

    model_config = ConfigDict(frozen=True)

    user: Mentionable | None = None
    channel_id: str | None = Field(default=None, pattern=r"^19:[^\s;]{1,200}$")

    @model_validator(mode="after")
    def _one_target(self) -> Escalation:
        if (self.user is None) == (self.channel_id is None):
            raise ValueError("escalate_to needs exactly one of 'user' or 'channel_id'")
        return self


class LineReminders(BaseModel):
    """Reminder rules of a line; off unless ``enabled``. Minutes count within the line's business hours."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    unclaimed_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    claimed_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60)
    escalate_after: int = Field(default=3, ge=1, le=20, description="reminders before the escalation")
    mention: list[Mentionable] = Field(default_factory=list, max_length=20, description="people to @mention")
    tag: Mentionable | None = Field(default=None, description="a team tag to @mention instead of people")
    escalate_to: Escalation | None = None
    morning_overview: bool = True

    @cached_property
    def policy(self) -> ReminderPolicy:
        return ReminderPolicy(
            unclaimed_minutes=self.unclaimed_minutes,
            claimed_minutes=self.claimed_minutes,
            escalate_after=self.escalate_after,
            can_escalate=self.escalate_to is not None,
        )


class _Line(Protocol):
    hours: LineHours
    reminders: LineReminders


def line_due_state(line: _Line, case: Case, now: datetime) -> DueState | None:
    """The case's due state on its card, on lines with reminders."""
    if not line.reminders.enabled:
        return None
    return due_state(case, line.hours.calendar, line.reminders.policy, now)
