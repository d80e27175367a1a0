"""SharedCalls: concurrent calls for one key share one run; later calls run anew."""

from __future__ import annotations

import asyncio

import pytest

from bot.tasks import SharedCalls


class Reads:
    """A read that waits until released, counting how often it ran."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.runs += 1
        run = self.runs
        await self.release.wait()
        return run


async def test_overlapping_calls_for_one_key_share_one_run() -> None:
    shared: SharedCalls[str, int] = SharedCalls()
    read = Reads()

    calls = [asyncio.create_task(shared.call("case-1", read)) for _ in range(20)]
    await asyncio.sleep(0)
    read.release.set()

    assert await asyncio.gather(*calls) == [1] * 20
    assert read.runs == 1


async def test_a_call_after_the_shared_one_finished_runs_anew() -> None:
    shared: SharedCalls[str, int] = SharedCalls()
    read = Reads()
    read.release.set()

    assert await shared.call("case-1", read) == 1
    assert await shared.call("case-1", read) == 2


async def test_other_keys_do_not_share() -> None:
    shared: SharedCalls[str, int] = SharedCalls()
    read = Reads()

    calls = [asyncio.create_task(shared.call(key, read)) for key in ("case-1", "case-2")]
    await asyncio.sleep(0)
    read.release.set()

    assert sorted(await asyncio.gather(*calls)) == [1, 2]


async def test_a_caller_that_gives_up_does_not_cancel_the_others() -> None:
    shared: SharedCalls[str, int] = SharedCalls()
    read = Reads()
    first = asyncio.create_task(shared.call("case-1", read))
    second = asyncio.create_task(shared.call("case-1", read))
    await asyncio.sleep(0)

    first.cancel()
    await asyncio.sleep(0)
    read.release.set()

    assert await second == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failure_reaches_every_caller_and_the_next_call_runs_anew() -> None:
    shared: SharedCalls[str, int] = SharedCalls()
    runs = 0

    async def failing() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0)
        raise ConnectionError("store down")

    calls = [asyncio.create_task(shared.call("case-1", failing)) for _ in range(3)]
    results = await asyncio.gather(*calls, return_exceptions=True)

    assert [type(result) for result in results] == [ConnectionError] * 3
    assert runs == 1
    with pytest.raises(ConnectionError):
        await shared.call("case-1", failing)
    assert runs == 2
