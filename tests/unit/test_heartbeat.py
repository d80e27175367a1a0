"""renewing(): the work's outcome is always taken in, also when its caller goes away at the same moment."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta
from typing import Any

import pytest

from bot.heartbeat import renewing


async def test_work_failing_as_its_caller_is_cancelled_leaves_no_unretrieved_error() -> None:
    """A job runner stopping while a card post fails with RunLater: asyncio logged "Task exception was never
    retrieved" at every such shutdown."""
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def work() -> None:
        raise RuntimeError("put back for its slot")

    async def renew() -> bool:
        return True

    caller = asyncio.create_task(renewing(work(), renew, timedelta(seconds=60), "the card"))
    await asyncio.sleep(0)  # the caller starts the work and waits for it
    await asyncio.sleep(0)  # the work fails; the caller has not resumed yet
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    del caller
    gc.collect()
    await asyncio.sleep(0)

    assert [context.get("message") for context in reported] == []
