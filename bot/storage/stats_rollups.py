"""Daily roll-ups for the statistics, kept in the same transaction as every write that changes what they count.

Four tables (migrations 0014 and 0015):

- ``stats_case_days``: cases and done cases per line and local day (Europe/Berlin) of their creation;
- ``stats_durations``: per line, local day of creation, step (claimed/done), person and name, the number of cases per
  duration bucket from creation to that step (:data:`BUCKETS`: the minute below 10 minutes, then coarser), bounded
  by people × buckets per line and day rather than by the cases; the nearest-rank median and 90th percentile are exact
  to the bucket;
- ``stats_call_hours``: calls (missed calls and voicemails) per line and UTC hour;
- ``stats_caller_days``: calls per line, local day and caller (withheld and unknown callers left out), for the repeat
  callers. A row whose calls drop to zero is deleted in the same statement sequence, so an erased number leaves no
  trace here.

A write applies a case's or an event's contribution with a sign: ``-1`` for the row as it was before the write,
``+1`` for the row as it is after. Both are computed by the same SQL from the stored row (and the migrations' backfill
runs the same statements over all rows), so the roll-ups hold exactly what grouping the rows would give. Rows of the
other tables that drop to zero stay (the stats read only positive ones).

The writes that change what they count: a case inserted or rewritten (``SqlCaseRepository._insert_case``,
``_compare_and_set``: every transition, joining event and callback goes through it), an event inserted
(``_insert_event``), cases and their events deleted (retention and erasure, ``SqlPrivacyRepository._delete``). A second
report merged into a recorded call changes neither its line, its time, its caller nor its being a call (both are
calls).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.domain.events import WITHHELD
from bot.storage.database import Cursor, Dialect

TIME_ZONE = "Europe/Berlin"
"""The team's time zone: the roll-ups' days are its calendar days."""
CALL_KINDS = ("missed_call", "voicemail")
STEPS = ("claimed", "done")
ROLLUP_TABLES = ("stats_case_days", "stats_durations", "stats_call_hours", "stats_caller_days")
BUCKETS: tuple[tuple[int | None, int], ...] = ((10, 1), (60, 5), (4 * 60, 15), (7 * 24 * 60, 60), (None, 24 * 60))
"""Duration buckets in minutes, ``(below, width)``: a duration below ``below`` (None: any) is rounded down to a
multiple of ``width`` — the minute below 10 minutes, 5 minutes below an hour, 15 minutes below 4 hours, the hour below
7 days, the day beyond. At most 10 + 10 + 12 + 164 buckets plus one per day of the longest duration kept."""


def elapsed_seconds_sql(dialect: Dialect, start: str, end: str) -> str:
    """Wall-clock seconds between two timestamp columns."""
    if dialect.name == "postgresql":
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    # SQLite stores fixed-width ISO text in UTC; julianday reads it.
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def local_day_sql(dialect: Dialect, column: str) -> str:
    """The calendar day (``YYYY-MM-DD``) of a timestamp column in Europe/Berlin.

    SQLite has no time zones: the EU rule (summer time from the last Sunday of March to the last Sunday of October,
    switching at 01:00 UTC, in force since 1996) is written out. The last Sunday of a month with 31 days is the first
    Sunday on or after its 25th.
    """
    if dialect.name == "postgresql":
        return f"to_char({column} AT TIME ZONE '{TIME_ZONE}', 'YYYY-MM-DD')"
    year = f"substr({column}, 1, 4)"
    summer = (
        f"{column} >= date({year} || '-03-25', 'weekday 0') || 'T01' "
        f"AND {column} < date({year} || '-10-25', 'weekday 0') || 'T01'"
    )
    return f"date({column}, CASE WHEN {summer} THEN '+2 hours' ELSE '+1 hours' END)"


def utc_hour_sql(dialect: Dialect, column: str) -> str:
    """The UTC hour of a timestamp column: a timestamp on PostgreSQL, ``YYYY-MM-DDTHH`` text on SQLite."""
    if dialect.name == "postgresql":
        return f"date_trunc('hour', {column})"
    return f"substr({column}, 1, 13)"  # the fixed-width UTC text up to the hour


def minutes_sql(dialect: Dialect, start: str, end: str) -> str:
    """Whole minutes between two timestamp columns, rounded."""
    return f"CAST(ROUND({elapsed_seconds_sql(dialect, start, end)} / 60.0) AS INTEGER)"


def duration_bucket(minutes: int) -> int:
    """The bucket (its lowest minute) of a duration in whole minutes, as :func:`bucket_sql` computes it."""
    for below, width in BUCKETS:
        if below is None or minutes < below:
            return minutes if width == 1 else minutes // width * width
    raise AssertionError("the last bucket has no bound")


def bucket_sql(minutes: str) -> str:
    """:func:`duration_bucket` of an integer SQL expression (integer division truncates, as ``//`` does from 10 on)."""
    cases = [
        f"{'ELSE' if below is None else f'WHEN {minutes} < {below} THEN'} "
        + (minutes if width == 1 else f"{minutes} / {width} * {width}")
        for below, width in BUCKETS
    ]
    return f"CASE {' '.join(cases)} END"


def durations_sql(dialect: Dialect, step: str, where: str, *, by_day: bool = True) -> str:
    """One row per case matching ``where`` that reached ``step``: line, local day of creation (NULL without
    ``by_day``), person, name ('' for none) and duration bucket. The writes group it by day; the stats read the partial
    days at a period's edges from it, where the day does not matter."""
    day = local_day_sql(dialect, "created_at") if by_day else "NULL"
    return (
        f"SELECT line_id, day, actor_id, actor_name, {bucket_sql('m')} AS bucket FROM ("  # noqa: S608 - fixed SQL
        f"SELECT line_id, {day} AS day, COALESCE({step}_by_id, '') AS actor_id, "
        f"COALESCE({step}_by_name, '') AS actor_name, {minutes_sql(dialect, 'created_at', f'{step}_at')} AS m "
        f"FROM cases WHERE ({where}) AND {step}_at IS NOT NULL) durations"
    )


def _case_statements(dialect: Dialect, where: str, sign: int) -> list[str]:
    day = local_day_sql(dialect, "created_at")
    statements = [
        "INSERT INTO stats_case_days (line_id, day, cases, done) "  # noqa: S608 - fixed SQL fragments
        f"SELECT line_id, {day}, {sign} * COUNT(*), {sign} * SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END) "
        f"FROM cases WHERE {where} GROUP BY 1, 2 "
        "ON CONFLICT (line_id, day) DO UPDATE SET cases = stats_case_days.cases + excluded.cases, "
        "done = stats_case_days.done + excluded.done"
    ]
    for step in STEPS:
        statements.append(
            "INSERT INTO stats_durations (step, line_id, day, actor_id, actor_name, bucket, n) "  # noqa: S608
            f"SELECT '{step}', line_id, day, actor_id, actor_name, bucket, {sign} * COUNT(*) "
            f"FROM ({durations_sql(dialect, step, where)}) cases_of_step GROUP BY 1, 2, 3, 4, 5, 6 "
            "ON CONFLICT (step, line_id, day, actor_id, actor_name, bucket) "
            "DO UPDATE SET n = stats_durations.n + excluded.n"
        )
    return statements


def callers_sql(where: str) -> str:
    """The calls matching ``where`` that have a caller's number (withheld and unknown callers are nobody)."""
    kinds = ", ".join(f"'{kind}'" for kind in CALL_KINDS)
    return f"({where}) AND kind IN ({kinds}) AND caller IS NOT NULL AND caller <> '{WITHHELD}'"


def _event_statements(dialect: Dialect, where: str, sign: int) -> list[str]:
    hour, day = utc_hour_sql(dialect, "received_at"), local_day_sql(dialect, "received_at")
    kinds = ", ".join(f"'{kind}'" for kind in CALL_KINDS)
    return [
        "INSERT INTO stats_call_hours (line_id, hour, calls) "  # noqa: S608 - fixed SQL fragments
        f"SELECT line_id, {hour}, {sign} * COUNT(*) FROM events WHERE ({where}) AND kind IN ({kinds}) "
        "GROUP BY 1, 2 ON CONFLICT (line_id, hour) DO UPDATE SET calls = stats_call_hours.calls + excluded.calls",
        "INSERT INTO stats_caller_days (line_id, day, caller, calls) "  # noqa: S608 - fixed SQL fragments
        f"SELECT line_id, {day}, caller, {sign} * COUNT(*) FROM events WHERE {callers_sql(where)} GROUP BY 1, 2, 3 "
        "ON CONFLICT (line_id, day, caller) DO UPDATE SET calls = stats_caller_days.calls + excluded.calls",
    ]


def _forgotten_callers_statement(dialect: Dialect, where: str) -> str:
    """Delete the caller rows that the events matching ``where`` took down to zero: no number outlives its calls."""
    day = local_day_sql(dialect, "received_at")
    return (
        "DELETE FROM stats_caller_days WHERE calls = 0 AND (line_id, day, caller) IN "  # noqa: S608 - fixed SQL
        f"(SELECT line_id, {day}, caller FROM events WHERE {callers_sql(where)})"
    )


def backfill_sql(dialect: Dialect) -> str:
    """Migration 0014's backfill: cases per day and calls per hour (``;``-separated statements). Its per-minute
    histogram (``stats_minutes``) is left empty: migration 0015 replaces it."""
    return ";\n".join([_case_statements(dialect, "1 = 1", 1)[0], _event_statements(dialect, "1 = 1", 1)[0]])


def backfill_0015_sql(dialect: Dialect) -> str:
    """Migration 0015's backfill: the duration buckets and the callers per day, by the statements the writes use."""
    return ";\n".join([*_case_statements(dialect, "1 = 1", 1)[1:], *_event_statements(dialect, "1 = 1", 1)[1:]])


def migration_terms(dialect: Dialect) -> dict[str, str]:
    """What migrations 0014 and 0015 fill in for their dialect."""
    return {
        "without_rowid": " WITHOUT ROWID" if dialect.name == "sqlite" else "",
        "stats_rollup_backfill": backfill_sql(dialect),
        "stats_rollup_backfill_0015": backfill_0015_sql(dialect),
    }


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


async def count_cases(cursor: Cursor, dialect: Dialect, case_ids: Sequence[str], sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) what these cases, as stored now, contribute to the roll-ups."""
    if case_ids:
        where = f"id IN ({_marks(case_ids)})"
        await cursor.execute_all([(statement, tuple(case_ids)) for statement in _case_statements(dialect, where, sign)])


async def count_events(cursor: Cursor, dialect: Dialect, where: str, params: Sequence[Any], sign: int) -> None:
    """Add or take away what the events matching ``where`` (``source_id = ?``, ``case_id IN (…)``) contribute."""
    statements = _event_statements(dialect, where, sign)
    if sign < 0:
        statements.append(_forgotten_callers_statement(dialect, where))
    await cursor.execute_all([(statement, tuple(params)) for statement in statements])


async def rebuild(cursor: Cursor, dialect: Dialect) -> None:
    """Recount the roll-ups from the rows (what the migrations' backfill does; for stores seeded by raw SQL)."""
    for table in ROLLUP_TABLES:
        await cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    for statement in [*backfill_sql(dialect).split(";\n"), *backfill_0015_sql(dialect).split(";\n")]:
        await cursor.execute(statement)


async def rewrite_cases(
    cursor: Cursor,
    dialect: Dialect,
    case_ids: Sequence[str],
    write: Callable[[], Awaitable[int]],
    version: int | None = None,
) -> int:
    """Run ``write`` (an UPDATE or DELETE of these cases; returns the rows it changed) with the roll-ups following.

    The cases' rows are locked first (and, with ``version``, checked: nothing happens when the version moved on), so
    that what is taken away is what the write replaces, also under PostgreSQL's read committed; what the rows hold
    after the write is added back.
    """
    if not case_ids:
        return 0
    where = f"id IN ({_marks(case_ids)})"
    params: list[Any] = list(case_ids)
    if version is not None:
        where, params = f"{where} AND version = ?", [*params, version]
    locked = await cursor.execute(f"UPDATE cases SET version = version WHERE {where}", params)  # noqa: S608
    if locked == 0:
        return 0
    await count_cases(cursor, dialect, case_ids, -1)
    changed = await write()
    await count_cases(cursor, dialect, case_ids, 1)
    return changed


async def forget_cases(cursor: Cursor, dialect: Dialect, case_ids: Sequence[str]) -> None:
    """Before these cases and their events are deleted: lock the cases and take away what they and their events
    contribute."""
    if case_ids:
        await cursor.execute(f"UPDATE cases SET version = version WHERE id IN ({_marks(case_ids)})", case_ids)  # noqa: S608
        await count_cases(cursor, dialect, case_ids, -1)
        await count_events(cursor, dialect, f"case_id IN ({_marks(case_ids)})", case_ids, -1)
