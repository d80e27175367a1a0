"""The job runner: takes jobs from the durable queue and hands each to the handler for its kind.

Handlers raise :class:`RetryLater` (optionally with the ``Retry-After`` the remote side reported) for transient
failures and :class:`PermanentFailure` for jobs that can never succeed; every other exception is treated as
transient. One retry policy serves all effects on Teams and Graph (Company Communicator's pattern).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from bot import metrics
from bot.core.ports import Job, JobQueue, JobState, RetryPolicy
from bot.heartbeat import LeaseLost, renewing
from bot.logging_setup import redact
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

JobHandler = Callable[[dict[str, Any]], Awaitable[None]]
DUE_SLACK_S = 0.005
"""A put-back job's wake-up comes this much after its due time: a timer may fire a clock tick early, and a worker
woken before the store sees the job due would wait for the next idle poll."""

JOB_LEASE = timedelta(seconds=20)
"""How long a job is leased; renewed every quarter of it while the handler runs, so a dead worker's jobs are taken
up again within about this long (the renewals keep a long-running job with its live worker)."""

BUSY_ANSWERING = 4
"""Requests answered at once from which the job workers step back (all but one): see :class:`IngressGauge`."""
STEP_BACK_AT_MOST_S = 1.0
"""The longest a stepped-back worker waits before it takes one more job all the same."""


class IngressGauge:
    """Counts the requests someone is waiting for an answer to (Graph's notifications, Teams' activities). While
    :data:`BUSY_ANSWERING` or more are under way, a burst is arriving: the job workers but one step back, so the
    event loop answers first (Graph drops an endpoint that answers late; every notification is stored before its
    202, so nothing waits that could be lost). One worker keeps going, and the others take one job after
    :data:`STEP_BACK_AT_MOST_S` at the latest: the queue never stalls however long the burst lasts."""

    def __init__(self, busy_at: int = BUSY_ANSWERING, step_back_at_most: float = STEP_BACK_AT_MOST_S) -> None:
        self._busy_at = busy_at
        self._step_back_at_most = step_back_at_most
        self._answering = 0
        self._calm = asyncio.Event()
        self._calm.set()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        self._answering += 1
        if self._answering >= self._busy_at:
            self._calm.clear()
        try:
            yield
        finally:
            self._answering -= 1
            if self._answering < self._busy_at:
                self._calm.set()

    @property
    def answering_now(self) -> int:
        return self._answering

    @property
    def busy(self) -> bool:
        return not self._calm.is_set()

    async def calm(self) -> None:
        """Returns when fewer than ``busy_at`` requests are being answered, or after ``step_back_at_most``."""
        if self.busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._calm.wait(), self._step_back_at_most)


class RetryLater(Exception):
    """A transient failure; ``retry_after`` is what the remote side asked for (e.g. a 429's Retry-After), ``status``
    the remote side's HTTP status when it answered."""

    def __init__(self, message: str, retry_after: timedelta | None = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class RunLater(Exception):
    """Not a failure: the job cannot go yet (it waits for a rate limit's slot). It is put back, not before ``after``
    from now, without counting an attempt, so that waiting does not hold a worker."""

    def __init__(self, message: str, after: timedelta) -> None:
        super().__init__(message)
        self.after = after


class PermanentFailure(Exception):
    """The job can never succeed (bad payload, a case that no longer exists): dead-letter it at once. ``status`` is
    the remote side's HTTP status when a remote call was refused."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def failure_status(error: BaseException) -> int | None:
    """The HTTP status a remote side answered with, for a failure an adapter mapped to the job vocabulary."""
    return error.status if isinstance(error, RetryLater | PermanentFailure) else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """An HTTP ``Retry-After`` value, delta-seconds or an HTTP date (RFC 9110 10.2.3); None when absent or unusable."""
    if not value:
        return None
    try:
        return timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(timedelta(0), when - (now or datetime.now(UTC)))


class JobRunner:
    """Runs ``concurrency`` workers that lease due jobs and dispatch them by kind.

    ``on_give_up`` names, per kind, what to do when a job is dead-lettered, so that nothing is lost for good
    (a notification that could not be processed makes the mailbox catch up by delta, for example).
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobHandler],
        *,
        policy: RetryPolicy | None = None,
        on_give_up: Mapping[str, JobHandler] | None = None,
        concurrency: int = 4,
        lease_for: timedelta = JOB_LEASE,
        idle_poll: float = 0.5,
        ingress: IngressGauge | None = None,
    ) -> None:
        self._queue = queue
        self._handlers = dict(handlers)
        self._policy = policy or RetryPolicy()
        self._on_give_up = dict(on_give_up or {})
        self._concurrency = concurrency
        self._lease_for = lease_for
        self._heartbeat = lease_for / 4
        self._idle_poll = idle_poll
        self._ingress = ingress or IngressGauge()
        self._worker_id = f"worker-{uuid.uuid4().hex[:8]}"
        self._wakeups: asyncio.Queue[None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._due: list[float] = []
        """Loop times at which jobs put back come due (a heap); one timer wakes a worker at the earliest."""
        self._timer: asyncio.TimerHandle | None = None
        self._busy = 0

    def wake(self) -> None:
        """Tell an idle worker that a job was just enqueued, so it need not wait for the next poll.

        One wake-up wakes one worker (a worker that finds a job keeps leasing until the queue is empty): waking all
        of them for every job would cost a lease attempt per worker and job.
        """
        if self._wakeups.qsize() < self._concurrency:
            self._wakeups.put_nowait(None)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(n), name=f"job-worker-{n}") for n in range(self._concurrency)]

    def wake_in(self, seconds: float) -> None:
        """Wake an idle worker when a job put back for ``seconds`` comes due: a send booked for its rate-limit slot
        goes in that slot, not up to an idle poll later (a late send pushes every later slot of its windows back)."""
        loop = asyncio.get_running_loop()
        heapq.heappush(self._due, loop.time() + max(0.0, seconds) + DUE_SLACK_S)
        if self._timer is None or self._due[0] < self._timer.when():
            self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(self._due[0], self._came_due, loop) if self._due else None

    def _came_due(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._due and self._due[0] <= loop.time():
            heapq.heappop(self._due)
            self.wake()
        self._arm(loop)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = []
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def run_until_idle(self) -> None:
        """Process jobs until none is due and no worker is busy (tests wait for quiet with this)."""
        while True:
            jobs = await self._queue.lease(self._worker_id, list(self._handlers), self._lease_for, limit=8)
            if not jobs:
                if self._busy == 0:
                    return
                await asyncio.sleep(0.05)
                continue
            await asyncio.gather(*(self._run(job) for job in jobs))

    async def _work(self, number: int) -> None:
        worker_id = f"{self._worker_id}-{number}"
        while True:
            if number > 0:
                await self._ingress.calm()
            try:
                jobs = await self._queue.lease(worker_id, list(self._handlers), self._lease_for, limit=1)
            except Exception:
                log.exception("leasing jobs failed; retrying")
                jobs = []
            if not jobs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeups.get(), self._idle_poll)
                continue
            self.wake()  # there may be more: one more idle worker looks
            for job in jobs:
                await self._run(job, worker_id)

    async def _run(self, job: Job, worker_id: str | None = None) -> None:
        worker_id = worker_id or self._worker_id
        handler = self._handlers[job.kind]
        self._busy += 1
        try:
            if job.attempts > self._policy.most_attempts:
                # A job whose worker died on every attempt comes back through lease expiry; stop it here.
                raise PermanentFailure(f"gave up after {job.attempts - 1} attempts")
            await renewing(
                handler(job.payload),
                lambda: self._queue.extend(job, worker_id, self._lease_for),
                self._heartbeat,
                f"job {job.kind} #{job.id}",
            )
        except LeaseLost:
            # Another worker runs the job now (this one stalled past the lease): it completes or fails it.
            log.warning("job %s #%s lost its lease to another worker; stopped", job.kind, job.id)
        except RunLater as later:
            await self._queue.defer(job, worker_id, datetime.now(UTC) + later.after)
            self.wake_in(later.after.total_seconds())
        except PermanentFailure as exc:
            await self._fail(job, worker_id, exc, retry_after=None, policy=RetryPolicy(max_attempts=job.attempts))
        except RetryLater as exc:
            await self._fail(job, worker_id, exc, retry_after=exc.retry_after, policy=self._policy.for_transient())
        except Exception as exc:
            log.warning("job %s #%s failed: %s", job.kind, job.id, redact(repr(exc)), exc_info=True)
            await self._fail(job, worker_id, exc, retry_after=None, policy=self._policy)
        else:
            await self._queue.complete(job, worker_id)
            metrics.JOBS_DONE.labels(job.kind).inc()
        finally:
            self._busy -= 1

    async def _fail(
        self, job: Job, worker_id: str, exc: Exception, *, retry_after: timedelta | None, policy: RetryPolicy
    ) -> None:
        state = await self._queue.fail(job, worker_id, redact(str(exc))[:500], policy, retry_after)
        if state is JobState.DEAD:
            metrics.DEAD_LETTERS.labels(job.kind).inc()
            fallback = self._on_give_up.get(job.kind)
            if fallback is not None:
                try:
                    await fallback(job.payload)
                except Exception:
                    log.exception("the fallback for dead job %s #%s failed", job.kind, job.id)
        else:
            metrics.JOB_RETRIES.labels(job.kind).inc()
