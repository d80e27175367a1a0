"""``make bench``: every performance target of the project, each with a reference measured in the same run.

    python -m bench.run [--only e2e,open] [--no-postgres] [--graph-latency-ms 50] [--teams-latency-ms 100]
                        [--cases 10000] [--repeat 200] [--quick]

``e2e`` starts the bot as its own process (``python -m bot``) against the stand-ins, on SQLite (all rows) and on
PostgreSQL (start-up, mail → card, claims, notifications); ``--only`` also takes its rows one by one (``mail``,
``claim``, ``notify``, ``burst``, ``catchup``). ``open`` is the ``open``/``mine`` answer at 10,000 cases
(:mod:`bench.open_answer`). References: a bare aiohttp 202 handler for the webhook, the least time Teams' per-thread
limits allow for the burst, the least number of Graph requests for the catch-up. Prints measured, reference, ratio
and target per row, with the machine and its load; never fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import open_answer
from bench.end_to_end import ROWS, Options, Row, bench_backend
from sandbox.schemas import fresh_postgres_schema, postgres_problem

DEFAULT_POSTGRES_URL = open_answer.DEFAULT_POSTGRES_URL
PARTS = ("e2e", *ROWS, "open")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


async def end_to_end(options: Options) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rufpool-bench-") as temporary:
        folder = os.environ.get("BENCH_KEEP_DIR") or temporary  # keep the bot's log and database to look into
        sqlite_url = f"sqlite:///{Path(folder) / 'bot.sqlite3'}"
        rows += await bench_backend("SQLite", sqlite_url, Path(folder), options, full=True)
    if options.postgres_url is not None:
        problem = postgres_problem(options.postgres_url)
        if problem is not None:
            print(f"PostgreSQL at {options.postgres_url} not reachable, skipped: {problem}", file=sys.stderr)
            return rows
        with tempfile.TemporaryDirectory(prefix="rufpool-bench-") as folder:
            async with fresh_postgres_schema(options.postgres_url) as url:
                rows += await bench_backend("PostgreSQL", url, Path(folder), options, full=False)
    return rows


def open_rows(results: Sequence[open_answer.BackendResult]) -> list[Row]:
    rows = []
    for result in results:
        backend = "SQLite" if result.backend.startswith("SQLite") else result.backend
        worst = max(result.timings, key=lambda timing: timing.p95_ms)
        largest = max(timing.card_kb for timing in result.timings)
        rows.append(Row(backend, f"/open at {result.cases:,} cases, p95 (worst of {len(result.timings)} scenarios)",
                        f"{worst.p95_ms:.1f} ms, {largest:.1f} KB", "–", "–", "≤ 100 ms, ≤ 40 KB",
                        worst.p95_ms <= open_answer.TARGET_MS and largest <= open_answer.TARGET_KB))
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = ["| backend | measure | measured | reference | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        met = "–" if row.met is None else ("✔" if row.met else "✗")
        lines.append(f"| {row.backend} | {row.measure} | {row.measured} | {row.reference} | {row.ratio} | "
                     f"{row.target} | {met} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="e2e,open", help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
                        help="PostgreSQL server (fresh schemas, dropped afterwards); skipped when unreachable")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--graph-latency-ms", type=float, default=0.0, help="added to every Graph stand-in answer")
    parser.add_argument("--teams-latency-ms", type=float, default=0.0, help="added to every connector answer")
    parser.add_argument("--cases", type=int, default=10_000, help="open: active cases to seed (default 10000)")
    parser.add_argument("--repeat", type=int, default=200, help="open: timed answers per scenario (default 200)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness (numbers mean little)")
    args = parser.parse_args(argv)
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    if unknown := parts - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    if args.cases < 1 or args.repeat < 1:
        parser.error("--cases and --repeat must be at least 1")
    postgres = None if args.no_postgres else args.postgres
    e2e_rows = frozenset(ROWS) if "e2e" in parts else frozenset(parts & set(ROWS))
    options = Options(graph_latency_s=args.graph_latency_ms / 1000, teams_latency_s=args.teams_latency_ms / 1000,
                      postgres_url=postgres, rows=e2e_rows)
    if args.quick:
        options = dataclasses.replace(options, mails=4, contenders=5, ack_rate=100, ack_seconds=1,
                                      saturation_seconds=1, saturation_clients=(4,), burst_cards=12, catch_up_mails=30)
    print(f"Machine: {open_answer.machine()}")
    print(f"Load average (1 / 5 / 15 min) before: {load()}")
    print(f"Stand-in latency: Graph {args.graph_latency_ms:.0f} ms, Teams {args.teams_latency_ms:.0f} ms", flush=True)
    if keep := os.environ.get("BENCH_KEEP_DIR"):
        Path(keep).mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    if e2e_rows:
        rows += asyncio.run(end_to_end(options))
    if "open" in parts:
        rows += open_rows(asyncio.run(open_answer.run(args.cases, args.repeat, postgres)))
    print(table(rows))
    print(f"Load average (1 / 5 / 15 min) after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
