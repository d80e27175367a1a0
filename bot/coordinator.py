"""The mailbox coordinator owns the update loop (Home Assistant's pattern): subscriptions, catch-up and the
handlers for notification jobs. Webhook handlers only persist; protocol I/O happens here, in the job runner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot import effects
from bot.config import PoolLine, Settings
from bot.graph.notifications import Notification
from bot.graph.subscriptions import SubscriptionManager
from bot.ingest import MailIngestor
from bot.jobs import PermanentFailure
from bot.storage.interface import Store
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SUBSCRIPTION_CHECK_INTERVAL = timedelta(minutes=10)


class MailboxCoordinator:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        subscriptions: SubscriptionManager,
        ingestor: MailIngestor,
        instance_id: str,
        reconcile: Callable[[PoolLine], Awaitable[int]],
    ) -> None:
        self._settings = settings
        self._store = store
        self._subscriptions = subscriptions
        self._ingestor = ingestor
        self._instance_id = instance_id
        self._reconcile = reconcile
        self._tasks: list[asyncio.Task[None]] = []

    def _line(self, mailbox: str) -> PoolLine:
        line = self._settings.line_for_mailbox(mailbox)
        if line is None:
            raise PermanentFailure(f"mailbox {mailbox} is not a configured pool line")
        return line

    # Job handlers -------------------------------------------------------------------------------------------

    async def handle_notification(self, payload: dict[str, Any]) -> None:
        notification = Notification.model_validate(payload)
        stored = await self._store.subscriptions.subscription_by_id(notification.subscriptionId)
        if stored is None:
            log.info("notification for an unknown subscription %s ignored", notification.subscriptionId)
            return
        line = self._line(stored.mailbox)
        match notification.lifecycleEvent:
            case "reauthorizationRequired":
                await self._subscriptions.reauthorize(line, notification.subscriptionId)
            case "subscriptionRemoved":
                await self._subscriptions.recreate(line)
                await self.request_resync(line)
            case "missed":
                await self.request_resync(line)
            case None if notification.resourceData is not None:
                await self._ingestor.on_mail_changed(line, notification.resourceData.id)
            case None:
                log.info("change notification without resourceData ignored")

    async def notification_given_up(self, payload: dict[str, Any]) -> None:
        """A notification job ran out of retries: catch its mailbox up by delta instead, so its change is not lost."""
        stored = await self._store.subscriptions.subscription_by_id(str(payload.get("subscriptionId", "")))
        if stored is not None:
            log.warning("a notification for %s gave up; catching the mailbox up instead", stored.mailbox)
            await self.request_resync(self._line(stored.mailbox))

    async def handle_resync(self, payload: dict[str, Any]) -> None:
        line = self._line(str(payload["mailbox"]))
        count = await self._ingestor.catch_up(line)
        repaired = await self._reconcile(line)
        log.info("catch-up of %s looked at %d mails, read %d unconfirmed flag writes again", line.id, count, repaired)

    async def request_resync(self, line: PoolLine) -> None:
        await self._store.jobs.enqueue(
            effects.RESYNC_MAILBOX, {"mailbox": line.mailbox}, dedupe_key=f"resync:{line.mailbox}"
        )

    # Loops --------------------------------------------------------------------------------------------------

    async def start_up(self) -> None:
        """At start: make sure every mailbox is subscribed and catch up on what arrived while the bot was down."""
        for line in self._settings.pool_lines:
            try:
                await self._subscriptions.ensure(line)
            except Exception:
                log.exception("could not subscribe to %s; retrying in the background", line.mailbox)
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
        """The periodic delta pass: picks up missed mails and repairs flag drift (reconciliation)."""
        lease_ttl = timedelta(minutes=self._settings.delta_interval_minutes)
        if await self._store.leases.try_acquire("periodic-catch-up", self._instance_id, lease_ttl, datetime.now(UTC)):
            for line in self._settings.pool_lines:
                await self.request_resync(line)
