"""What the statistics say, as plain data (the stats card reads it; the queries produce it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return max(1, round((self.end - self.start) / timedelta(days=1)))


@dataclass(frozen=True, slots=True)
class Durations:
    """Nearest-rank median and 90th percentile in seconds over ``count`` cases."""

    count: int = 0
    median: float | None = None
    p90: float | None = None


@dataclass(frozen=True, slots=True)
class LineStats:
    line_id: str
    calls: int = 0
    cases: int = 0
    done: int = 0
    to_claim: Durations = Durations()
    to_done: Durations = Durations()

    @property
    def handled_share(self) -> float | None:
        return self.done / self.cases if self.cases else None


@dataclass(frozen=True, slots=True)
class PersonStats:
    actor_id: str
    name: str
    claimed: int = 0
    done: int = 0
    to_claim: Durations = Durations()
    to_done: Durations = Durations()


@dataclass(frozen=True, slots=True)
class RepeatCaller:
    number: str
    calls: int


@dataclass(frozen=True, slots=True)
class TeamStats:
    period: Period
    line_ids: tuple[str, ...]
    total: LineStats
    lines: tuple[LineStats, ...]
    people: tuple[PersonStats, ...]
    repeat_callers: tuple[RepeatCaller, ...]
    repeat_caller_count: int
    calls_by_weekday_hour: tuple[tuple[int, ...], ...]
    """7 rows (Monday first) of 24 hours, in the team's time zone."""
    business_hours: bool
    unreached_callbacks: int | None = None
    """Callbacks that did not reach the caller; None without Placetel's call webhooks, which report them."""
