"""Client-side pacing below Teams' documented rate limits, so that 429s are the exception.

Teams allows a bot, per thread, 7 messages in 1 s, 8 in 2 s, 60 in 30 s and 1,800 in an hour, and about 30 requests
per second per app per tenant. The pacer waits just long enough before each send to stay under every window.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable

THREAD_WINDOWS: tuple[tuple[float, int], ...] = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
TENANT_WINDOWS: tuple[tuple[float, int], ...] = ((1.0, 30),)


class SlidingWindows:
    """Send times of one key, checked against several (seconds, limit) windows."""

    def __init__(self, windows: tuple[tuple[float, int], ...]) -> None:
        self._windows = windows
        self._sent: deque[float] = deque()

    def delay(self, now: float) -> float:
        """Seconds to wait before one more send fits every window."""
        longest = max(seconds for seconds, _ in self._windows)
        while self._sent and now - self._sent[0] >= longest:
            self._sent.popleft()
        wait = 0.0
        for seconds, limit in self._windows:
            in_window = [t for t in self._sent if now - t < seconds]
            if len(in_window) >= limit:
                wait = max(wait, in_window[-limit] + seconds - now)
        return wait

    def record(self, now: float) -> None:
        self._sent.append(now)


class Pacer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._threads: defaultdict[str, SlidingWindows] = defaultdict(lambda: SlidingWindows(THREAD_WINDOWS))
        self._tenants: defaultdict[str, SlidingWindows] = defaultdict(lambda: SlidingWindows(TENANT_WINDOWS))
        self._lock = asyncio.Lock()

    async def wait(self, thread: str, tenant: str) -> None:
        """Wait for a slot in ``thread`` and ``tenant``, then take it."""
        async with self._lock:
            while True:
                now = self._clock()
                delay = max(self._threads[thread].delay(now), self._tenants[tenant].delay(now))
                if delay <= 0:
                    self._threads[thread].record(now)
                    self._tenants[tenant].record(now)
                    return
                await asyncio.sleep(delay)
