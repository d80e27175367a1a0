"""The durable job queue / outbox on both stores: leases, retries with backoff and Retry-After, dead letters."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import signal
import subprocess
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from bot.core.ports import JobQueue, JobState, RetryPolicy
from bot.storage.database import Database
from bot.storage.sql_store import SqlStore, backoff_delay
from tests.support.storage import T0, CountingDatabase, start_storage_worker

LEASE = timedelta(seconds=30)
POLICY = RetryPolicy(max_attempts=4, base_delay=timedelta(seconds=2), max_delay=timedelta(seconds=10))


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class HighestJitter(random.Random):
    """Full jitter that always picks the top of its range, so the backoff ceiling becomes observable."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(database: Database, clock: FakeClock) -> JobQueue:
    return SqlStore(database, clock=clock, rng=HighestJitter()).jobs


async def test_enqueue_lease_complete(queue: JobQueue) -> None:
    payload = {"case_id": "c1", "nested": {"n": [1, 2]}}
    job_id = await queue.enqueue("post_card", payload)

    [job] = await queue.lease("w1", ["post_card"], LEASE)
    assert (job.id, job.kind, job.payload, job.attempts) == (job_id, "post_card", payload, 1)
    assert job.created_at == T0
    assert await queue.lease("w2", ["post_card"], LEASE) == []
    assert await queue.depth() == {"pending": 0, "leased": 1, "done": 0, "dead": 0}
    await queue.complete(job, "w1")
    assert await queue.depth() == {"pending": 0, "leased": 0, "done": 1, "dead": 0}


async def test_lease_honours_kinds_run_at_limit_and_order(queue: JobQueue, clock: FakeClock) -> None:
    later = await queue.enqueue("a", {}, run_at=T0 + timedelta(minutes=5))
    first = await queue.enqueue("a", {})
    second = await queue.enqueue("a", {})
    other_kind = await queue.enqueue("b", {})

    assert [job.id for job in await queue.lease("w", ["a"], timedelta(hours=1), limit=10)] == [first, second]
    clock.advance(timedelta(minutes=5))
    assert [job.id for job in await queue.lease("w", ["a", "b"], LEASE, limit=1)] == [other_kind]
    assert [job.id for job in await queue.lease("w", ["a", "b"], LEASE, limit=5)] == [later]
    assert await queue.lease("w", [], LEASE) == []


async def test_concurrent_workers_never_share_a_job(queue: JobQueue) -> None:
    for n in range(10):
        await queue.enqueue("a", {"n": n})

    leased = await asyncio.gather(*(queue.lease(f"w{n}", ["a"], LEASE, limit=2) for n in range(8)))

    ids = [job.id for jobs in leased for job in jobs]
    assert len(ids) == len(set(ids)) == 10


async def test_dedupe_among_pending_jobs(queue: JobQueue) -> None:
    first = await queue.enqueue("sync_flag", {"v": 1}, dedupe_key="case-1")
    assert first is not None
    assert await queue.enqueue("sync_flag", {"v": 2}, dedupe_key="case-1") is None
    assert await queue.enqueue("sync_flag", {"v": 3}, dedupe_key="case-2") is not None
    assert await queue.enqueue("sync_flag", {"v": 4}) is not None

    [job] = await queue.lease("w", ["sync_flag"], LEASE)
    assert job.id == first
    newer = await queue.enqueue("sync_flag", {"v": 5}, dedupe_key="case-1")
    assert newer is not None, "a job being worked on does not swallow a newer change"

    assert await queue.fail(job, "w", "boom", POLICY) is JobState.DONE, "the pending duplicate does the work"
    leased = await queue.lease("w", ["sync_flag"], LEASE, limit=10)
    assert newer in [job.id for job in leased] and first not in [job.id for job in leased]


async def test_backoff_grows_and_is_capped(queue: JobQueue, clock: FakeClock) -> None:
    await queue.enqueue("a", {})
    expected_delays = [2, 4, 8]
    for seconds in expected_delays:
        [job] = await queue.lease("w", ["a"], LEASE)
        assert await queue.fail(job, "w", "HTTP 503", POLICY) is JobState.PENDING
        clock.advance(timedelta(seconds=seconds) - timedelta(milliseconds=1))
        assert await queue.lease("w", ["a"], LEASE) == [], f"retried before its {seconds} s backoff"
        clock.advance(timedelta(milliseconds=1))
    [job] = await queue.lease("w", ["a"], LEASE)
    assert job.attempts == 4 and job.last_error == "HTTP 503"


def test_backoff_delay_is_full_jitter_under_the_ceiling() -> None:
    policy = RetryPolicy(base_delay=timedelta(seconds=2), max_delay=timedelta(minutes=10))
    rng = random.Random(7)
    for attempts, ceiling in [(1, 2), (3, 8), (9, 512), (10, 600), (200, 600)]:
        delays = [backoff_delay(attempts, policy, rng) for _ in range(200)]
        assert all(timedelta(0) <= delay <= timedelta(seconds=ceiling) for delay in delays)
        assert max(delays) > timedelta(seconds=ceiling * 0.8), "the whole range is used"


async def test_retry_after_wins_when_longer_than_the_backoff(queue: JobQueue, clock: FakeClock) -> None:
    await queue.enqueue("a", {})
    [job] = await queue.lease("w", ["a"], LEASE)
    await queue.fail(job, "w", "HTTP 429", POLICY, retry_after=timedelta(minutes=2))
    clock.advance(timedelta(seconds=119))
    assert await queue.lease("w", ["a"], LEASE) == []
    clock.advance(timedelta(seconds=1))
    [job] = await queue.lease("w", ["a"], LEASE)

    await queue.fail(job, "w", "HTTP 429", POLICY, retry_after=timedelta(seconds=1))  # shorter: backoff (4 s) wins
    clock.advance(timedelta(seconds=3))
    assert await queue.lease("w", ["a"], LEASE) == []
    clock.advance(timedelta(seconds=1))
    assert len(await queue.lease("w", ["a"], LEASE)) == 1


async def test_dead_letter_after_max_attempts(
    queue: JobQueue, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = await queue.enqueue("patch_flag", {"token": "s3cr3t-payload"})
    states = []
    for _ in range(POLICY.max_attempts):
        [job] = await queue.lease("w", ["patch_flag"], LEASE)
        with caplog.at_level(logging.WARNING, logger="bot.storage.sql_store"):
            states.append(await queue.fail(job, "w", "HTTP 500 from Graph", POLICY))
        clock.advance(POLICY.max_delay)

    assert states == [JobState.PENDING] * (POLICY.max_attempts - 1) + [JobState.DEAD]
    assert await queue.lease("w", ["patch_flag"], LEASE) == []
    [dead] = await queue.dead_letters()
    assert (dead.id, dead.attempts, dead.last_error) == (job_id, POLICY.max_attempts, "HTTP 500 from Graph")
    assert (await queue.depth())["dead"] == 1
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert f"patch_flag #{job_id}" in warning.getMessage() and "HTTP 500 from Graph" in warning.getMessage()
    assert "s3cr3t" not in caplog.text


async def test_a_lost_lease_cannot_be_completed_by_its_old_holder(queue: JobQueue, clock: FakeClock) -> None:
    await queue.enqueue("a", {})
    [stale] = await queue.lease("slow", ["a"], LEASE)
    clock.advance(LEASE)
    [fresh] = await queue.lease("fast", ["a"], LEASE)

    await queue.complete(stale, "slow")
    assert await queue.fail(stale, "slow", "late", POLICY) is JobState.LEASED
    assert (await queue.depth())["leased"] == 1
    await queue.complete(fresh, "fast")
    assert fresh.attempts == 2 and (await queue.depth())["done"] == 1


async def test_a_killed_workers_job_is_leased_again_after_its_lease_expires(
    database_url: str, store: SqlStore, worker_processes: list[subprocess.Popen[str]]
) -> None:
    job_id = await store.jobs.enqueue("post_card", {"case_id": "c1"})
    worker = start_storage_worker("lease-and-hang", database_url, "post_card", "1.5")
    worker_processes.append(worker)
    assert worker.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), timeout=60)
    assert json.loads(line) == [{"id": job_id, "attempts": 1}], worker.stderr
    worker.send_signal(signal.SIGKILL)
    await asyncio.to_thread(worker.wait, 10)
    assert worker.returncode == -signal.SIGKILL

    assert await store.jobs.lease("rescuer", ["post_card"], LEASE) == [], "the lease has not expired yet"
    await asyncio.sleep(1.6)
    [job] = await store.jobs.lease("rescuer", ["post_card"], LEASE)
    assert (job.id, job.attempts) == (job_id, 2)
    await store.jobs.complete(job, "rescuer")
    assert (await store.jobs.depth())["done"] == 1


def test_a_transient_failure_waits_at_most_the_transient_ceiling_and_gets_more_attempts() -> None:
    policy = RetryPolicy(max_attempts=8, base_delay=timedelta(seconds=2), max_delay=timedelta(minutes=10))
    transient = policy.for_transient()
    assert transient.max_attempts == policy.transient_attempts > policy.max_attempts
    for attempts in (5, 9, 29):
        assert backoff_delay(attempts, transient, HighestJitter()) == timedelta(seconds=30)  # 15 × the first
    assert backoff_delay(9, policy, HighestJitter()) == timedelta(seconds=512)


async def _plan(database: Database, sql: str, params: Sequence[object]) -> str:
    explain = "EXPLAIN" if database.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    async with database.read() as cursor:
        await cursor.execute(f"{explain} {sql}", params)
        return "\n".join(" ".join(str(value) for value in row.values()) for row in await cursor.fetchall())


async def test_a_lease_reads_the_backlog_in_index_order_instead_of_sorting_it(database: Database) -> None:
    """Each lease takes one job: it must walk the due index in (run_at, id) order and stop, not sort every due job
    (with thousands of notifications queued, a sorting lease took milliseconds of the server each)."""
    recording = CountingDatabase(database)
    queue = SqlStore(recording, clock=FakeClock(), rng=HighestJitter()).jobs
    for n in range(2_000):
        await queue.enqueue("graph.notification", {"n": n}, dedupe_key=f"change:{n}")
    async with database.transaction() as cursor:
        await cursor.execute("ANALYZE jobs")
    recording.written.clear()
    assert len(await queue.lease("w", ["graph.notification", "post_card"], LEASE)) == 1
    [(sql, params)] = recording.written

    plan = await _plan(database, sql, params)

    assert "jobs_due_by_priority" in plan, plan
    if database.dialect.name == "postgresql":
        # A sort of the due jobs (their run_at) is the defect; the final order of the three candidates is not.
        assert not re.search(r"Sort Key: \S*run_at", plan), plan
    else:
        # SQLite's indexes end in the rowid (the id), so its due index was always in (run_at, id) order.
        assert "TEMP B-TREE FOR ORDER BY" not in plan.split("UNION ALL")[0].upper(), plan
