"""Client-side pacing below Teams' documented rate limits, so that 429s are the exception.

Teams allows a bot, per thread, 7 messages in 1 s, 8 in 2 s, 60 in 30 s and 1,800 in an hour, and about 30 requests
per second per app per tenant. The pacer waits just long enough before each send to stay under every window, plus
:data:`MARGIN_S`: Teams counts a send when it arrives, and a send that lands exactly on a window's edge (or a little
early, after a shorter network trip than the send it follows) would be the window's one too many.

Senders to one thread queue behind each other, live and backlog sends apart (a live card never queues behind backlog
cards waiting for their slots); a wait for one thread never holds up another thread (only the tenant's shared window
does). Sends that would wait long should not hold a worker while they do: :meth:`Pacer.book`
gives them a not-before time instead, each its own one of the thread's future slots (counting the sends made and
the slots booked), and the job is deferred until then. Live and backlog sends book apart, and backlog sends leave a
quarter of every window free, so a live card never waits behind the backlog.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

THREAD_WINDOWS: tuple[tuple[float, int], ...] = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
TENANT_WINDOWS: tuple[tuple[float, int], ...] = ((1.0, 30),)
MARGIN_S = 0.05
"""Safety margin on every window edge (network jitter and clock differences between us and Teams)."""
LIVE_RESERVE = 0.25
"""Share of every window that backlog sends leave free, so that a live card finds a slot within a second or so."""
PRUNE_EVERY = 256
"""Sends between sweeps that forget keys whose windows are empty (one key per case thread, so they add up)."""


class SlidingWindows:
    """Send times of one key, in order, checked against several (seconds, limit) windows."""

    def __init__(self, windows: tuple[tuple[float, int], ...], margin: float = MARGIN_S) -> None:
        self._windows = windows
        self._margin = margin
        self._longest = max(seconds for seconds, _ in windows) + margin
        self._sent: deque[float] = deque()

    def _forget_before(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= self._longest:
            self._sent.popleft()

    def delay(self, now: float, *, backlog: bool = False) -> float:
        """Seconds to wait before one more send fits every window (with the margin); a ``backlog`` send fits only
        into the part of each window that :data:`LIVE_RESERVE` does not keep free. O(number of windows): a window is
        full exactly when its limit-th latest send is still inside it."""
        self._forget_before(now)
        wait = 0.0
        for seconds, limit in self._windows:
            if backlog:
                limit = max(1, int(limit * (1 - LIVE_RESERVE)))
            if len(self._sent) >= limit:
                wait = max(wait, self._sent[-limit] + seconds + self._margin - now)
        return wait

    def delay_beside(self, planned: SlidingWindows, now: float, at: float, *, backlog: bool = False) -> float:
        """Like :meth:`delay` for a send at ``at`` (now or later), counting this key's sends up to ``now`` together
        with the sends ``planned`` after ``now`` (a planned slot already taken is among this key's sends)."""
        self._forget_before(now)
        ahead = [time for time in planned._sent if time >= now]
        wait = 0.0
        for seconds, limit in self._windows:
            if backlog:
                limit = max(1, int(limit * (1 - LIVE_RESERVE)))
            if len(ahead) >= limit:
                latest = ahead[-limit]
            elif len(self._sent) + len(ahead) >= limit:
                latest = self._sent[len(ahead) - limit]
            else:
                continue
            wait = max(wait, latest + seconds + self._margin - at)
        return wait

    def record(self, now: float) -> None:
        """Record a send at ``now``; sends are recorded in time order."""
        self._sent.append(now)

    def is_empty(self, now: float) -> bool:
        self._forget_before(now)
        return not self._sent

    @property
    def last(self) -> float | None:
        return self._sent[-1] if self._sent else None


class Pacer:
    """Waits for a free slot per thread and per tenant; ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        *,
        thread_windows: tuple[tuple[float, int], ...] = THREAD_WINDOWS,
        tenant_windows: tuple[tuple[float, int], ...] = TENANT_WINDOWS,
        margin: float = MARGIN_S,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._thread_windows = thread_windows
        self._tenant_windows = tenant_windows
        self._margin = margin
        self._threads: dict[str, SlidingWindows] = {}
        self._tenants: dict[str, SlidingWindows] = {}
        self._booked: dict[str, SlidingWindows] = {}
        self._booked_live: dict[str, SlidingWindows] = {}
        self._thread_locks: dict[tuple[str, bool], asyncio.Lock] = {}
        """Per thread and kind of send (backlog or live): the senders of each kind queue apart."""
        self._queued: dict[tuple[str, bool], int] = {}
        self._sends = 0

    def _windows(
        self, table: dict[str, SlidingWindows], key: str, windows: tuple[tuple[float, int], ...]
    ) -> SlidingWindows:
        found = table.get(key)
        if found is None:
            found = table[key] = SlidingWindows(windows, self._margin)
        return found

    def delay(self, thread: str, tenant: str, *, backlog: bool = False) -> float:
        """How long a send to ``thread`` would wait now, counting the senders of its kind already queued for it."""
        now = self._clock()
        wait = max(
            self._windows(self._threads, thread, self._thread_windows).delay(now, backlog=backlog),
            self._windows(self._tenants, tenant, self._tenant_windows).delay(now, backlog=backlog),
        )
        queued = self._queued.get((thread, backlog), 0)
        if queued:
            # Each sender ahead takes a slot; a full 1-second window is the shortest a slot can take.
            wait += queued * min(seconds / limit for seconds, limit in self._thread_windows)
        return wait

    def book(self, thread: str, *, backlog: bool = True) -> float:
        """Seconds from now until a slot for one send to ``thread``: the earliest after every slot booked before it
        that fits the windows, counting the sends made and the slots booked. Live and backlog sends book apart (a
        live send never queues behind the backlog's bookings; backlog leaves the live reserve free). The send itself
        still goes through :meth:`wait` when its time has come."""
        now = self._clock()
        booked = self._windows(self._booked if backlog else self._booked_live, thread, self._thread_windows)
        sent = self._windows(self._threads, thread, self._thread_windows)
        at = max(now, booked.last or now)
        at += sent.delay_beside(booked, now, at, backlog=backlog)
        booked.record(at)
        return at - now

    async def wait(self, thread: str, tenant: str, *, backlog: bool = False) -> None:
        """Wait for a slot in ``thread`` and ``tenant``, then take it (``backlog``: leaving the live reserve free).
        Backlog senders queue apart from live ones: a backlog sender holds its queue while it sleeps until its slot,
        and a live card behind it waited for every backlog card ahead (a second or more each)."""
        key = (thread, backlog)
        lock = self._thread_locks.setdefault(key, asyncio.Lock())
        self._queued[key] = self._queued.get(key, 0) + 1
        try:
            await lock.acquire()
        finally:
            self._queued[key] -= 1
            if not self._queued[key]:
                del self._queued[key]
        try:
            threads = self._windows(self._threads, thread, self._thread_windows)
            tenants = self._windows(self._tenants, tenant, self._tenant_windows)
            while True:
                # No await between the check and the record: the check-and-take is atomic on the event loop.
                now = self._clock()
                delay = max(threads.delay(now, backlog=backlog), tenants.delay(now, backlog=backlog))
                if delay <= 0:
                    threads.record(now)
                    tenants.record(now)
                    break
                await self._sleep(delay)
        finally:
            lock.release()
        self._sends += 1
        if self._sends % PRUNE_EVERY == 0:
            self._prune()

    def _prune(self) -> None:
        now = self._clock()
        for key in [key for key, windows in self._threads.items() if windows.is_empty(now)]:
            locks = [self._thread_locks.get((key, backlog)) for backlog in (False, True)]
            if not any(lock is not None and lock.locked() for lock in locks):
                for backlog in (False, True):
                    self._thread_locks.pop((key, backlog), None)
                del self._threads[key]
        for table in (self._tenants, self._booked, self._booked_live):
            for key in [key for key, windows in table.items() if windows.is_empty(now)]:
                del table[key]

    @property
    def tracked_threads(self) -> int:
        """How many threads the pacer remembers (bounded by pruning)."""
        return len(self._threads)
