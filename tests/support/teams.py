"""Helpers for the Teams tests: reading the card, its thread and the connector's records from a ``BotStack``."""

from __future__ import annotations

from typing import Any

from sandbox.connector import RecordedActivity
from sandbox.graph_model import Attachment
from tests.support.bot_stack import POOL_MAILBOX, BotStack
from tests.support.cards import card_texts

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


def card_json(activity: dict[str, Any]) -> dict[str, Any]:
    """The Adaptive Card inside a posted activity."""
    attachment = activity["attachments"][0]
    assert attachment["contentType"] == CARD_CONTENT_TYPE
    return dict(attachment["content"])


def badge(card: dict[str, Any]) -> str:
    """The state badge: the first TextBlock of the card."""
    return card_texts(card).splitlines()[0]


def notice(card: dict[str, Any]) -> str | None:
    """The card's notice (why an action was refused), if it shows one."""
    return next((line for line in card_texts(card).splitlines() if line.startswith("⚠️")), None)


def action_data(card: dict[str, Any], verb: str) -> dict[str, Any]:
    """The ``data`` of the card's ``Action.Execute`` for ``verb`` (also inside a confirmation ShowCard)."""
    for action in card.get("actions", []):
        if action.get("verb") == verb:
            return dict(action["data"])
        if action.get("type") == "Action.ShowCard":
            for inner in action["card"].get("actions", []):
                if inner.get("verb") == verb:
                    return dict(inner["data"])
    raise AssertionError(f"the card has no {verb!r} action: {[a.get('verb') for a in card.get('actions', [])]}")


def the_card(stack: BotStack) -> RecordedActivity:
    cards = stack.channel_cards()
    assert len(cards) == 1, f"expected exactly one card, found {len(cards)}"
    return cards[0]


def thread_replies(stack: BotStack, conversation_id: str) -> list[str]:
    """The texts the bot sent into a card's thread (``conversation_id``; the card itself excluded), oldest first."""
    return [
        str(record.current.get("text", ""))
        for record in stack.connector.activities(conversation_id)
        if record.operation != "create"
    ]


def invoke_card(response: dict[str, Any]) -> dict[str, Any]:
    """The card of an ``adaptiveCard/action`` invoke response."""
    assert response["statusCode"] == 200 and response["type"] == CARD_CONTENT_TYPE, response
    return dict(response["value"])


async def posted_case(stack: BotStack, caller: str = "0171 2345678") -> RecordedActivity:
    """Install, link, deliver one missed call and wait: the one card it made."""
    await stack.link()
    stack.deliver_missed_call(caller)
    await stack.settle()
    return the_card(stack)


def deliver_voicemail(stack: BotStack, caller: str, audio: bytes) -> str:
    message = stack.graph.deliver_mail(
        POOL_MAILBOX,
        f"Neue Sprachnachricht von '{caller}' auf '030 1234500'",
        "no-reply@placetel.de",
        f"Sie haben eine neue Sprachnachricht erhalten.\nAnrufer: {caller}\nLänge: 0:42\n",
        attachments=[Attachment("voicemail_20261127_1012.mp3", "audio/mpeg", audio)],
    )
    return message.id
