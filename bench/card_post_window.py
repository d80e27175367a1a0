"""The window in which a card can be posted twice when the lookup in the channel is not possible.

Between Teams accepting a card's POST and the transaction that saves its activity id, a crash leaves the outcome
unknown; where the poster cannot look the card up (a line linked before the team's group id was recorded) the next
attempt posts again. That window is the save: this prints how long ``save_card`` takes (median and 99th percentile)
on SQLite and, when reachable, PostgreSQL, beside ``begin_post`` (the intent written before the POST) as the
same-run reference.

Run: ``python -m bench.card_post_window [rounds]``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.core.effects import no_effects
from bot.core.ports import CardRef, Store
from bot.domain.events import CallEvent, EventKind, MailSource
from bot.storage.factory import open_store
from sandbox.schemas import fresh_postgres_schema, postgres_problem

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _event(n: int) -> CallEvent:
    mail = MailSource("line-1@example.com", f"m{n}", subject="Anruf", sender="noreply@placetel.de")
    return CallEvent(
        source_id=CallEvent.source_id_for(mail.mailbox, mail.message_id),
        kind=EventKind.MISSED_CALL,
        line_id="line-1",
        caller=f"+4930555{n:05d}",
        received_at=datetime.now(UTC),
        mail=mail,
    )


async def _timed(rounds: int, step: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    took = []
    for n in range(rounds):
        started = time.perf_counter()
        await step(n)
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.99) - 1]


async def _measure(name: str, store: Store, rounds: int) -> None:
    cases = [(await store.cases.record_event(_event(n), effects=no_effects)).case.id for n in range(rounds)]
    now = datetime.now(UTC)
    intent = await _timed(rounds, lambda n: store.cards.begin_post(cases[n], now))
    saved = await _timed(rounds, lambda n: store.cards.save_card(CardRef(cases[n], f"19:c;messageid={n}", str(n), 1)))
    print(f"{name:10} save_card median {saved[0]:6.2f} ms  p99 {saved[1]:6.2f} ms   "
          f"(begin_post median {intent[0]:6.2f} ms  p99 {intent[1]:6.2f} ms)")  # fmt: skip


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = await open_store(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
        try:
            await _measure("SQLite", store, rounds)
        finally:
            await store.close()
    if postgres_problem(POSTGRES_URL) is None:
        async with fresh_postgres_schema(POSTGRES_URL) as url:
            store = await open_store(url)
            try:
                await _measure("PostgreSQL", store, rounds)
            finally:
                await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
