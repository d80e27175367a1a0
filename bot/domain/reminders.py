"""Reminder rules: when an open or claimed case is due for a reminder, a nudge or an escalation.

Pure domain: the rules read the case, the line's business calendar, how many reminders of the current episode were
sent already, and the moment asked about. An *episode* is one stretch of the case in one state with one anchor: an
open case waits since its first call (a release does not make the caller wait less; a reopened case waits since it
was reopened); a claimed case since it was claimed, by its claimer. A new episode starts its reminders afresh.

Steps of an episode: reminders 1..K, each after another N (open) or M (claimed) business minutes; then, when an
escalation target is configured, one escalation after another interval; then nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.domain.business_hours import BusinessCalendar
from bot.domain.cases import Case, CaseState


class ReminderKind(StrEnum):
    UNCLAIMED = "unclaimed"
    """An open case nobody claimed: mention the line's people or tag."""
    CLAIMED = "claimed"
    """A claim that is not finished: nudge the claimer, offer release."""
    ESCALATION = "escalation"
    """Still nobody after K reminders: tell the configured person or channel."""


@dataclass(frozen=True, slots=True)
class ReminderPolicy:
    unclaimed_minutes: int = 30
    claimed_minutes: int = 120
    escalate_after: int = 3
    """Reminders of one episode before the escalation."""
    can_escalate: bool = False
    """An escalation target is configured."""


@dataclass(frozen=True, slots=True)
class Episode:
    key: str
    """Stable text naming the episode: reminders are recorded once per (case, key, step)."""
    state: CaseState
    anchor: datetime


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    episode: Episode
    step: int
    kind: ReminderKind
    due_at: datetime


def episode_of(case: Case) -> Episode | None:
    """The case's current episode; None for a done case."""
    if case.state is CaseState.OPEN:
        anchor = case.updated_at if case.reopened and case.updated_at is not None else case.created_at
        return Episode(f"open:{anchor.isoformat()}", CaseState.OPEN, anchor)
    if case.state is CaseState.CLAIMED and case.claimed_at is not None:
        claimer = case.claimed_by.id if case.claimed_by else "?"
        return Episode(f"claimed:{claimer}:{case.claimed_at.isoformat()}", CaseState.CLAIMED, case.claimed_at)
    return None


def _interval(policy: ReminderPolicy, state: CaseState) -> int:
    return policy.unclaimed_minutes if state is CaseState.OPEN else policy.claimed_minutes


def next_reminder(
    case: Case, calendar: BusinessCalendar, policy: ReminderPolicy, steps_sent: int
) -> PlannedReminder | None:
    """The episode's next reminder after ``steps_sent`` were sent, or None when the episode has no more."""
    episode = episode_of(case)
    if episode is None:
        return None
    step = steps_sent + 1
    if step <= policy.escalate_after:
        kind = ReminderKind.UNCLAIMED if episode.state is CaseState.OPEN else ReminderKind.CLAIMED
    elif step == policy.escalate_after + 1 and policy.can_escalate:
        kind = ReminderKind.ESCALATION
    else:
        return None
    due_at = calendar.add_business_minutes(episode.anchor, step * _interval(policy, episode.state))
    return PlannedReminder(episode, step, kind, due_at) if due_at is not None else None


@dataclass(frozen=True, slots=True)
class DueState:
    """What the card shows: waiting (business) minutes, and since when the case is overdue (None: still new)."""

    state: CaseState
    waited_minutes: int
    due_since: datetime | None

    @property
    def is_due(self) -> bool:
        return self.due_since is not None


def due_state(case: Case, calendar: BusinessCalendar, policy: ReminderPolicy, now: datetime) -> DueState | None:
    """The due state of an open or claimed case at ``now``; None for a done case."""
    episode = episode_of(case)
    if episode is None:
        return None
    due_at = calendar.add_business_minutes(episode.anchor, _interval(policy, episode.state))
    waited = calendar.business_minutes_between(episode.anchor, now)
    return DueState(episode.state, waited, due_at if due_at is not None and due_at <= now else None)


@dataclass(frozen=True, slots=True)
class OverviewWindow:
    """The morning overview of one opening: what came in while the line was closed."""

    opening: datetime
    """The day's first open minute; the overview is sent once per line and opening."""
    closed_since: datetime | None
    """When the line closed before (None: never open before, within the calendar's horizon)."""

    def covers(self, moment: datetime) -> bool:
        return moment < self.opening and (self.closed_since is None or moment >= self.closed_since)


def overview_window(calendar: BusinessCalendar, now: datetime) -> OverviewWindow | None:
    """The overview due at ``now``: from the day's first opening until the end of that first open interval (a bot
    that was down at 08:00 still sends it at 08:40, but not in the afternoon)."""
    day = calendar.day_intervals(now.astimezone(calendar.tz).date())
    if not day:
        return None
    opening, first_end = day[0]
    if not opening <= now < first_end:
        return None
    return OverviewWindow(opening, calendar.previous_closing(opening))
