"""The mailbox coordinator owns the update loop (Home Assistant's pattern): subscriptions, catch-up and the
handlers for notification jobs. Webhook handlers only persist; protocol I/O happens here, in the job runner.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import PoolLine, Settings
from bot.core import effects
from bot.core.ingest import MailIngestor
from bot.core.jobs import PermanentFailure, RetryLater, RunLater
from bot.core.ports import Store, Subscriptions
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SUBSCRIPTION_CHECK_INTERVAL = timedelta(minutes=10)
SUBSCRIBE_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""Seconds between the attempts to subscribe a mailbox at start (or the Retry-After Graph asked for, when longer);
after the last one the subscription check loop takes over."""
CATCH_UP_MAX_BACKOFF = timedelta(minutes=5)


def catch_up_backoff(failures: int, base: timedelta) -> timedelta:
    """Exponential backoff with equal jitter for the ``failures``-th transient failure in a row of a catch-up."""
    ceiling = min(CATCH_UP_MAX_BACKOFF.total_seconds(), base.total_seconds() * 2 ** min(failures - 1, 30))
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))


def _retry_after(error: Exception) -> float:
    return error.retry_after.total_seconds() if isinstance(error, RetryLater) and error.retry_after else 0.0


class MailboxCoordinator:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        subscriptions: Subscriptions,
        ingestor: MailIngestor,
        instance_id: str,
        reconcile: Callable[[PoolLine], Awaitable[int]],
        repair: Callable[[], Awaitable[object]],
    ) -> None:
        self._settings = settings
        self._store = store
        self._subscriptions = subscriptions
        self._ingestor = ingestor
        self._instance_id = instance_id
        self._reconcile = reconcile
        self._repair = repair
        self._tasks: list[asyncio.Task[None]] = []
        self._catch_up_failures: dict[str, int] = {}

    def _line(self, mailbox: str) -> PoolLine:
        line = self._settings.line_for_mailbox(mailbox)
        if line is None:
            raise PermanentFailure(f"mailbox {mailbox} is not a configured pool line")
        return line

    # Job handlers -------------------------------------------------------------------------------------------

    async def handle_notification(self, payload: dict[str, Any]) -> None:
        """One Graph notification, as the webhook validated and queued it (its fields, not validated again)."""
        subscription_id = str(payload.get("subscriptionId", ""))
        stored = await self._store.subscriptions.subscription_by_id(subscription_id)
        if stored is None:
            log.info("notification for an unknown subscription %s ignored", subscription_id)
            return
        line = self._line(stored.mailbox)
        resource = payload.get("resourceData")
        message_id = resource.get("id") if isinstance(resource, dict) else None
        match payload.get("lifecycleEvent"):
            case "reauthorizationRequired":
                await self._subscriptions.reauthorize(line, subscription_id)
            case "subscriptionRemoved":
                await self._subscriptions.recreate(line)
                await self.request_resync(line)
            case "missed":
                await self.request_resync(line)
            case None if isinstance(message_id, str) and message_id:
                await self._ingestor.on_mail_changed(line, message_id)
            case None:
                log.info("change notification without resourceData ignored")
            case other:
                raise PermanentFailure(f"unknown lifecycle event {str(other)[:40]!r}")

    async def notification_given_up(self, payload: dict[str, Any]) -> None:
        """A notification job ran out of retries: catch its mailbox up by delta instead, so its change is not lost."""
        stored = await self._store.subscriptions.subscription_by_id(str(payload.get("subscriptionId", "")))
        if stored is not None:
            log.warning("a notification for %s gave up; catching the mailbox up instead", stored.mailbox)
            await self.request_resync(self._line(stored.mailbox))

    async def handle_resync(self, payload: dict[str, Any]) -> None:
        """Catch the mailbox up and reconcile its flags. A transient error puts the job back with a growing backoff
        (honouring Retry-After) without counting an attempt: the catch-up resumes from its last completed page, so
        retrying costs little, and giving up would leave the mailbox behind until the next periodic pass."""
        line = self._line(str(payload["mailbox"]))
        try:
            count = await self._ingestor.catch_up(line)
            repaired = await self._reconcile(line)
        except RetryLater as error:
            failures = self._catch_up_failures[line.mailbox] = self._catch_up_failures.get(line.mailbox, 0) + 1
            base = timedelta(seconds=self._settings.outbox_retry_base_seconds)
            delay = max(catch_up_backoff(failures, base), timedelta(seconds=_retry_after(error)))
            log.warning(
                "catch-up of %s stopped by a transient error (%s, %d in a row); resuming in %.1f s",
                line.id,
                error,
                failures,
                delay.total_seconds(),
            )
            raise RunLater(f"catch-up resumes after: {error}", delay) from error
        self._catch_up_failures.pop(line.mailbox, None)
        log.info("catch-up of %s looked at %d mails, read %d unconfirmed flag writes again", line.id, count, repaired)

    async def request_resync(self, line: PoolLine) -> None:
        await self._store.jobs.enqueue(
            effects.RESYNC_MAILBOX, {"mailbox": line.mailbox}, dedupe_key=f"resync:{line.mailbox}"
        )

    # Loops --------------------------------------------------------------------------------------------------

    async def start_up(self) -> None:
        """At start: queue what a crash left undone, make sure every mailbox is subscribed and catch up on what
        arrived while the bot was down."""
        await self._repair_sweep()
        await asyncio.gather(*(self._start_line(line) for line in self._settings.pool_lines))

    async def _start_line(self, line: PoolLine) -> None:
        """Subscribe, retrying a transient error within seconds; the catch-up is asked for after the first attempt
        and again once a retry succeeded (for what arrived while the mailbox was not subscribed)."""
        for attempt, delay in enumerate((*SUBSCRIBE_RETRY_DELAYS, None)):
            try:
                await self._subscriptions.ensure(line)
            except PermanentFailure:
                log.exception("could not subscribe to %s; the subscription check retries it", line.mailbox)
                break
            except Exception as error:
                if attempt == 0:
                    await self.request_resync(line)
                if delay is None:
                    log.exception("could not subscribe to %s; the subscription check retries it", line.mailbox)
                    return
                wait = max(delay, _retry_after(error))
                log.warning("could not subscribe to %s (%s); trying again in %.0f s", line.mailbox, error, wait)
                await asyncio.sleep(wait)
            else:
                if attempt > 0:
                    log.info("subscribed to %s at attempt %d", line.mailbox, attempt + 1)
                break
        await self.request_resync(line)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._every(SUBSCRIPTION_CHECK_INTERVAL, self._check_subscriptions)),
            asyncio.create_task(
                self._every(timedelta(minutes=self._settings.delta_interval_minutes), self.periodic_catch_up)
            ),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)

    async def _every(self, interval: timedelta, action: Any) -> None:
        while True:
            await asyncio.sleep(interval.total_seconds())
            try:
                await action()
            except Exception:
                log.exception("periodic %s failed", action.__name__)

    async def _check_subscriptions(self) -> None:
        """Renew due subscriptions and recreate lost ones; one failing mailbox does not hold up the others."""
        for line in self._settings.pool_lines:
            try:
                await self._subscriptions.ensure(line)
            except Exception:
                log.exception("could not check the subscription of %s", line.mailbox)

    async def periodic_catch_up(self) -> None:
        """The periodic pass: the delta catch-up picks up missed mails and repairs flag drift (reconciliation), and
        the repair sweep queues missing cards and flag writes."""
        lease_ttl = timedelta(minutes=self._settings.delta_interval_minutes)
        if await self._store.leases.try_acquire("periodic-catch-up", self._instance_id, lease_ttl, datetime.now(UTC)):
            for line in self._settings.pool_lines:
                await self.request_resync(line)
            await self._repair_sweep()

    async def _repair_sweep(self) -> None:
        try:
            await self._repair()
        except Exception:
            log.exception("the repair sweep failed; the next periodic pass runs it again")
