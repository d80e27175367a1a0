"""Team statistics computed by SQL on both stores: counts, per-minute histograms for the percentiles, repeat
callers, and calls per hour.

Each question is one pass over a covering index (``cases_for_stats``, ``events_for_stats``, migration 0007) that
groups into small results: a period's cases come back as a histogram of whole minutes per line and person (a few
thousand rows however many cases), from which the nearest-rank median and 90th percentile are exact to the minute.
Periods are half-open, ``[start, end)``; a case belongs to the period it was created in, a call to the period it
came in.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from bot.domain.events import WITHHELD, EventKind
from bot.stats.model import Durations, LineStats, Period, PersonStats, RepeatCaller, TeamStats
from bot.stats.working_time import WallClock, WorkingTime
from bot.storage.database import Cursor, Database, require_utc

REPEAT_CALLS = 3
"""A caller with at least this many calls in the period is a repeat caller."""
SHOWN_REPEAT_CALLERS = 5
CALL_KINDS = (EventKind.MISSED_CALL.value, EventKind.VOICEMAIL.value)
ALL = "*"
WORK_MEM = "64MB"


def _in(values: Sequence[str]) -> str:
    return ", ".join("?" * len(values))


def percentile_of_histogram(histogram: Counter[int], p: float) -> int | None:
    """Nearest rank over a histogram of values: the smallest value with at least ``p`` of all counts at or below."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank, seen = max(1, math.ceil(p * total - 1e-9)), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


@dataclass
class _Histograms:
    """Minutes → count per key (``line:<id>``, ``line:*``, ``person:<id>``), and the people's names."""

    minutes: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    names: dict[str, str] = field(default_factory=dict)

    def add(self, line_id: str, actor: str | None, name: str | None, minutes: int, count: int) -> None:
        for key in (f"line:{line_id}", f"line:{ALL}", *([f"person:{actor}"] if actor is not None else [])):
            self.minutes[key][minutes] += count
        if actor is not None and name:
            self.names[actor] = max(self.names.get(actor, ""), name)

    def durations(self, key: str) -> Durations:
        histogram = self.minutes.get(key)
        if not histogram:
            return Durations()
        median, p90 = percentile_of_histogram(histogram, 0.5), percentile_of_histogram(histogram, 0.9)
        return Durations(
            sum(histogram.values()),
            median * 60.0 if median is not None else None,
            p90 * 60.0 if p90 is not None else None,
        )

    def count(self, key: str) -> int:
        return sum(self.minutes.get(key, Counter()).values())


class StatsQueries:
    def __init__(
        self, database: Database, working_time: WorkingTime | None = None, *, callbacks_known: bool = False
    ) -> None:
        self._db = database
        self._working_time = working_time or WallClock()
        # With Placetel's call webhooks configured callbacks are seen, so their count means something.
        self._callbacks_known = callbacks_known

    async def team_stats(self, line_ids: Sequence[str], period: Period, tz: tzinfo) -> TeamStats:
        lines = tuple(sorted(set(line_ids)))
        if not lines:
            return _empty(period, self._working_time.business_hours)
        async with self._db.transaction() as cursor:
            if self._db.dialect.name == "postgresql":
                # Enough memory to group a period's cases in memory (hash) instead of an external merge sort.
                await cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            counts = await self._case_counts(cursor, lines, period)
            claims = await self._histograms(cursor, lines, period, "claimed")
            dones = await self._histograms(cursor, lines, period, "done")
            hours = await self._calls_by_line_and_hour(cursor, lines, period)
            repeat, repeat_count = await self._repeat_callers(cursor, lines, period)
            unreached = await self._unreached_callbacks(cursor, lines, period) if self._callbacks_known else None
        calls: Counter[str] = Counter()
        for (line_id, _hour), n in hours.items():
            calls[line_id] += n
            calls[ALL] += n

        def line_stats(key: str) -> LineStats:
            cases, done = counts.get(key, (0, 0))
            return LineStats(
                key,
                calls=calls[key],
                cases=cases,
                done=done,
                to_claim=claims.durations(f"line:{key}"),
                to_done=dones.durations(f"line:{key}"),
            )

        people = sorted(set(claims.names) | set(dones.names) | _actors(claims) | _actors(dones))
        person_stats = [
            PersonStats(
                actor,
                claims.names.get(actor) or dones.names.get(actor) or "?",
                claimed=claims.count(f"person:{actor}"),
                done=dones.count(f"person:{actor}"),
                to_claim=claims.durations(f"person:{actor}"),
                to_done=dones.durations(f"person:{actor}"),
            )
            for actor in people
        ]
        person_stats.sort(key=lambda person: (-person.claimed, -person.done, person.name))
        by_hour: Counter[datetime] = Counter()
        for (_line, hour), n in hours.items():
            by_hour[hour] += n
        return TeamStats(
            period=period,
            line_ids=lines,
            total=line_stats(ALL),
            lines=tuple(line_stats(line_id) for line_id in lines),
            people=tuple(person_stats),
            repeat_callers=repeat,
            repeat_caller_count=repeat_count,
            calls_by_weekday_hour=_weekday_hours(by_hour, tz),
            business_hours=self._working_time.business_hours,
            unreached_callbacks=unreached,
        )

    # Queries --------------------------------------------------------------------------------------------------

    @staticmethod
    def _case_filter(lines: Sequence[str], period: Period) -> tuple[str, list[Any]]:
        return f"line_id IN ({_in(lines)}) AND created_at >= ? AND created_at < ?", [*lines, period.start, period.end]

    async def _case_counts(self, cursor: Cursor, lines: Sequence[str], period: Period) -> dict[str, tuple[int, int]]:
        where, params = self._case_filter(lines, period)
        await cursor.execute(
            f"SELECT line_id, state, COUNT(*) AS n FROM cases WHERE {where} GROUP BY line_id, state",  # noqa: S608
            params,
        )
        cases: Counter[str] = Counter()
        done: Counter[str] = Counter()
        for row in await cursor.fetchall():
            for key in (row["line_id"], ALL):
                cases[key] += int(row["n"])
                if row["state"] == "done":
                    done[key] += int(row["n"])
        return {key: (cases[key], done[key]) for key in cases}

    async def _histograms(self, cursor: Cursor, lines: Sequence[str], period: Period, step: str) -> _Histograms:
        """Minutes from the first call to ``step`` (claimed or done) per line and person."""
        end, actor, name = f"{step}_at", f"{step}_by_id", f"{step}_by_name"
        where, params = self._case_filter(lines, period)
        where += f" AND {end} IS NOT NULL"
        histograms = _Histograms()
        seconds = self._working_time.sql_seconds(self._db.dialect, "created_at", end)
        if seconds is None:
            await cursor.execute(
                f"SELECT line_id, {actor} AS actor, {name} AS name, created_at, {end} AS ended FROM cases "  # noqa: S608
                f"WHERE {where}",
                params,
            )
            for row in await cursor.fetchall():
                elapsed = self._working_time.elapsed(require_utc(row["created_at"]), require_utc(row["ended"]))
                histograms.add(row["line_id"], row["actor"], row["name"], round(elapsed.total_seconds() / 60), 1)
            return histograms
        await cursor.execute(
            f"SELECT line_id, {actor} AS actor, MAX({name}) AS name, CAST(ROUND({seconds} / 60.0) AS INTEGER) AS m, "  # noqa: S608
            f"COUNT(*) AS n FROM cases WHERE {where} GROUP BY line_id, {actor}, m",
            params,
        )
        for row in await cursor.fetchall():
            histograms.add(row["line_id"], row["actor"], row["name"], max(0, int(row["m"])), int(row["n"]))
        return histograms

    def _hour(self) -> str:
        if self._db.dialect.name == "postgresql":
            return "date_trunc('hour', received_at)"
        return "substr(received_at, 1, 13)"  # the fixed-width UTC text up to the hour

    async def _calls_by_line_and_hour(
        self, cursor: Cursor, lines: Sequence[str], period: Period
    ) -> dict[tuple[str, datetime], int]:
        """Calls per line and UTC hour (at most 24 rows per line and day; the time zone is applied afterwards)."""
        hour = self._hour()
        await cursor.execute(
            f"SELECT line_id, {hour} AS hour, COUNT(*) AS calls FROM events "  # noqa: S608
            f"WHERE line_id IN ({_in(lines)}) AND received_at >= ? AND received_at < ? AND kind IN ({_in(CALL_KINDS)}) "
            f"GROUP BY line_id, {hour}",
            [*lines, period.start, period.end, *CALL_KINDS],
        )
        return {(row["line_id"], _utc_hour(row["hour"])): int(row["calls"]) for row in await cursor.fetchall()}

    async def _repeat_callers(
        self, cursor: Cursor, lines: Sequence[str], period: Period
    ) -> tuple[tuple[RepeatCaller, ...], int]:
        await cursor.execute(
            "SELECT caller, COUNT(*) AS calls, COUNT(*) OVER () AS callers FROM events "  # noqa: S608
            f"WHERE line_id IN ({_in(lines)}) AND received_at >= ? AND received_at < ? AND kind IN ({_in(CALL_KINDS)}) "
            "AND caller IS NOT NULL AND caller <> ? GROUP BY caller HAVING COUNT(*) >= ? "
            "ORDER BY calls DESC, caller LIMIT ?",
            [*lines, period.start, period.end, *CALL_KINDS, WITHHELD, REPEAT_CALLS, SHOWN_REPEAT_CALLERS],
        )
        rows = await cursor.fetchall()
        shown = tuple(RepeatCaller(row["caller"], int(row["calls"])) for row in rows)
        return shown, int(rows[0]["callers"]) if rows else 0


    @staticmethod
    async def _unreached_callbacks(cursor: Cursor, lines: Sequence[str], period: Period) -> int:
        """Callback attempts in the period that did not reach the caller (Placetel's call webhooks)."""
        await cursor.execute(
            "SELECT COUNT(*) AS n FROM contacts JOIN cases ON cases.id = contacts.case_id "  # noqa: S608
            f"WHERE cases.line_id IN ({_in(lines)}) AND contacts.kind = 'callback' AND contacts.reached = 0 "
            "AND contacts.at >= ? AND contacts.at < ?",
            [*lines, period.start, period.end],
        )
        row = await cursor.fetchone()
        return int(row["n"]) if row else 0


def _actors(histograms: _Histograms) -> set[str]:
    return {key.removeprefix("person:") for key in histograms.minutes if key.startswith("person:")}


def _utc_hour(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value[:13] + ":00:00+00:00")
    return require_utc(value).astimezone(UTC)


def _weekday_hours(hours: Counter[datetime], tz: tzinfo) -> tuple[tuple[int, ...], ...]:
    grid = [[0] * 24 for _ in range(7)]
    for moment, calls in hours.items():
        local = moment.astimezone(tz)
        grid[local.weekday()][local.hour] += calls
    return tuple(tuple(row) for row in grid)


def _empty(period: Period, business_hours: bool) -> TeamStats:
    return TeamStats(
        period=period,
        line_ids=(),
        total=LineStats(ALL),
        lines=(),
        people=(),
        repeat_callers=(),
        repeat_caller_count=0,
        calls_by_weekday_hour=tuple(tuple([0] * 24) for _ in range(7)),
        business_hours=business_hours,
    )
