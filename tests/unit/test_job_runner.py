"""The job runner: retries, dead letters and the give-up fallback that keeps a lost job from losing its work."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

from bot.core.jobs import IngressGauge, JobRunner, PermanentFailure, RetryLater, RunLater
from bot.core.ports import Job, JobQueue, JobState, RetryPolicy
from bot.storage.sql_store import SqlStore

HANG_GUARD_S = 30
"""Only turns a hang into a failure; nothing is timed."""
FAST = RetryPolicy(
    max_attempts=3,
    base_delay=timedelta(milliseconds=1),
    max_delay=timedelta(milliseconds=5),
    transient_attempts=6,
)


async def run_until_given_up(runner: JobRunner, given_up: list[dict[str, Any]]) -> None:
    for _ in range(400):  # retries are due a few milliseconds later
        await runner.run_until_idle()
        if given_up:
            return
        await asyncio.sleep(0.005)


async def test_a_job_that_keeps_failing_transiently_is_retried_longer_then_handed_to_its_fallback(
    store: SqlStore,
) -> None:
    attempts: list[dict[str, Any]] = []
    given_up: list[dict[str, Any]] = []

    async def flaky(payload: dict[str, Any]) -> None:
        attempts.append(payload)
        raise RetryLater("Graph answered 503")

    async def fallback(payload: dict[str, Any]) -> None:
        given_up.append(payload)

    runner = JobRunner(
        store.jobs, {"graph.notification": flaky}, policy=FAST, on_give_up={"graph.notification": fallback}
    )
    await store.jobs.enqueue("graph.notification", {"subscriptionId": "sub-1"})
    await run_until_given_up(runner, given_up)

    assert len(attempts) == FAST.transient_attempts  # a bad spell of Graph does not lose the work early
    assert given_up == [{"subscriptionId": "sub-1"}]
    assert [job.kind for job in await store.jobs.dead_letters()] == ["graph.notification"]


async def test_a_job_that_keeps_failing_with_its_own_error_is_dead_lettered_after_the_usual_attempts(
    store: SqlStore,
) -> None:
    attempts: list[dict[str, Any]] = []
    given_up: list[dict[str, Any]] = []

    async def broken(payload: dict[str, Any]) -> None:
        attempts.append(payload)
        raise KeyError("case_id")

    async def fallback(payload: dict[str, Any]) -> None:
        given_up.append(payload)

    runner = JobRunner(store.jobs, {"teams.card": broken}, policy=FAST, on_give_up={"teams.card": fallback})
    await store.jobs.enqueue("teams.card", {"case": "c1"})
    await run_until_given_up(runner, given_up)

    assert len(attempts) == FAST.max_attempts
    assert given_up == [{"case": "c1"}]


async def test_a_permanent_failure_is_dead_lettered_at_once_and_a_success_completes(store: SqlStore) -> None:
    async def refuse(payload: dict[str, Any]) -> None:
        raise PermanentFailure("case does not exist")

    async def succeed(payload: dict[str, Any]) -> None:
        return None

    runner = JobRunner(store.jobs, {"teams.card": refuse, "teams.reply": succeed}, policy=FAST)
    await store.jobs.enqueue("teams.card", {"case_id": "gone"})
    await store.jobs.enqueue("teams.reply", {"case_id": "c1"})

    await runner.run_until_idle()

    depth = await store.jobs.depth()
    assert depth[JobState.DEAD] == 1 and depth[JobState.DONE] == 1
    assert depth[JobState.PENDING] == depth[JobState.LEASED] == 0


async def test_a_job_put_back_runs_when_it_comes_due_without_waiting_for_the_idle_poll(store: SqlStore) -> None:
    calls: list[dict[str, Any]] = []
    second = asyncio.Event()

    async def paced(payload: dict[str, Any]) -> None:
        calls.append(payload)
        if len(calls) == 1:
            raise RunLater("waiting for the thread's slot", timedelta(milliseconds=20))
        second.set()

    # An idle poll of an hour: only the wake-up at the due time can bring the job back within the guard.
    runner = JobRunner(store.jobs, {"teams.card": paced}, idle_poll=3600)
    runner.start()
    try:
        await store.jobs.enqueue("teams.card", {"case_id": "c1"})
        runner.wake()
        await asyncio.wait_for(second.wait(), HANG_GUARD_S)
    finally:
        await runner.stop()
    assert calls == [{"case_id": "c1"}, {"case_id": "c1"}]


class LeaseRecorder:
    """The store's queue, noting which worker (by its number) asked for jobs."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self.leased_by: list[str] = []

    async def lease(self, worker_id: str, kinds: list[str], lease_for: timedelta, limit: int = 1) -> list[Job]:
        self.leased_by.append(worker_id.rsplit("-", 1)[1])
        return await self._queue.lease(worker_id, kinds, lease_for, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


async def leases_until(recorder: LeaseRecorder, workers: set[str], since: int = 0) -> None:
    async def seen() -> None:
        while not workers <= set(recorder.leased_by[since:]):
            await asyncio.sleep(0.001)

    await asyncio.wait_for(seen(), HANG_GUARD_S)


@contextlib.asynccontextmanager
async def polling_workers(store: SqlStore, ingress: IngressGauge) -> AsyncIterator[LeaseRecorder]:
    """Four workers that look for work every millisecond (the queue is empty), noting who leased."""
    recorder = LeaseRecorder(store.jobs)
    runner = JobRunner(
        cast(JobQueue, recorder), {"teams.card": lambda payload: asyncio.sleep(0)}, idle_poll=0.001, ingress=ingress
    )
    runner.start()
    try:
        yield recorder
    finally:
        await runner.stop()


async def test_while_a_burst_of_requests_is_answered_one_worker_runs_and_the_others_step_back(
    store: SqlStore,
) -> None:
    # An hour: the stepped-back workers come back only because the burst ended, not because they waited long enough.
    ingress = IngressGauge(busy_at=2, step_back_at_most=3600)
    async with polling_workers(store, ingress) as recorder:
        with ingress.answering():
            await leases_until(recorder, {"0", "1", "2", "3"})  # one request: not a burst, every worker leases
            with ingress.answering():
                assert ingress.busy
                started = len(recorder.leased_by)
                await leases_until(recorder, {"0"}, since=started + 4)  # the workers in mid-lease have finished
                stepping_back = len(recorder.leased_by)
                await leases_until(recorder, {"0"}, since=stepping_back + 10)
                assert set(recorder.leased_by[stepping_back:]) == {"0"}
            assert not ingress.busy
            calm = len(recorder.leased_by)
            await leases_until(recorder, {"0", "1", "2", "3"}, since=calm)


async def test_a_burst_that_does_not_end_still_lets_every_worker_take_jobs(store: SqlStore) -> None:
    ingress = IngressGauge(busy_at=1, step_back_at_most=0.01)
    with ingress.answering():
        async with polling_workers(store, ingress) as recorder:
            await leases_until(recorder, {"0", "1", "2", "3"})
            assert ingress.busy
