"""Job kinds for effects on Teams and Graph, and helpers to enqueue them (all effects go through the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.storage.interface import JobPriority, JobQueue

POST_CARD = "teams.card"
THREAD_REPLY = "teams.reply"
SET_FLAG = "graph.flag"
RESYNC_MAILBOX = "graph.resync"
BACKLOG_SUMMARY = "teams.backlog_summary"
ERASED_CARD = "teams.erased"
"""Replace the card of a deleted case (retention, erasure); enqueued by the store in the deleting transaction."""


async def refresh_card(
    queue: JobQueue,
    case_id: str,
    priority: JobPriority = JobPriority.LIVE,
    not_before: datetime | None = None,
    *,
    redraw: bool = False,
) -> None:
    """Post the case's card, or update it to the case's current state; pending refreshes coalesce. The cards of a
    catch-up are ``BACKLOG``: a live call's card goes first. A new call's card has the call's time as
    ``not_before``, which puts the cards in call order (oldest first) among the due jobs of their priority.

    ``redraw`` updates a card already at the case's version (what it shows besides the case changed: the caller's
    name). A refresh already pending is left alone without a write: that job has not started, so it will show the
    change the caller made before asking (the losers of a burst of clicks on one card ask for one refresh, not fifty).
    """
    key = f"card:{case_id}"
    if await queue.pending(key):
        return
    payload: dict[str, Any] = {"case_id": case_id, **({"redraw": True} if redraw else {})}
    if priority is JobPriority.BACKLOG:
        payload["backlog"] = True  # paced as backlog: a live card keeps its reserve
    await queue.enqueue(POST_CARD, payload, dedupe_key=key, run_at=not_before, priority=priority)


async def repost_card(queue: JobQueue, case_id: str) -> None:
    """Post the case's card again as a new channel message (the demo's Teams client forgets what it showed)."""
    await queue.enqueue(POST_CARD, {"case_id": case_id, "repost": True}, dedupe_key=f"repost:{case_id}")


async def reply_in_thread(
    queue: JobQueue, case_id: str, version: int, message: dict[str, Any], priority: JobPriority = JobPriority.LIVE
) -> None:
    """Add one line to the case's thread; ``message`` is ``{"key": ..., **params}`` rendered by cards.messages."""
    payload: dict[str, Any] = {"case_id": case_id, "message": message}
    if priority is JobPriority.BACKLOG:
        payload["backlog"] = True
    await queue.enqueue(THREAD_REPLY, payload, dedupe_key=f"reply:{case_id}:{version}", priority=priority)


async def write_flag(queue: JobQueue, mailbox: str, message_id: str, case_id: str) -> None:
    """Bring the mail's Outlook flag in line with its case; the job reads the case's state when it runs, so
    pending writes of one mail coalesce into one PATCH of the latest state."""
    await queue.enqueue(
        SET_FLAG,
        {"mailbox": mailbox, "message_id": message_id, "case_id": case_id},
        dedupe_key=f"flag:{mailbox.lower()}:{message_id}",
    )


async def post_backlog_summary(queue: JobQueue, line_id: str, count: int, run_id: str) -> None:
    """One card in the line's channel saying how many calls a catch-up brought (live priority: before them)."""
    await queue.enqueue(
        BACKLOG_SUMMARY, {"line_id": line_id, "count": count}, dedupe_key=f"backlog-summary:{line_id}:{run_id}"
    )
