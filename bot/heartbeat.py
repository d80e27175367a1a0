"""Short leases kept alive by a heartbeat while their work runs.

A lease that only expires protects nothing once its holder is dead, and a long one makes everyone wait for a dead
holder: leases here are short (tens of seconds) and renewed every few seconds while the work runs. A holder that
finds its lease taken (it stalled past the expiry and another holder took over) stops its work instead of finishing
it twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class LeaseLost(Exception):
    """Another holder has the lease now: the work under it was stopped."""


async def renewing(work: Awaitable[T], renew: Callable[[], Awaitable[bool]], every: timedelta, what: str) -> T:
    """Run ``work`` while calling ``renew`` every ``every``; stop the work and raise :class:`LeaseLost` when
    ``renew`` answers False. A renewal that fails (the database is briefly away) is tried again at the next beat:
    the lease may well still be held, and if it is not, that beat finds out."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every.total_seconds())
            if done:
                return task.result()
            try:
                held = await renew()
            except Exception:
                log.warning("renewing the lease of %s failed; trying again at the next beat", what, exc_info=True)
                continue
            if not held:
                raise LeaseLost(f"the lease of {what} was taken by another holder; its work was stopped")
    finally:
        if not task.done():
            task.cancel()
            # asyncio.wait, not awaiting the task: a cancellation of this caller meanwhile must not be swallowed.
            await asyncio.wait({task})
        if not task.cancelled():
            # Retrieved also when the work failed just as this caller was cancelled or gave up on the lease: its error
            # is of no interest any more (asyncio logged it as "never retrieved" at every shutdown with work in hand).
            task.exception()
