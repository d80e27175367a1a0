"""The reminder tick at scale: N open cases on a line with reminders, on a fake clock.

Seeds ``--cases`` open cases (SQLite file in a temporary folder, and PostgreSQL when reachable), then times the
ticks that plan them all (in bounded batches), the steady tick when nothing changed (what every instance runs every
30 seconds), and a tick that fires a full batch of due reminders. The reference measured in the same run is the
store's first page of ``open`` (``list_active``); the ratio to it is printed.

    python -m bench.reminders [--cases 10000] [--postgres URL | --no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.core.effects import no_effects
from bot.core.ports import Store
from bot.core.reminders import ReminderService
from bot.domain.events import CallEvent, EventKind, MailSource
from bot.storage.factory import open_store
from sandbox.schemas import fresh_postgres_schema, postgres_problem

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TUESDAY_8 = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
"""08:00 in Berlin on a working Tuesday."""
LINE = {
    "id": "zentrale",
    "mailbox": "zentrale@bench.example",
    "numbers": ["+49 30 1234500"],
    "display_name": "Zentrale",
    "hours": {"weekly": "Mo-Fr 08:00-18:00", "state": "BE"},
    "reminders": {"enabled": True, "mention": [{"id": "aad-bench", "name": "Empfang"}]},
}


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _seed(store: Store, count: int) -> None:
    mailbox = str(LINE["mailbox"])
    for n in range(count):
        event = CallEvent(
            source_id=CallEvent.source_id_for(mailbox, f"bench-{n}"),
            kind=EventKind.MISSED_CALL,
            line_id="zentrale",
            caller=f"+49171{n:07d}",
            received_at=TUESDAY_8 + timedelta(seconds=n % 1200),
            mail=MailSource(mailbox, f"bench-{n}", subject="Anruf", sender="no-reply@placetel.de"),
        )
        await store.cases.record_event(event, effects=no_effects)


async def _ms(action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await action()
    return (time.perf_counter() - start) * 1000, result


async def measure(database_url: str, label: str, count: int) -> None:
    store = await open_store(database_url)
    try:
        await _seed(store, count)
        settings = Settings(_env_file=None, sandbox_mode=True, graph_client_state="s", pool_lines=[LINE])  # type: ignore[call-arg]
        clock = FakeClock(TUESDAY_8 + timedelta(minutes=25))
        service = ReminderService(settings, store.cases, store.reminders, clock)
        planning: list[float] = []
        while True:
            elapsed, result = await _ms(service.tick)
            planning.append(elapsed)
            if not result.planned:
                break
        steady = []
        for _ in range(20):
            clock.now += timedelta(seconds=1)
            steady.append((await _ms(service.tick))[0])
        reference = [(await _ms(lambda: store.cases.list_active(["zentrale"], limit=10)))[0] for _ in range(20)]
        clock.now = TUESDAY_8 + timedelta(minutes=31)
        fire_ms, fired = await _ms(service.tick)
        steady_median, reference_median = statistics.median(steady), statistics.median(reference)
        print(
            f"{label}: {count} open cases planned in {len(planning) - 1} ticks "
            f"(slowest {max(planning):.0f} ms); steady tick median {steady_median:.1f} ms, "
            f"p95 {sorted(steady)[int(len(steady) * 0.95) - 1]:.1f} ms; reference open page {reference_median:.1f} ms "
            f"(ratio {steady_median / reference_median:.1f}); firing {fired.sent} reminders {fire_ms:.0f} ms"
        )
    finally:
        await store.close()


async def main(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        await measure(f"sqlite:///{Path(folder) / 'bench.sqlite3'}", "SQLite", arguments.cases)
    if arguments.no_postgres:
        return
    problem = postgres_problem(arguments.postgres)
    if problem is not None:
        print(f"PostgreSQL skipped: {problem}")
        return
    async with fresh_postgres_schema(arguments.postgres) as url:
        await measure(url, "PostgreSQL", arguments.cases)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--no-postgres", action="store_true")
    asyncio.run(main(parser.parse_args()))
