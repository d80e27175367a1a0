"""doctor: each line's business hours, whether it is open now, its next opening and reminder."""

from __future__ import annotations

from datetime import datetime

from bot.config import PoolLine, Settings
from bot.doctor.results import (
    BUSINESS_HOURS,
    CheckResult,
    Problem,
)


def _local(moment: datetime, line: PoolLine) -> str:
    return f"{moment.astimezone(line.hours.calendar.tz):%a %Y-%m-%d %H:%M}"


def describe_line_hours(line: PoolLine, now: datetime) -> tuple[str, list[Problem]]:
    """One line's hours, holidays, open state, next opening and reminder rules, for the doctor's report."""
    hours, rules = line.hours, line.reminders
    calendar = hours.calendar
    holidays = f"holidays of {hours.state}" if hours.state else "nationwide holidays"
    closed = f", {len(hours.closed)} extra closed day entries" if hours.closed else ""
    parts = [f"{line.id}: {hours.weekly_hours.describe()} ({hours.timezone}, {holidays}{closed})"]
    problems: list[Problem] = []
    opening = calendar.next_opening(now)
    if calendar.is_open(now):
        until = next(end for start, end in calendar.intervals_from(now))
        parts.append(f"open now until {_local(until, line)}")
    else:
        reason = calendar.closed_reason(now.astimezone(calendar.tz).date())
        parts.append("closed now" + (f" ({reason})" if reason else ""))
    if opening is not None:
        parts.append(f"next opening {_local(opening, line)}")
    else:
        problems.append(
            Problem(
                BUSINESS_HOURS,
                f"{line.id}: the line never opens within a year (hours {hours.weekly!r}, closed {hours.closed}).",
                f"Correct POOL_LINES[{line.id}].hours: weekly hours like 'Mo-Fr 08:00-18:00' and fewer closed days.",
            )
        )
    if rules.enabled:
        escalation = f", escalation after {rules.escalate_after}" if rules.escalate_to else ", no escalation"
        parts.append(f"reminders after {rules.unclaimed_minutes}/{rules.claimed_minutes} min{escalation}")
        if rules.tag is None and not rules.mention:
            problems.append(
                Problem(
                    BUSINESS_HOURS,
                    f"{line.id}: reminders mention nobody (no 'tag' and no 'mention' people).",
                    f"Add a team tag or people to POOL_LINES[{line.id}].reminders so reminders reach someone.",
                    warning=True,
                )
            )
    else:
        parts.append("reminders off")
    return "; ".join(parts), problems


def check_business_hours(settings: Settings, now: datetime) -> CheckResult:
    if not settings.pool_lines:
        return CheckResult(BUSINESS_HOURS, skipped="no POOL_LINES")
    notes, problems = [], []
    for line in settings.pool_lines:
        note, found = describe_line_hours(line, now)
        notes.append(note)
        problems.extend(found)
    return CheckResult(BUSINESS_HOURS, problems, notes=notes)
