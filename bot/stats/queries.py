"""Team statistics computed by SQL on both stores: counts, duration histograms for the percentiles, repeat
callers, and calls per hour.

A period's whole days in Europe/Berlin (whole UTC hours for the calls) are read from the daily roll-ups
(:mod:`bot.storage.stats_rollups`, kept by the writes); its partial days at both ends are grouped from the rows over
the covering indexes (``cases_for_stats``, ``events_for_stats``, migration 0007). Either way SQL sums the durations
into histograms of buckets (:data:`~bot.storage.stats_rollups.BUCKETS`) per line and person over the whole period,
from which the nearest-rank median and 90th percentile are exact to the bucket; and sums the calls per caller over the
period's days, keeping those with at least three. Periods are half-open, ``[start, end)``; a case belongs to the period
it was created in, a call to the period it came in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bot.domain.events import EventKind
from bot.stats.model import Durations, LineStats, Period, PersonStats, RepeatCaller, TeamStats
from bot.stats.working_time import WallClock, WorkingTime
from bot.storage.database import Cursor, Database, require_utc
from bot.storage.stats_rollups import TIME_ZONE, callers_sql, duration_bucket, durations_sql, utc_hour_sql

REPEAT_CALLS = 3
"""A caller with at least this many calls in the period is a repeat caller."""
SHOWN_REPEAT_CALLERS = 5
CALL_KINDS = (EventKind.MISSED_CALL.value, EventKind.VOICEMAIL.value)
ALL = "*"
WORK_MEM = "64MB"
ROLLUP_ZONE = ZoneInfo(TIME_ZONE)
T = TypeVar("T")


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
    """Bucket (its lowest minute) → count per key (``line:<id>``, ``line:*``, ``person:<id>``), and the people's
    names."""

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


@dataclass
class _Counts:
    """Cases and done cases per key (a line id or ``*``)."""

    cases: Counter[str] = field(default_factory=Counter)
    done: Counter[str] = field(default_factory=Counter)

    def add(self, line_id: str, cases: int, done: int) -> None:
        for key in (line_id, ALL):
            self.cases[key] += cases
            self.done[key] += done


@dataclass(frozen=True, slots=True)
class _Split:
    """A period cut into whole units (days or hours) read from the roll-ups and the partial edges read from rows."""

    edges: tuple[Period, ...]
    whole: tuple[Any, Any] | None
    """The roll-ups' keys ``[first, last)``, or None when the period holds no whole unit."""


def split_days(period: Period) -> _Split:
    """Whole calendar days in the roll-ups' time zone (23, 24 or 25 hours long) and the edges around them."""
    first = _midnight(period.start.astimezone(ROLLUP_ZONE).date(), period.start)
    last = _midnight(period.end.astimezone(ROLLUP_ZONE).date(), None)
    if first >= last:
        return _Split((period,), None)
    days = (first.astimezone(ROLLUP_ZONE).date().isoformat(), last.astimezone(ROLLUP_ZONE).date().isoformat())
    return _Split(_non_empty(Period(period.start, first), Period(last, period.end)), days)


def _midnight(day: date, at_or_after: datetime | None) -> datetime:
    """The start of ``day`` in the roll-ups' time zone, or of the next day when that is before ``at_or_after``."""
    midnight = datetime.combine(day, time(0), tzinfo=ROLLUP_ZONE).astimezone(UTC)
    if at_or_after is not None and midnight < at_or_after:
        midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=ROLLUP_ZONE).astimezone(UTC)
    return midnight


def split_hours(period: Period) -> _Split:
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    last = end.replace(minute=0, second=0, microsecond=0)
    first = start.replace(minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(hours=1)
    if first >= last:
        return _Split((period,), None)
    return _Split(_non_empty(Period(period.start, first), Period(last, period.end)), (first, last))


def _non_empty(*periods: Period) -> tuple[Period, ...]:
    return tuple(period for period in periods if period.start < period.end)


class StatsQueries:
    """The team's figures: whole days (and hours) from the roll-ups (:mod:`bot.storage.stats_rollups`), the partial
    days at the period's edges from the rows. ``rollups=False`` computes everything from the rows (the reference the
    roll-ups are tested and measured against)."""

    def __init__(
        self,
        database: Database,
        working_time: WorkingTime | None = None,
        *,
        callbacks_known: bool = False,
        rollups: bool = True,
    ) -> None:
        self._db = database
        self._working_time = working_time or WallClock()
        # With Placetel's call webhooks configured callbacks are seen, so their count means something.
        self._callbacks_known = callbacks_known
        self._rollups = rollups

    async def _ask(self, question: Callable[[Cursor], Awaitable[T]]) -> T:
        """One question in a read of its own. The questions run at once: on PostgreSQL each on its own pooled
        connection (in parallel, each in a transaction with memory enough to group a period's callers in a hash
        instead of an external merge sort); on SQLite each on a WAL reader, so the statistics never hold the write
        lock. Each question reads its own snapshot: a write landing meanwhile may be counted by one and not yet by
        another, as any figure "until now" may."""
        if self._db.dialect.name == "postgresql":
            async with self._db.transaction() as cursor:
                await cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
                return await question(cursor)
        async with self._db.read() as cursor:
            return await question(cursor)

    def _split(self, split: _Split, period: Period) -> _Split:
        return split if self._rollups else _Split((period,), None)

    async def team_stats(self, line_ids: Sequence[str], period: Period, tz: tzinfo) -> TeamStats:
        lines = tuple(sorted(set(line_ids)))
        if not lines:
            return _empty(period, self._working_time.business_hours)
        days, hours = self._split(split_days(period), period), self._split(split_hours(period), period)
        seconds = self._working_time.sql_seconds(self._db.dialect, "created_at", "ended")
        # The roll-ups hold wall-clock buckets; a business-hours calendar measures every case from its row.
        minutes = days if seconds is not None else _Split((period,), None)
        counts, claims, dones, by_line_hour, (repeat, repeat_count) = await asyncio.gather(
            self._ask(lambda cursor: self._case_counts(cursor, lines, days)),
            self._ask(lambda cursor: self._histograms(cursor, lines, minutes, "claimed")),
            self._ask(lambda cursor: self._histograms(cursor, lines, minutes, "done")),
            self._ask(lambda cursor: self._calls_by_line_and_hour(cursor, lines, hours)),
            self._ask(lambda cursor: self._repeat_callers(cursor, lines, days)),
        )
        unreached = (
            await self._ask(lambda cursor: self._unreached_callbacks(cursor, lines, period))
            if self._callbacks_known
            else None
        )
        calls: Counter[str] = Counter()
        for (line_id, _hour), n in by_line_hour.items():
            calls[line_id] += n
            calls[ALL] += n

        def line_stats(key: str) -> LineStats:
            return LineStats(
                key,
                calls=calls[key],
                cases=counts.cases[key],
                done=counts.done[key],
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
        for (_line, hour), n in by_line_hour.items():
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

    def _parts(
        self, split: _Split, lines: Sequence[str], from_rows: str, from_rollup: str, time_column: str, key: str
    ) -> tuple[str, list[Any]]:
        """One SELECT over the partial edges' rows and the roll-up's whole units (UNION ALL): one round trip.

        ``from_rows`` and ``from_rollup`` select the same columns; ``{where}`` in them takes the filter."""
        selects, params = [], []
        for period in split.edges:
            selects.append(
                from_rows.format(where=f"line_id IN ({_in(lines)}) AND {time_column} >= ? AND {time_column} < ?")
            )
            params += [*lines, period.start, period.end]
        if split.whole is not None:
            selects.append(from_rollup.format(where=f"line_id IN ({_in(lines)}) AND {key} >= ? AND {key} < ?"))
            params += [*lines, *split.whole]
        return " UNION ALL ".join(selects), params

    async def _case_counts(self, cursor: Cursor, lines: Sequence[str], split: _Split) -> _Counts:
        union, params = self._parts(
            split,
            lines,
            "SELECT line_id, 1 AS cases, CASE WHEN state = 'done' THEN 1 ELSE 0 END AS done FROM cases WHERE {where}",
            "SELECT line_id, cases, done FROM stats_case_days WHERE {where}",
            "created_at",
            "day",
        )
        await cursor.execute(
            f"SELECT line_id, SUM(cases) AS cases, SUM(done) AS done FROM ({union}) parts GROUP BY line_id",  # noqa: S608
            params,
        )
        counts = _Counts()
        for row in await cursor.fetchall():
            counts.add(row["line_id"], int(row["cases"]), int(row["done"]))
        return counts

    async def _histograms(self, cursor: Cursor, lines: Sequence[str], split: _Split, step: str) -> _Histograms:
        """Duration buckets from the first call to ``step`` (claimed or done) per line and person."""
        if self._working_time.sql_seconds(self._db.dialect, "created_at", f"{step}_at") is None:
            histograms = _Histograms()
            for period in split.edges:
                await self._histograms_from_rows(cursor, lines, period, step, histograms)
            return histograms
        union, params = self._parts(
            split,
            lines,
            "SELECT line_id, actor_id, actor_name, bucket, 1 AS n "  # noqa: S608 - fixed SQL fragments
            f"FROM ({durations_sql(self._db.dialect, step, '{where}', by_day=False)}) edge",
            f"SELECT line_id, actor_id, actor_name, bucket, n FROM stats_durations WHERE step = '{step}' "  # noqa: S608
            "AND {where} AND n > 0",
            "created_at",
            "day",
        )
        await cursor.execute(
            "SELECT line_id, actor_id, MAX(actor_name) AS name, bucket, SUM(n) AS n "  # noqa: S608
            f"FROM ({union}) parts GROUP BY line_id, actor_id, bucket",
            params,
        )
        histograms = _Histograms()
        for row in await cursor.fetchall():
            actor = row["actor_id"] or None
            histograms.add(row["line_id"], actor, row["name"], max(0, int(row["bucket"])), int(row["n"]))
        return histograms

    async def _histograms_from_rows(
        self, cursor: Cursor, lines: Sequence[str], period: Period, step: str, histograms: _Histograms
    ) -> None:
        """A calendar without SQL measures each case in Python, bucketed as the SQL buckets wall-clock minutes."""
        end, actor, name = f"{step}_at", f"{step}_by_id", f"{step}_by_name"
        where, params = self._case_filter(lines, period)
        await cursor.execute(
            f"SELECT line_id, {actor} AS actor, {name} AS name, created_at, {end} AS ended FROM cases "  # noqa: S608
            f"WHERE {where} AND {end} IS NOT NULL",
            params,
        )
        for row in await cursor.fetchall():
            elapsed = self._working_time.elapsed(require_utc(row["created_at"]), require_utc(row["ended"]))
            bucket = duration_bucket(round(elapsed.total_seconds() / 60))
            histograms.add(row["line_id"], row["actor"], row["name"], max(0, bucket), 1)

    def _hour_key(self, moment: datetime) -> Any:
        """A UTC hour as the roll-up stores it."""
        return moment if self._db.dialect.name == "postgresql" else moment.strftime("%Y-%m-%dT%H")

    async def _calls_by_line_and_hour(
        self, cursor: Cursor, lines: Sequence[str], split: _Split
    ) -> Counter[tuple[str, datetime]]:
        """Calls per line and UTC hour (at most 24 rows per line and day; the time zone is applied afterwards)."""
        hour = utc_hour_sql(self._db.dialect, "received_at")
        union, params = self._parts(
            dataclasses.replace(split, whole=split.whole and tuple(self._hour_key(m) for m in split.whole)),
            lines,
            f"SELECT line_id, {hour} AS hour, 1 AS calls FROM events WHERE {{where}} "  # noqa: S608
            f"AND kind IN ({', '.join(repr(kind) for kind in CALL_KINDS)})",
            "SELECT line_id, hour, calls FROM stats_call_hours WHERE {where} AND calls > 0",
            "received_at",
            "hour",
        )
        await cursor.execute(
            f"SELECT line_id, hour, SUM(calls) AS calls FROM ({union}) parts GROUP BY line_id, hour",  # noqa: S608
            params,
        )
        calls: Counter[tuple[str, datetime]] = Counter()
        for row in await cursor.fetchall():
            calls[row["line_id"], _utc_hour(row["hour"])] += int(row["calls"])
        return calls

    async def _repeat_callers(
        self, cursor: Cursor, lines: Sequence[str], split: _Split
    ) -> tuple[tuple[RepeatCaller, ...], int]:
        """Callers with at least three calls in the period: calls per caller summed over the days' roll-ups and the
        edges' calls."""
        union, params = self._parts(
            split,
            lines,
            f"SELECT caller, 1 AS n FROM events WHERE {callers_sql('{where}')}",  # noqa: S608 - fixed SQL fragments
            "SELECT caller, calls AS n FROM stats_caller_days WHERE {where}",
            "received_at",
            "day",
        )
        await cursor.execute(
            "SELECT caller, SUM(n) AS calls, COUNT(*) OVER () AS callers "  # noqa: S608 - fixed SQL fragments
            f"FROM ({union}) parts GROUP BY caller HAVING SUM(n) >= ? ORDER BY calls DESC, caller LIMIT ?",
            [*params, REPEAT_CALLS, SHOWN_REPEAT_CALLERS],
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
