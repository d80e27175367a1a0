"""Keeps exactly one live Graph subscription per pool mailbox and answers its lifecycle events.

Several bot instances may run against one database: a named lease makes one of them the owner of a mailbox's
subscription while it works on it, and a lock does the same for the tasks of one instance (they share the lease).
Strays (subscriptions of ours on the same resource) are deleted before a new one is created, so a deployment
never holds two live subscriptions for one mailbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from kiota_abstractions.api_error import APIError
from msgraph import GraphServiceClient
from msgraph.generated.models.subscription import Subscription as GraphSubscription

from bot.config import PoolLine, Settings
from bot.core.jobs import RetryLater
from bot.core.ports import Store, Subscription
from bot.graph.errors import as_job_error
from bot.graph.mailbox import request_config

log = logging.getLogger(__name__)

NOTIFICATION_PATH = "/api/graph/notifications"
LIFECYCLE_PATH = "/api/graph/lifecycle"
CHANGE_TYPES = "created,updated"
LEASE_TTL = timedelta(minutes=2)


def inbox_resource(mailbox: str) -> str:
    return f"users/{mailbox}/mailFolders('inbox')/messages"


def _same_resource(resource: str | None, mailbox: str) -> bool:
    normalised = (resource or "").lower().replace("mailfolders/inbox", "mailfolders('inbox')")
    return normalised == inbox_resource(mailbox).lower()


def _not_found(error: APIError) -> bool:
    return error.response_status_code == 404


class SubscriptionManager:
    def __init__(self, client: GraphServiceClient, store: Store, settings: Settings, instance_id: str) -> None:
        self._client = client
        self._store = store
        self._settings = settings
        self._instance_id = instance_id
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def _lifetime(self) -> timedelta:
        return timedelta(minutes=self._settings.subscription_lifetime_minutes)

    def renewal_due(self, subscription: Subscription, now: datetime) -> bool:
        """Renew once a third of the lifetime is left: well before expiry, with room for retries."""
        return subscription.expires_at - now < self._lifetime / 3

    async def ensure(self, line: PoolLine, now: datetime | None = None) -> Subscription | None:
        """Check, renew or create the mailbox's subscription; None when another instance holds the lease.

        The stored record is only ever overwritten, never deleted first: a job that fails halfway and retries still
        finds the subscription id its lifecycle event names.
        """
        async with self._locks[line.mailbox]:
            return await self._ensure_leased(line, now or datetime.now(UTC))

    async def _ensure_leased(self, line: PoolLine, now: datetime) -> Subscription | None:
        lease = f"subscription:{line.mailbox}"
        if not await self._store.leases.try_acquire(lease, self._instance_id, LEASE_TTL, now):
            return None
        try:
            current = await self._store.subscriptions.get_subscription(line.mailbox)
            if current is not None and not self.renewal_due(current, now):
                if await self._exists(current.subscription_id):
                    return current
                log.info("the subscription of %s is gone from Graph; creating a new one", line.mailbox)
            elif current is not None:
                renewed = await self._renew(current, now)
                if renewed is not None:
                    return renewed
            return await self._create(line, now)
        finally:
            await self._store.leases.release(lease, self._instance_id)

    async def _exists(self, subscription_id: str) -> bool:
        try:
            await self._client.subscriptions.by_subscription_id(subscription_id).get()
        except APIError as exc:
            if _not_found(exc):
                return False
            raise as_job_error(exc) from exc
        except Exception as exc:
            raise as_job_error(exc) from exc
        return True

    async def _renew(self, current: Subscription, now: datetime) -> Subscription | None:
        """Extend the lifetime; None when Graph no longer has the subscription."""
        expiry = now + self._lifetime
        try:
            result = await self._client.subscriptions.by_subscription_id(current.subscription_id).patch(
                GraphSubscription(expiration_date_time=expiry)
            )
        except APIError as exc:
            if _not_found(exc):
                log.info("the subscription of %s is gone from Graph; creating a new one", current.mailbox)
                return None
            raise as_job_error(exc) from exc
        except Exception as exc:
            raise as_job_error(exc) from exc
        renewed = Subscription(
            current.mailbox, current.subscription_id, (result and result.expiration_date_time) or expiry
        )
        await self._store.subscriptions.save_subscription(renewed)
        log.info("renewed the subscription of %s until %s", current.mailbox, renewed.expires_at.isoformat())
        return renewed

    async def _create(self, line: PoolLine, now: datetime) -> Subscription:
        await self._delete_strays(line.mailbox)
        base = self._settings.public_base_url
        request = GraphSubscription(
            change_type=CHANGE_TYPES,
            notification_url=base + NOTIFICATION_PATH,
            lifecycle_notification_url=base + LIFECYCLE_PATH,
            resource=inbox_resource(line.mailbox),
            expiration_date_time=now + self._lifetime,
            client_state=self._settings.graph_client_state.get_secret_value(),
            latest_supported_tls_version="v1_2",
        )
        try:
            # Immutable ids also in the notifications, so that they match the ids of reads and delta pages.
            created = await self._client.subscriptions.post(request, request_config())
        except Exception as exc:
            raise as_job_error(exc) from exc
        if created is None or not created.id:
            raise RuntimeError("Graph created a subscription without an id")
        expires_at = created.expiration_date_time or now + self._lifetime
        subscription = Subscription(line.mailbox, created.id, expires_at)
        await self._store.subscriptions.save_subscription(subscription)
        log.info("subscribed to the inbox of %s until %s", line.mailbox, subscription.expires_at.isoformat())
        return subscription

    async def _delete_strays(self, mailbox: str) -> None:
        """Delete every subscription of ours on the mailbox's Inbox (called before creating the one to keep)."""
        try:
            existing = await self._client.subscriptions.get()
        except Exception as exc:
            raise as_job_error(exc) from exc
        for item in existing.value if existing and existing.value else []:
            if item.id and _same_resource(item.resource, mailbox):
                log.info("deleting a stray subscription on %s", mailbox)
                await self.delete(item.id)

    async def delete(self, subscription_id: str) -> None:
        try:
            await self._client.subscriptions.by_subscription_id(subscription_id).delete()
        except APIError as exc:
            if not _not_found(exc):
                raise as_job_error(exc) from exc

    async def reauthorize(self, line: PoolLine, subscription_id: str, now: datetime | None = None) -> None:
        """Answer ``reauthorizationRequired``: reauthorize, then extend the lifetime (recreate when it is gone)."""
        now = now or datetime.now(UTC)
        try:
            await self._client.subscriptions.by_subscription_id(subscription_id).reauthorize.post()
        except APIError as exc:
            if not _not_found(exc):
                raise as_job_error(exc) from exc
            await self.recreate(line, now)
            return
        current = await self._store.subscriptions.get_subscription(line.mailbox)
        if current is None or current.subscription_id != subscription_id:
            return  # an event for a subscription that was replaced meanwhile: the current one is not due
        if await self._renew(current, now) is None:
            await self.recreate(line, now)

    async def recreate(self, line: PoolLine, now: datetime | None = None) -> Subscription:
        """Answer ``subscriptionRemoved``: make sure the mailbox is subscribed again.

        :meth:`ensure` finds out whether the stored subscription is gone, so a late event for a subscription that
        was replaced already leaves the current one alone.
        """
        subscription = await self.ensure(line, now)
        if subscription is None:
            raise RetryLater(f"another instance is working on the subscription of {line.mailbox}")
        return subscription
