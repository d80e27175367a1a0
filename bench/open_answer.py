"""The ``open`` answer at scale: N active cases in a store, the answer (query + card) built many times.

Seeds ``--cases`` open and claimed cases on three lines linked to one channel through the store's own
``record_event`` and ``transition`` (a SQLite file in a temporary folder, and PostgreSQL when reachable), then times
what a user waits for: the first page of ``open`` in the channel, the last page (the deepest ``OFFSET``), ``open``
in personal chat and ``mine``. Prints median and p95 in milliseconds and the largest card in KB.

    python -m bench.run [--cases 10000] [--repeat 200] [--postgres URL | --no-postgres]

Targets (issue 7): at most 100 ms per answer and at most 40 KB per card with 10,000 open cases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.config import PoolLine, Settings
from bot.core.actions import ActionRequest
from bot.core.commands import CommandRequest, Commands
from bot.core.effects import no_effects
from bot.core.ports import ChannelLink, Store
from bot.domain.cases import Actor
from bot.domain.events import CallEvent, EventKind, MailSource
from bot.domain.state_machine import Verb
from bot.storage.factory import open_store
from cards.list_card import LIST_PAGE_VERB, PAGE_SIZE
from sandbox.schemas import fresh_postgres_schema, postgres_problem

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_MS = 100.0
TARGET_KB = 40.0
TENANT = "bench-tenant"
TEAM_ID = "19:bench-team@thread.tacv2"
CHANNEL_ID = "19:bench-channel@thread.tacv2"
LINE_IDS = ("zentrale", "empfang", "labor")
CLAIMED_EVERY = 5
"""Every fifth case is claimed (by one of a few users), so rows show claimants and ``mine`` has work to do."""
CLAIMERS = tuple(Actor(f"aad-bench-{n}", f"Mitarbeiterin Nummer {n} Mustermann-Lüdenscheidt") for n in range(4))
SEED_CONCURRENCY = 8
CLAIM_TIMEOUT = timedelta(minutes=120)


@dataclass(frozen=True, slots=True)
class Timing:
    scenario: str
    median_ms: float
    p95_ms: float
    card_kb: float


@dataclass(frozen=True, slots=True)
class BackendResult:
    backend: str
    cases: int
    seed_seconds: float
    timings: list[Timing]


def bench_settings() -> Settings:
    lines = [
        PoolLine(
            id=line_id,
            mailbox=f"{line_id}@praxis.example",
            numbers=[f"+4930123450{n}"],
            display_name=f"{line_id.title()} Praxisgemeinschaft Dr. med. Beispiel",
        )
        for n, line_id in enumerate(LINE_IDS)
    ]
    return Settings(  # type: ignore[call-arg]
        _env_file=None, sandbox_mode=True, graph_client_state=SecretStr("bench-client-state"), pool_lines=lines
    )


def _event(n: int, now: datetime, total: int) -> CallEvent:
    line_id = LINE_IDS[n % len(LINE_IDS)]
    mailbox = f"{line_id}@praxis.example"
    message_id = f"bench-{n:06d}"
    return CallEvent(
        source_id=CallEvent.source_id_for(mailbox, message_id),
        kind=EventKind.MISSED_CALL,
        line_id=line_id,
        caller=f"+49171{n:07d}",
        received_at=now - timedelta(minutes=total - n),
        mail=MailSource(mailbox, message_id, subject=f"Verpasster Anruf {n}", sender="no-reply@placetel.de"),
        caller_name=f"Patientin {n} von Mustermann-Lüdenscheidt",
    )


async def seed(store: Store, cases: int, now: datetime) -> None:
    """``cases`` active cases, one caller each, a minute apart; every :data:`CLAIMED_EVERY`-th one claimed."""
    for line_id in LINE_IDS:
        await store.links.link_channel(
            ChannelLink(line_id, TENANT, TEAM_ID, CHANNEL_ID, "https://bench.invalid/", "bench", now)
        )
    limit = asyncio.Semaphore(SEED_CONCURRENCY)

    async def one(n: int) -> None:
        async with limit:
            outcome = await store.cases.record_event(_event(n, now, cases), effects=no_effects)
            if n % CLAIMED_EVERY == 0:
                claimer = CLAIMERS[n % len(CLAIMERS)]
                await store.cases.transition(
                    outcome.case.id, Verb.CLAIM, claimer, now, CLAIM_TIMEOUT, effects=no_effects
                )

    await asyncio.gather(*(one(n) for n in range(cases)))


def _card_kb(card: dict[str, Any] | None) -> float:
    """Size of the card as the connector receives it (JSON, non-ASCII escaped as botbuilder sends it)."""
    return len(json.dumps(card).encode()) / 1024


async def _time(scenario: str, answer: Callable[[], Awaitable[dict[str, Any] | None]], repeat: int) -> Timing:
    for _ in range(min(5, repeat)):
        await answer()
    samples, largest = [], 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        card = await answer()
        samples.append((time.perf_counter() - started) * 1000)
        largest = max(largest, _card_kb(card))
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[18] if len(samples) > 1 else samples[0]
    return Timing(scenario, statistics.median(samples), p95, largest)


async def measure(store: Store, cases: int, repeat: int) -> list[Timing]:
    """Time each scenario ``repeat`` times against an already seeded store."""
    commands = Commands(bench_settings(), store)
    reader = CLAIMERS[0]

    def request(text: str, channel_id: str | None) -> CommandRequest:
        async def any_team(team_id: str) -> bool:
            return True

        return CommandRequest(
            text=text,
            actor=reader,
            actor_upn=None,
            tenant_id=TENANT,
            conversation_id=channel_id or "a:bench-personal-chat",
            service_url="",
            team_id=TEAM_ID if channel_id else None,
            channel_id=channel_id,
            locale="de-DE",
            is_team_member=any_team,
        )

    async def command(text: str, channel_id: str | None) -> dict[str, Any] | None:
        return (await commands.handle(request(text, channel_id))).card

    last_offset = max(0, (cases - 1) // PAGE_SIZE * PAGE_SIZE)
    last_page = ActionRequest(
        verb=LIST_PAGE_VERB,
        data={"command": "open", "offset": last_offset},
        actor=reader,
        tenant_id=TENANT,
        conversation_id=CHANNEL_ID,
        channel_id=CHANNEL_ID,
        locale="de-DE",
    )

    async def deepest_page() -> dict[str, Any] | None:
        return (await commands.list_page(last_page)).card

    return [
        await _time("open, channel, first page", lambda: command("open", CHANNEL_ID), repeat),
        await _time("open, channel, last page", deepest_page, repeat),
        await _time("open, personal chat", lambda: command("open", None), repeat),
        await _time("mine, channel", lambda: command("mine", CHANNEL_ID), repeat),
    ]


async def bench_backend(backend: str, database_url: str, cases: int, repeat: int) -> BackendResult:
    store = await open_store(database_url)
    try:
        started = time.perf_counter()
        await seed(store, cases, datetime.now(UTC))
        seed_seconds = time.perf_counter() - started
        return BackendResult(backend, cases, seed_seconds, await measure(store, cases, repeat))
    finally:
        await store.close()


async def run(cases: int, repeat: int, postgres_url: str | None) -> list[BackendResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="rufpool-bench-") as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        results.append(await bench_backend("SQLite (file, WAL)", sqlite_url, cases, repeat))
    if postgres_url is not None:
        problem = postgres_problem(postgres_url)
        if problem is not None:
            print(f"PostgreSQL at {postgres_url} not reachable, skipped: {problem}", file=sys.stderr)
        else:
            async with fresh_postgres_schema(postgres_url) as url:
                results.append(await bench_backend("PostgreSQL", url, cases, repeat))
    return results


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def report(results: Sequence[BackendResult], repeat: int) -> str:
    lines = [f"Machine: {machine()}", f"Repetitions per scenario: {repeat}", ""]
    header = f"{'backend':<20} {'scenario':<28} {'median ms':>10} {'p95 ms':>8} {'card KB':>8}  targets"
    lines.append(header)
    lines.append("-" * len(header))
    for result in results:
        for timing in result.timings:
            within = timing.p95_ms <= TARGET_MS and timing.card_kb <= TARGET_KB
            lines.append(
                f"{result.backend:<20} {timing.scenario:<28} {timing.median_ms:>10.2f} {timing.p95_ms:>8.2f} "
                f"{timing.card_kb:>8.1f}  {'met' if within else 'MISSED'}"
            )
        lines.append(f"{result.backend:<20} {result.cases} cases seeded in {result.seed_seconds:.1f} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="active cases to seed (default 10000)")
    parser.add_argument("--repeat", type=int, default=200, help="timed answers per scenario (default 200)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="PostgreSQL server (a fresh schema is created and dropped); skipped when unreachable",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.repeat < 1:
        parser.error("--cases and --repeat must be at least 1")
    results = asyncio.run(run(args.cases, args.repeat, None if args.no_postgres else args.postgres))
    print(report(results, args.repeat))
    # ru_maxrss is in KiB on Linux: the benchmark process holds the seeded stores' caches and every page built.
    print(f"Peak memory of the benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
