"""Small asyncio helpers: stopping the background tasks that workers and loops run, and sharing concurrent calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until each has finished, so nothing runs on after shutdown. A cancellation of the
    caller meanwhile is not swallowed (a stop under a time budget must be able to give up waiting)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s ended with an error while stopping: %r", task.get_name(), task.exception())


SHUTDOWN_STEP_SECONDS = 15.0
"""Time one component may take to stop at shutdown before the others go on without it."""


async def stop_each(steps: Sequence[tuple[str, Callable[[], Awaitable[object]]]], budget_seconds: float) -> list[str]:
    """Run the ``(name, stop)`` steps in order, each within ``budget_seconds``: a component that does not stop in
    time (or fails to) is logged with what is still running and left behind, so one stuck part never keeps the
    process from exiting and the parts after it still close. Returns the names of the steps that did not finish."""
    stuck = []
    for name, stop in steps:
        try:
            async with asyncio.timeout(budget_seconds):
                await stop()
        except TimeoutError:
            stuck.append(name)
            log.error("shutdown: %s did not stop within %.0f s; going on without it. Running:\n%s",
                      name, budget_seconds, running_tasks())  # fmt: skip
        except Exception:
            stuck.append(name)
            log.exception("shutdown: stopping %s failed; going on", name)
    return stuck


def running_tasks(frames: int = 4) -> str:
    """The loop's unfinished tasks with their innermost frames: what a stuck shutdown is waiting for."""
    lines = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task() or task.done():
            continue
        where = " <- ".join(f"{f.f_code.co_name} ({f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno})"
                            for f in reversed(task.get_stack(limit=frames)))  # fmt: skip
        lines.append(f"  {task.get_name()}: {where or '(not started)'}")
    return "\n".join(lines)


K = TypeVar("K")
V = TypeVar("V")


class SharedCalls(Generic[K, V]):
    """Concurrent calls for one key share one run: a caller that arrives while a call for its key is running waits
    for that call's result instead of starting another. Only calls that overlap share; the next call runs anew.

    For reads whose answer may be a moment older than the caller (it was asked for just before the caller came):
    the snapshot a card click is decided on, where a compare-and-set in the store guards every change anyway.
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    async def call(self, key: K, run: Callable[[], Awaitable[V]]) -> V:
        shared = self._running.get(key)
        if shared is None:
            shared = asyncio.ensure_future(run())
            self._running[key] = shared
            shared.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: one caller giving up (a dropped request) does not cancel the others' answer.
        return await asyncio.shield(shared)

    def _finished(self, key: K, done: asyncio.Future[V]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved here: every caller may have given up before it failed
