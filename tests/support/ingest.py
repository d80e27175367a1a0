"""Helpers for the mail-ingestion tests: count stored events, replay and lose notifications, restart the bot."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import SERVICES, Services
from bot.config import Settings
from bot.domain.events import CallEvent
from bot.graph.subscriptions import NOTIFICATION_PATH
from tests.support.bot_stack import BotStack, start_bot

LINE_ID = "zentrale"


async def stored_events(stack: BotStack) -> list[CallEvent]:
    """Every event of the pool line's open cases (new cases are open)."""
    cases, _total = await stack.services.store.cases.list_active([LINE_ID], limit=1000)
    return [event for case in cases for event in case.events]


async def events_per_mail(stack: BotStack) -> Counter[str]:
    return Counter(event.mail.message_id for event in await stored_events(stack))


def change_notifications(stack: BotStack, message_id: str) -> list[dict[str, Any]]:
    """The notification bodies the Graph stand-in sent about one mail."""
    return [
        delivery.payload
        for delivery in stack.graph.deliveries
        if any(item.get("resourceData", {}).get("id") == message_id for item in delivery.payload["value"])
    ]


async def post_webhook(
    stack: BotStack, body: bytes | str | dict[str, Any], path: str = NOTIFICATION_PATH, **kwargs: Any
) -> aiohttp.ClientResponse:
    """POST to one of the bot's webhook URLs; the response is read before it is returned."""
    if isinstance(body, dict):
        kwargs["json"] = body
    else:
        kwargs["data"] = body
    response = await stack.http.post(stack.bot_url + path, **kwargs)
    await response.read()
    return response


@contextlib.contextmanager
def notifications_lost(stack: BotStack) -> Iterator[None]:
    """Graph's notifications reach the webhook but are lost there (answered 202, never stored)."""
    services = stack.services
    kept = services.notifications

    async def lose(_request: web.Request) -> web.Response:
        return web.Response(status=202)

    services.notifications = lose
    try:
        yield
    finally:
        services.notifications = kept


class BotRestarts:
    """Stops the bot app and starts new ones on the same database and port; cleans up what it started."""

    def __init__(self, stack: BotStack) -> None:
        self._stack = stack
        self._started: list[tuple[web.AppRunner, web.Application]] = []

    async def stop(self) -> None:
        await self._stack.runner.cleanup()

    async def start(self, settings: Settings | None = None) -> None:
        runner, app = await start_bot(settings or self._stack.settings)
        self._started.append((runner, app))
        self._stack.runner, self._stack.app = runner, app

    def started_apps(self) -> list[Services]:
        return [app[SERVICES] for _runner, app in self._started]

    async def close(self) -> None:
        for runner, _app in self._started:
            await runner.cleanup()


@contextlib.asynccontextmanager
async def restartable(stack: BotStack) -> AsyncIterator[BotRestarts]:
    restarts = BotRestarts(stack)
    try:
        yield restarts
    finally:
        await restarts.close()
