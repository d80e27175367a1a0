"""Catch-up resumes from its last completed page and backs off instead of dead-lettering; start-up subscribes
despite transient Graph errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.core import coordinator as coordinator_module
from bot.graph import mailbox as mailbox_module
from tests.support.bot_stack import POOL_MAILBOX, BotStack
from tests.support.ingest import notifications_lost
from tests.support.teams import deliver_voicemail

CALLS = 20
PAGE = 5
"""Four delta pages of five mails."""
DELTA = "/messages/delta"


@pytest.fixture
def bot_settings_overrides() -> dict[str, Any]:
    return {"outbox_retry_base_seconds": 0.001}


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailbox_module, "DELTA_PAGE_SIZE", PAGE)


async def calls_while_notifications_are_lost(stack: BotStack) -> None:
    with notifications_lost(stack):
        for n in range(CALLS):
            stack.deliver_missed_call(f"0171 555{n:04d}")
        await stack.graph.idle()


async def resync(stack: BotStack) -> None:
    line = stack.settings.lines_by_id["zentrale"]
    await stack.services.coordinator.request_resync(line)
    await stack.drain()


async def open_cases(stack: BotStack) -> int:
    _, total = await stack.services.store.cases.list_active(["zentrale"])
    return total


def delta_requests(stack: BotStack) -> list[tuple[dict[str, str], int | None]]:
    return [(r.query, r.status) for r in stack.graph.requests if r.path.endswith(DELTA)]


@pytest.mark.usefixtures("small_pages")
async def test_a_catch_up_resumes_after_the_page_where_a_fault_stopped_it(bot_stack: BotStack) -> None:
    await calls_while_notifications_are_lost(bot_stack)
    bot_stack.graph.clear_requests()
    bot_stack.graph.add_fault("503", path=DELTA, method="GET", after=2, count=1, retry_after=0)  # the third page

    await resync(bot_stack)

    requests = delta_requests(bot_stack)
    assert [status for _, status in requests] == [200, 200, 503, 200, 200]
    assert requests[3][0] == requests[2][0]  # the failed page again, not the pass from its start
    assert sum("$deltatoken" in query for query, _ in requests) == 1
    assert await open_cases(bot_stack) == CALLS
    assert await bot_stack.services.store.subscriptions.get_delta_progress(POOL_MAILBOX) is None


@pytest.mark.usefixtures("small_pages")
async def test_many_transient_faults_delay_a_catch_up_but_never_dead_letter_it(bot_stack: BotStack) -> None:
    await calls_while_notifications_are_lost(bot_stack)
    # More failures in a row than a job's retry budget (8 attempts), on the delta pages and on a mail's attachments.
    bot_stack.graph.add_fault("503", path=DELTA, method="GET", after=1, count=6, retry_after=0)
    bot_stack.graph.add_fault("429", path="/attachments$", method="GET", count=4, retry_after=0)
    with notifications_lost(bot_stack):  # a voicemail: its mail has an attachment list to fail
        deliver_voicemail(bot_stack, "0171 5559999", b"ID3" + bytes(64))
        await bot_stack.graph.idle()

    await resync(bot_stack)

    assert await bot_stack.services.store.jobs.dead_letters() == []
    assert await open_cases(bot_stack) == CALLS + 1
    assert [status for _, status in delta_requests(bot_stack)].count(503) == 6


async def test_start_up_subscribes_despite_transient_graph_errors(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coordinator_module, "SUBSCRIBE_RETRY_DELAYS", (0.01, 0.01, 0.01))
    bot_stack.graph.reset()  # Graph lost the subscription while the bot was down
    bot_stack.graph.add_fault("503", path="/subscriptions$", method="POST", count=2, retry_after=0)

    try:
        async with asyncio.timeout(30):
            await bot_stack.services.coordinator.start_up()
    finally:
        bot_stack.graph.clear_faults()

    [subscription] = bot_stack.graph.subscriptions()
    stored = await bot_stack.services.store.subscriptions.get_subscription(POOL_MAILBOX)
    assert stored is not None and stored.subscription_id == subscription["id"]
    posts = [r.status for r in bot_stack.graph.requests if r.method == "POST" and r.path.endswith("/subscriptions")]
    assert posts == [503, 503, 201]
