"""Shutdown is bounded: a component that does not stop in time is named in the log and left behind, and the
components after it still close."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.tasks import cancel_and_wait, stop_each

GUARD_S = 20
"""Only turns a hang into a failure; no timing is asserted."""


async def test_a_stop_that_hangs_is_given_up_and_the_next_steps_still_run(caplog: pytest.LogCaptureFixture) -> None:
    closed: list[str] = []

    async def close_store() -> None:
        closed.append("store")

    async with asyncio.timeout(GUARD_S):
        stuck = await stop_each([("job runner", asyncio.Event().wait), ("store", close_store)], 0.2)

    assert stuck == ["job runner"]
    assert closed == ["store"]
    assert "job runner did not stop within" in caplog.text


async def test_a_task_that_ignores_its_cancellation_does_not_hold_up_the_shutdown() -> None:
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await released.wait()

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(GUARD_S):
            stuck = await stop_each([("stubborn worker", lambda: cancel_and_wait([task]))], 0.2)
        assert stuck == ["stubborn worker"]
    finally:
        released.set()
        await task


async def test_a_failing_stop_is_logged_and_the_next_steps_still_run(caplog: pytest.LogCaptureFixture) -> None:
    closed: list[str] = []

    async def broken() -> None:
        raise RuntimeError("credential gone")

    async def close_store() -> None:
        closed.append("store")

    stuck = await stop_each([("Graph credential", broken), ("store", close_store)], 5)
    assert (stuck, closed) == (["Graph credential"], ["store"])
    assert "stopping Graph credential failed" in caplog.text
