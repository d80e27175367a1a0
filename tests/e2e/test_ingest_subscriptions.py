"""The subscription manager and the lifecycle events, against the Graph stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.core.ports import Subscription
from bot.graph.client import build_credential, build_graph_client
from bot.graph.subscriptions import LIFECYCLE_PATH, NOTIFICATION_PATH, SubscriptionManager, inbox_resource
from tests.support.bot_stack import CLIENT_STATE, POOL_MAILBOX, BotStack, free_port
from tests.support.ingest import LINE_ID, events_per_mail, notifications_lost, restartable


def graph_subscription(stack: BotStack) -> dict[str, Any]:
    (subscription,) = stack.graph.subscriptions()
    return subscription


async def stored_subscription(stack: BotStack) -> Subscription:
    stored = await stack.services.store.subscriptions.get_subscription(POOL_MAILBOX)
    assert stored is not None
    return stored


def graph_calls(stack: BotStack, method: str, path: str) -> int:
    return sum(r.method == method and r.path == "/v1.0" + path for r in stack.graph.requests)


@pytest.fixture
async def manager(bot_stack: BotStack) -> AsyncIterator[SubscriptionManager]:
    """A second subscription manager on the running bot's database, driven with a chosen clock."""
    credential = build_credential(bot_stack.settings)
    client = build_graph_client(bot_stack.settings, credential)
    try:
        yield SubscriptionManager(client, bot_stack.services.store, bot_stack.settings, "test-instance")
    finally:
        await credential.close()


async def test_start_subscribes_the_inbox_with_immutable_ids(bot_stack: BotStack) -> None:
    subscription = graph_subscription(bot_stack)
    assert subscription["changeType"] == "created,updated"
    assert subscription["resource"] == inbox_resource(POOL_MAILBOX)
    assert subscription["notificationUrl"] == bot_stack.bot_url + NOTIFICATION_PATH
    assert subscription["lifecycleNotificationUrl"] == bot_stack.bot_url + LIFECYCLE_PATH
    assert subscription["clientState"] == CLIENT_STATE
    (create,) = [r for r in bot_stack.graph.requests if r.method == "POST" and r.path == "/v1.0/subscriptions"]
    assert 'IdType="ImmutableId"' in create.headers["prefer"]
    stored = await stored_subscription(bot_stack)
    assert stored.subscription_id == subscription["id"]
    assert stored.expires_at == datetime.fromisoformat(subscription["expirationDateTime"])


async def test_reauthorization_required_reauthorizes_and_renews(bot_stack: BotStack) -> None:
    before = await stored_subscription(bot_stack)
    bot_stack.graph.fire_lifecycle("reauthorizationRequired", mailbox=POOL_MAILBOX)
    await bot_stack.settle()

    path = f"/subscriptions/{before.subscription_id}"
    assert graph_calls(bot_stack, "POST", path + "/reauthorize") == 1
    (renewal,) = [r for r in bot_stack.graph.requests if r.method == "PATCH" and r.path == "/v1.0" + path]
    assert set(renewal.body) == {"expirationDateTime"}
    after = await stored_subscription(bot_stack)
    assert after.subscription_id == graph_subscription(bot_stack)["id"] == before.subscription_id
    assert after.expires_at >= before.expires_at  # the clock moved by less than the stand-in's 1 s resolution


async def test_subscription_removed_is_recreated_and_resynced(bot_stack: BotStack) -> None:
    before = await stored_subscription(bot_stack)
    deltas_before = sum("/delta" in r.path for r in bot_stack.graph.requests)
    bot_stack.graph.fire_lifecycle("subscriptionRemoved", mailbox=POOL_MAILBOX)
    unnotified = bot_stack.deliver_missed_call("0171 2345678")  # arrives while nobody is subscribed
    await bot_stack.settle()

    after = await stored_subscription(bot_stack)
    assert graph_subscription(bot_stack)["id"] == after.subscription_id != before.subscription_id
    assert sum("/delta" in r.path for r in bot_stack.graph.requests) > deltas_before
    notified = bot_stack.deliver_missed_call("0171 7654321")
    await bot_stack.settle()
    assert await events_per_mail(bot_stack) == {unnotified: 1, notified: 1}


async def test_missed_resyncs_and_finds_the_lost_mail(bot_stack: BotStack) -> None:
    with notifications_lost(bot_stack):
        message_id = bot_stack.deliver_missed_call("0171 2345678")
        await bot_stack.settle()
    assert await events_per_mail(bot_stack) == {}

    bot_stack.graph.fire_lifecycle("missed", mailbox=POOL_MAILBOX)
    await bot_stack.settle()
    assert await events_per_mail(bot_stack) == {message_id: 1}


async def test_renewal_comes_well_before_expiry(bot_stack: BotStack, manager: SubscriptionManager) -> None:
    current = await stored_subscription(bot_stack)
    lifetime = current.expires_at - datetime.now(UTC)
    early = current.expires_at - lifetime * 0.7
    assert await manager.ensure(bot_stack.settings.lines_by_id[LINE_ID], early) == current
    assert graph_calls(bot_stack, "PATCH", f"/subscriptions/{current.subscription_id}") == 0

    due = current.expires_at - lifetime * 0.3
    renewed = await manager.ensure(bot_stack.settings.lines_by_id[LINE_ID], due)
    assert renewed is not None and renewed.subscription_id == current.subscription_id
    assert graph_calls(bot_stack, "PATCH", f"/subscriptions/{current.subscription_id}") == 1
    assert renewed.expires_at > current.expires_at
    assert await stored_subscription(bot_stack) == renewed


@pytest.mark.parametrize("renewal_due", [False, True], ids=["check", "renewal"])
async def test_a_subscription_gone_from_graph_is_recreated(
    bot_stack: BotStack, manager: SubscriptionManager, renewal_due: bool
) -> None:
    current = await stored_subscription(bot_stack)
    with notifications_lost(bot_stack):  # the bot never hears that it was removed
        bot_stack.graph.fire_lifecycle("subscriptionRemoved", mailbox=POOL_MAILBOX)
        await bot_stack.graph.idle()
    now = current.expires_at - (current.expires_at - datetime.now(UTC)) * (0.1 if renewal_due else 1)

    recreated = await manager.ensure(bot_stack.settings.lines_by_id[LINE_ID], now)
    assert recreated is not None and recreated.subscription_id != current.subscription_id
    assert graph_subscription(bot_stack)["id"] == recreated.subscription_id
    status = 404
    method = "PATCH" if renewal_due else "GET"
    path = f"/v1.0/subscriptions/{current.subscription_id}"
    assert any(r.method == method and r.path == path and r.status == status for r in bot_stack.graph.requests)


async def test_two_instances_on_one_database_keep_one_subscription(bot_stack: BotStack, database_url: str) -> None:
    """Two bot apps start at once on a fresh database: exactly one live subscription, the one both know."""
    async with restartable(bot_stack) as bots:
        await bots.stop()
        ports = [free_port(), free_port()]
        settings = [
            bot_stack.settings.model_copy(
                update={"database_url": database_url, "port": port, "public_base_url": f"http://127.0.0.1:{port}"}
            )
            for port in ports
        ]
        await asyncio.gather(*(bots.start(s) for s in settings))
        apps = bots.started_apps()
        # Start-up runs in the background; run it again side by side and wait for it.
        await asyncio.gather(*(app.coordinator.start_up() for app in apps))

        subscriptions = bot_stack.graph.subscriptions()
        assert len(subscriptions) == 1
        for app in apps:
            stored = await app.store.subscriptions.get_subscription(POOL_MAILBOX)
            assert stored is not None and stored.subscription_id == subscriptions[0]["id"]
