"""Helpers for the command tests: seeding cases straight into the running bot's store and reading cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.effects import no_effects
from bot.domain.cases import Case
from bot.domain.events import CallEvent, EventKind, MailSource
from tests.support.bot_stack import POOL_MAILBOX, BotStack
from tests.support.cards import walk

LINE_ID = "zentrale"
PERSONAL_CHAT = "a:1personal-chat-of-user-1"


async def seed_cases(stack: BotStack, count: int) -> list[Case]:
    """``count`` open cases on the pool line, one caller each, a minute apart, returned oldest first."""
    now = datetime.now(UTC)
    cases = []
    for n in range(count):
        message_id = f"seeded-{n:04d}"
        event = CallEvent(
            source_id=CallEvent.source_id_for(POOL_MAILBOX, message_id),
            kind=EventKind.MISSED_CALL,
            line_id=LINE_ID,
            caller=f"+49171{n:07d}",
            received_at=now - timedelta(minutes=count - n),
            mail=MailSource(POOL_MAILBOX, message_id, subject="Verpasster Anruf", sender="no-reply@placetel.de"),
            caller_name=f"Caller {n:04d}",
        )
        cases.append((await stack.services.store.cases.record_event(event, effects=no_effects)).case)
    return cases


def card_actions(card: dict[str, Any], verb: str) -> list[dict[str, Any]]:
    return [element for element in walk(card) if element.get("type") == "Action.Execute" and element["verb"] == verb]


def last_reply_card(stack: BotStack, conversation_id: str) -> dict[str, Any]:
    """The adaptive card of the bot's newest activity in a conversation."""
    records = stack.connector.activities(conversation_id)
    assert records, f"the bot did not answer in {conversation_id}"
    attachments = records[-1].current.get("attachments") or []
    assert attachments, f"the bot answered without a card: {records[-1].current.get('text')!r}"
    content: dict[str, Any] = attachments[0]["content"]
    return content
