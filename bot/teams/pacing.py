"""Client-side pacing below Teams' documented rate limits, so that 429s are the exception.

Teams allows a bot, per thread, 7 messages in 1 s, 8 in 2 s, 60 in 30 s and 1,800 in an hour, and about 30 requests
per second per app per tenant. The pacer waits just long enough before each send to stay under every window.
Senders to one thread queue behind each other; a wait for one thread never holds up another thread (only the
tenant's shared window does).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

THREAD_WINDOWS: tuple[tuple[float, int], ...] = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
TENANT_WINDOWS: tuple[tuple[float, int], ...] = ((1.0, 30),)
PRUNE_EVERY = 256
"""Sends between sweeps that forget keys whose windows are empty (one key per case thread, so they add up)."""


class SlidingWindows:
    """Send times of one key, checked against several (seconds, limit) windows."""

    def __init__(self, windows: tuple[tuple[float, int], ...]) -> None:
        self._windows = windows
        self._longest = max(seconds for seconds, _ in windows)
        self._sent: deque[float] = deque()

    def _forget_before(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= self._longest:
            self._sent.popleft()

    def delay(self, now: float) -> float:
        """Seconds to wait before one more send fits every window."""
        self._forget_before(now)
        wait = 0.0
        for seconds, limit in self._windows:
            in_window = [t for t in self._sent if now - t < seconds]
            if len(in_window) >= limit:
                wait = max(wait, in_window[-limit] + seconds - now)
        return wait

    def record(self, now: float) -> None:
        self._sent.append(now)

    def is_empty(self, now: float) -> bool:
        self._forget_before(now)
        return not self._sent


class Pacer:
    """Waits for a free slot per thread and per tenant; ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        *,
        thread_windows: tuple[tuple[float, int], ...] = THREAD_WINDOWS,
        tenant_windows: tuple[tuple[float, int], ...] = TENANT_WINDOWS,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._thread_windows = thread_windows
        self._tenant_windows = tenant_windows
        self._threads: dict[str, SlidingWindows] = {}
        self._tenants: dict[str, SlidingWindows] = {}
        self._thread_locks: dict[str, asyncio.Lock] = {}
        self._sends = 0

    async def wait(self, thread: str, tenant: str) -> None:
        """Wait for a slot in ``thread`` and ``tenant``, then take it."""
        lock = self._thread_locks.setdefault(thread, asyncio.Lock())
        async with lock:
            threads = self._threads.setdefault(thread, SlidingWindows(self._thread_windows))
            tenants = self._tenants.setdefault(tenant, SlidingWindows(self._tenant_windows))
            while True:
                # No await between the check and the record: the check-and-take is atomic on the event loop.
                now = self._clock()
                delay = max(threads.delay(now), tenants.delay(now))
                if delay <= 0:
                    threads.record(now)
                    tenants.record(now)
                    break
                await self._sleep(delay)
        self._sends += 1
        if self._sends % PRUNE_EVERY == 0:
            self._prune()

    def _prune(self) -> None:
        now = self._clock()
        for key in [key for key, windows in self._threads.items() if windows.is_empty(now)]:
            lock = self._thread_locks.get(key)
            if lock is None or not lock.locked():
                self._thread_locks.pop(key, None)
                del self._threads[key]
        for key in [key for key, windows in self._tenants.items() if windows.is_empty(now)]:
            del self._tenants[key]

    @property
    def tracked_threads(self) -> int:
        """How many threads the pacer remembers (bounded by pruning)."""
        return len(self._threads)
