"""Job scheduling: live work before backlog, waiting for a rate limit without holding a worker, and a WAL that
starts over under steady writes. Checked by what happens, never by how long it takes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.jobs import JobRunner, RunLater
from bot.core.ports import JobPriority
from bot.storage import database as database_module
from bot.storage.factory import open_store
from bot.storage.sql_store import SqlStore

LEASE = timedelta(minutes=1)


def _size(path: Path) -> int:
    return path.stat().st_size


async def test_live_jobs_are_leased_before_older_backlog(store: SqlStore) -> None:
    backlog = [await store.jobs.enqueue("teams.card", {"n": n}, priority=JobPriority.BACKLOG) for n in range(20)]
    live = await store.jobs.enqueue("teams.card", {"live": True})

    first = await store.jobs.lease("w", ["teams.card"], LEASE)
    rest = await store.jobs.lease("w", ["teams.card"], LEASE, limit=3)

    assert [job.id for job in first] == [live]
    assert [job.id for job in rest] == backlog[:3]  # backlog in its own order after that


async def test_a_deferred_job_comes_back_after_its_time_without_spending_an_attempt(store: SqlStore) -> None:
    job_id = await store.jobs.enqueue("teams.card", {})
    (job,) = await store.jobs.lease("w", ["teams.card"], LEASE)

    await store.jobs.defer(job, "w", datetime.now(UTC) + timedelta(hours=1))

    assert await store.jobs.lease("w", ["teams.card"], LEASE) == []  # not before its time
    await store.jobs.defer(job, "w", datetime.now(UTC))  # its lease is gone: nothing changes
    async with store.database.transaction() as cursor:
        await cursor.execute("UPDATE jobs SET run_at = ? WHERE id = ?", (datetime.now(UTC), job_id))
    (again,) = await store.jobs.lease("w", ["teams.card"], LEASE)
    assert again.id == job_id
    assert again.attempts == 1  # the deferred run did not count


async def test_a_job_waiting_for_a_slot_does_not_hold_its_worker(store: SqlStore) -> None:
    """One worker: a job that must wait is deferred, and the worker runs the next job meanwhile."""
    ran: list[str] = []

    async def card(payload: dict[str, Any]) -> None:
        if payload["name"] == "paced":
            raise RunLater("waiting for Teams", timedelta(hours=1))
        ran.append(payload["name"])

    runner = JobRunner(store.jobs, {"teams.card": card}, concurrency=1, idle_poll=0.01)
    await store.jobs.enqueue("teams.card", {"name": "paced"})
    await store.jobs.enqueue("teams.card", {"name": "live"})
    await runner.run_until_idle()

    assert ran == ["live"]
    depth = await store.jobs.depth()
    assert depth["pending"] == 1 and depth["dead"] == 0
    async with store.database.read() as cursor:
        await cursor.execute("SELECT attempts, last_error FROM jobs WHERE state = 'pending'")
        waiting = await cursor.fetchone()
    assert waiting == {"attempts": 0, "last_error": None}  # waiting is not failing


async def test_the_wal_starts_over_under_steady_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database_module, "CHECKPOINT_INTERVAL_S", 0.005)
    path = tmp_path / "steady.sqlite3"
    store = await open_store(f"sqlite:///{path}")
    try:
        remaining = iter(range(3000))

        async def write_steadily() -> None:  # writers that never pause: a checkpoint beside them never catches up
            for n in remaining:
                await store.jobs.enqueue("k", {"padding": "x" * 2000}, dedupe_key=str(n))

        await asyncio.gather(*(write_steadily() for _ in range(8)))
        written = 3000 * 2000
        # Without starting over, the WAL holds every page written: about four times the payload (24 MB here).
        assert _size(Path(f"{path}-wal")) < 2 * written
    finally:
        await store.close()
