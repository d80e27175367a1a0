"""``statistik`` at scale: the stats of 100,000 cases over 30 days, computed by SQL in the store.

Seeds ``--cases`` cases (about 1.5 calls each) on three lines over 30 days with raw multi-row INSERTs (a SQLite file
in a temporary folder, and PostgreSQL when reachable) and counts the daily roll-ups as the migrations' backfill does,
then times :meth:`StatsQueries.team_stats` for all three lines and the whole period (the heaviest question a team can
ask); measured in the same run: the same answer computed from the rows without the roll-ups (checked to be equal),
and as the reference reading the same cases' rows into Python without computing anything. Prints median and p95 and
the ratio to the reference.

    python -m bench.stats [--cases 100000] [--repeat 30] [--spread-days 30] [--postgres URL | --no-postgres]

``--spread-days 365`` spreads the cases over a year: a store with a year of history asked for the last 30 days.

Target (issue 21): at most 200 ms for 100,000 cases.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.open_answer import DEFAULT_POSTGRES_URL, LINE_IDS, machine
from bot.stats.model import Period
from bot.stats.queries import StatsQueries, split_days, split_hours
from bot.storage import stats_rollups
from bot.storage.database import Cursor, Database
from bot.storage.factory import open_store, sql_database
from cards.i18n import BERLIN
from sandbox.schemas import fresh_postgres_schema, postgres_problem

TARGET_MS = 200.0
DAYS = 30
BATCH = 500
PEOPLE = [(f"aad-bench-{n}", f"Mitarbeiterin {n}") for n in range(8)]
CASE_COLUMNS = (
    "id, line_id, caller, caller_key, state, version, created_at, updated_at, claimed_by_id, claimed_by_name, "
    "claimed_at, done_by_id, done_by_name, done_at, reopened"
)
EVENT_COLUMNS = "source_id, case_id, kind, line_id, caller, received_at, mailbox, message_id, subject, sender"


def _cases(
    count: int, now: datetime, rng: random.Random, spread_days: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    start = now - timedelta(days=spread_days)
    cases, events = [], []
    for n in range(count):
        line_id = LINE_IDS[n % len(LINE_IDS)]
        created = start + timedelta(seconds=rng.uniform(0, spread_days * 86400 - 7200))
        roll = rng.random()
        state = "done" if roll < 0.85 else "claimed" if roll < 0.95 else "open"
        # Done cases' callers come from a pool (repeat callers); active ones are unique per line (the schema says so).
        caller = f"+49171{rng.randrange(60_000):07d}" if state == "done" else f"+49160{n:07d}"
        claimer = rng.choice(PEOPLE) if state != "open" and rng.random() < 0.95 else None
        claimed_at = created + timedelta(minutes=rng.lognormvariate(2.5, 1.0)) if claimer else None
        done_at = (claimed_at or created) + timedelta(minutes=rng.lognormvariate(3.0, 1.0)) if state == "done" else None
        doer = (claimer or rng.choice(PEOPLE)) if state == "done" else None
        cases.append((
            f"case-{n:07d}", line_id, caller, caller, state, 3, created, done_at or claimed_at or created,
            claimer[0] if claimer else None, claimer[1] if claimer else None, claimed_at,
            doer[0] if doer else None, doer[1] if doer else None, done_at, 0,
        ))  # fmt: skip
        for k in range(1 + (rng.random() < 0.5)):
            received = created + timedelta(minutes=7 * k)
            mailbox = f"{line_id}@praxis.example"
            events.append((f"mail:{mailbox}:m{n}-{k}", f"case-{n:07d}", "missed_call", line_id, caller, received,
                           mailbox, f"m{n}-{k}", "Verpasster Anruf", "no-reply@placetel.de"))  # fmt: skip
    return cases, events


async def _insert(database: Database, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    width = len(rows[0])
    for first in range(0, len(rows), BATCH):
        chunk = rows[first : first + BATCH]
        values = ", ".join(["(" + ", ".join("?" * width) + ")"] * len(chunk))
        async with database.transaction() as cursor:
            await cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {values}", [v for row in chunk for v in row])


async def seed(database: Database, count: int, now: datetime, spread_days: int = DAYS) -> None:
    cases, events = _cases(count, now, random.Random(21), spread_days)
    await _insert(database, "cases", CASE_COLUMNS, cases)
    await _insert(database, "events", EVENT_COLUMNS, events)
    # Raw INSERTs bypass the store's writes: count the roll-ups as the migrations' backfills do.
    async with database.transaction() as cursor:
        await stats_rollups.rebuild(cursor, database.dialect)
    # Steady state: the planner's statistics and (PostgreSQL) the visibility map that index-only scans need are what
    # autovacuum maintains in a running system.
    if database.dialect.name == "postgresql":
        await vacuum_postgres(database)
    else:
        async with database.transaction() as cursor:
            await cursor.execute("ANALYZE")


async def vacuum_postgres(database: Database) -> None:
    """VACUUM cannot run in a transaction: run it on a connection of its own from the pool."""
    pool = database._pool  # type: ignore[attr-defined]
    async with pool.connection() as connection:
        await connection.set_autocommit(True)
        for table in ("cases", "events", *stats_rollups.ROLLUP_TABLES):
            await connection.execute(f"VACUUM ANALYZE {table}")
        await connection.set_autocommit(False)


async def _time(action: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, float]:
    for _ in range(3):
        await action()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[18] if len(samples) > 1 else samples[0]
    return statistics.median(samples), p95


async def _by_question(database: Database, queries: StatsQueries, period: Period, repeat: int) -> str:
    """Each of ``team_stats``' questions alone, in a transaction of its own: where the time goes."""
    lines, days, hours = tuple(sorted(LINE_IDS)), split_days(period), split_hours(period)
    questions: dict[str, Callable[[Cursor], Awaitable[object]]] = {
        "counts": lambda cursor: queries._case_counts(cursor, lines, days),
        "to claim": lambda cursor: queries._histograms(cursor, lines, days, "claimed"),
        "to done": lambda cursor: queries._histograms(cursor, lines, days, "done"),
        "calls per hour": lambda cursor: queries._calls_by_line_and_hour(cursor, lines, hours),
        "repeat callers": lambda cursor: queries._repeat_callers(cursor, lines, days),
    }
    medians = []
    for question, ask in questions.items():

        async def once(ask: Callable[[Cursor], Awaitable[object]] = ask) -> None:
            async with database.transaction() as cursor:
                await ask(cursor)

        median, _p95 = await _time(once, repeat)
        medians.append(f"{question} {median:.1f}")
    return ", ".join(medians)


async def bench_backend(name: str, database_url: str, count: int, repeat: int, spread_days: int) -> list[str]:
    store = await open_store(database_url)
    try:
        database = sql_database(store)
        now = datetime.now(UTC)
        started = time.perf_counter()
        await seed(database, count, now, spread_days)
        seeded = time.perf_counter() - started
        period = Period(now - timedelta(days=DAYS), now)
        queries, from_rows = StatsQueries(database), StatsQueries(database, rollups=False)
        stats = await queries.team_stats(list(LINE_IDS), period, BERLIN)
        if spread_days == DAYS:
            assert stats.total.cases == count, stats.total
        assert stats == await from_rows.team_stats(list(LINE_IDS), period, BERLIN), "roll-ups differ from the rows"

        async def read_rows() -> None:
            async with database.transaction() as cursor:
                await cursor.execute(
                    "SELECT line_id, created_at, claimed_at, done_at, claimed_by_id FROM cases "
                    "WHERE created_at >= ? AND created_at < ?",
                    (period.start, period.end),
                )
                await cursor.fetchall()

        parts = await _by_question(database, queries, period, repeat)
        median, p95 = await _time(lambda: queries.team_stats(list(LINE_IDS), period, BERLIN), repeat)
        raw_median, raw_p95 = await _time(lambda: from_rows.team_stats(list(LINE_IDS), period, BERLIN), repeat)
        ref_median, ref_p95 = await _time(read_rows, repeat)
        verdict = "met" if p95 <= TARGET_MS else "MISSED"
        return [
            f"{name:<20} team_stats, 3 lines, {DAYS} days      {median:>9.1f} {p95:>9.1f}  {verdict}",
            f"{name:<20} same from the rows (no roll-ups)  {raw_median:>9.1f} {raw_p95:>9.1f}",
            f"{name:<20} reference: read the rows only  {ref_median:>9.1f} {ref_p95:>9.1f}",
            f"{name:<20} ratio stats / reference (median): {median / ref_median:.2f}; {count} cases over "
            f"{spread_days} days seeded in {seeded:.1f} s, {stats.total.cases} cases and {stats.total.calls} calls "
            f"in the {DAYS} days asked for",
            f"{name:<20} with roll-ups, median ms per question: {parts}",
        ]
    finally:
        await store.close()


async def run(count: int, repeat: int, postgres_url: str | None, spread_days: int) -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory(prefix="rufpool-bench-stats-") as folder:
        url = f"sqlite:///{Path(folder) / 'stats.sqlite3'}"
        lines += await bench_backend("SQLite (file, WAL)", url, count, repeat, spread_days)
    if postgres_url is not None:
        problem = postgres_problem(postgres_url)
        if problem is not None:
            print(f"PostgreSQL at {postgres_url} not reachable, skipped: {problem}", file=sys.stderr)
        else:
            async with fresh_postgres_schema(postgres_url) as url:
                lines += await bench_backend("PostgreSQL", url, count, repeat, spread_days)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--spread-days", type=int, default=DAYS, help="days the cases are spread over (default 30: all in the period)"
    )
    args = parser.parse_args(argv)
    if args.cases < 1 or args.repeat < 1:
        parser.error("--cases and --repeat must be at least 1")
    if args.spread_days < DAYS:
        parser.error(f"--spread-days must be at least {DAYS}")
    lines = asyncio.run(run(args.cases, args.repeat, None if args.no_postgres else args.postgres, args.spread_days))
    print(f"Machine: {machine()}\nRepetitions: {args.repeat}, target p95 <= {TARGET_MS:.0f} ms\n")
    print(f"{'backend':<20} {'scenario':<32} {'median ms':>9} {'p95 ms':>9}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
