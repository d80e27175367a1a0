"""Job kinds for effects on Teams and Graph, and helpers to enqueue them (all effects go through the outbox)."""

from __future__ import annotations

from typing import Any

from bot.storage.interface import JobQueue

POST_CARD = "teams.card"
THREAD_REPLY = "teams.reply"
SET_FLAG = "graph.flag"
RESYNC_MAILBOX = "graph.resync"
ERASED_CARD = "teams.erased"
"""Replace the card of a deleted case (retention, erasure); enqueued by the store in the deleting transaction."""


async def refresh_card(queue: JobQueue, case_id: str, *, redraw: bool = False) -> None:
    """Post the case's card, or update it to the case's current state; pending refreshes coalesce.

    ``redraw`` updates a card already at the case's version (what it shows besides the case changed: the caller's
    name)."""
    payload: dict[str, Any] = {"case_id": case_id, **({"redraw": True} if redraw else {})}
    await queue.enqueue(POST_CARD, payload, dedupe_key=f"card:{case_id}")


async def repost_card(queue: JobQueue, case_id: str) -> None:
    """Post the case's card again as a new channel message (the demo's Teams client forgets what it showed)."""
    await queue.enqueue(POST_CARD, {"case_id": case_id, "repost": True}, dedupe_key=f"repost:{case_id}")


async def reply_in_thread(queue: JobQueue, case_id: str, version: int, message: dict[str, Any]) -> None:
    """Add one line to the case's thread; ``message`` is ``{"key": ..., **params}`` rendered by cards.messages."""
    await queue.enqueue(THREAD_REPLY, {"case_id": case_id, "message": message}, dedupe_key=f"reply:{case_id}:{version}")


async def write_flag(queue: JobQueue, mailbox: str, message_id: str, case_id: str) -> None:
    """Bring the mail's Outlook flag in line with its case; the job reads the case's state when it runs, so
    pending writes of one mail coalesce into one PATCH of the latest state."""
    await queue.enqueue(
        SET_FLAG,
        {"mailbox": mailbox, "message_id": message_id, "case_id": case_id},
        dedupe_key=f"flag:{mailbox.lower()}:{message_id}",
    )
