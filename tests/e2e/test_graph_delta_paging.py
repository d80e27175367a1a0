"""Catch-up paging: large delta pages, and the next page on its way while the caller stores the current one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.graph.client import build_credential, build_graph_client
from bot.graph.mailbox import DELTA_PAGE_SIZE, GraphMailboxes
from sandbox.graph_model import Message
from tests.support.bot_stack import POOL_MAILBOX, BotStack

MAILS = 2050
PAGE = 1000
"""Graph's largest page for messages: three requests for 2,050 mails."""
GUARD_S = 60
"""Only turns a missing request into a failure instead of a hang; no timing is asserted."""


def delta_requests(stack: BotStack) -> list[str]:
    return [r.headers.get("prefer", "") for r in stack.graph.requests if "/delta" in r.path]


async def test_delta_pages_are_large_and_the_next_is_fetched_while_one_is_stored(bot_stack: BotStack) -> None:
    box = bot_stack.graph.mailbox(POOL_MAILBOX)
    for n in range(MAILS):  # arrived while nobody listened: no notifications
        box.add(Message(subject=f"Mail {n}", sender_name="x", sender_address="x@example.com", body="-",
                        body_type="text", received=datetime.now(UTC), recipient_address=box.address,
                        folder_id=box.inbox_id))
    bot_stack.graph.clear_requests()
    credential = build_credential(bot_stack.settings)
    mailboxes = GraphMailboxes(build_graph_client(bot_stack.settings, credential))
    sizes = []
    try:
        async for page in mailboxes.delta(POOL_MAILBOX, None):
            sizes.append(len(page.messages))
            if page.delta_link is None:
                # The caller is still busy with this page, and the next request is already out.
                async with asyncio.timeout(GUARD_S):
                    while len(delta_requests(bot_stack)) < len(sizes) + 1:
                        await asyncio.sleep(0.01)
    finally:
        await credential.close()

    prefers = delta_requests(bot_stack)
    assert DELTA_PAGE_SIZE == PAGE
    assert sizes[:2] == [PAGE, PAGE]
    assert sum(sizes) >= MAILS
    assert len(prefers) == len(sizes) == 3
    assert all(f"odata.maxpagesize={PAGE}" in prefer for prefer in prefers)
