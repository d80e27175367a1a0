"""Small Adaptive Card 1.5 element builders shared by every card."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.domain.cases import Case

Json = dict[str, Any]

CARD_VERSION = "1.5"
SCHEMA_URL = "http://adaptivecards.io/schemas/adaptive-card.json"


def adaptive_card(body: Sequence[Json], actions: Sequence[Json] = (), *, fallback_text: str | None = None) -> Json:
    card: Json = {"type": "AdaptiveCard", "$schema": SCHEMA_URL, "version": CARD_VERSION, "body": list(body)}
    if actions:
        card["actions"] = list(actions)
    if fallback_text:
        card["fallbackText"] = fallback_text
    return card


def text_block(text: str, **props: Any) -> Json:
    """A wrapping TextBlock; ``text`` must already be escaped where it holds untrusted parts."""
    return {"type": "TextBlock", "text": text, "wrap": True, **props}


def fact_set(facts: Sequence[tuple[str, str]], **props: Any) -> Json:
    return {"type": "FactSet", "facts": [{"title": title, "value": value} for title, value in facts], **props}


def column(items: Sequence[Json], width: str = "stretch", **props: Any) -> Json:
    return {"type": "Column", "width": width, "items": list(items), **props}


def column_set(columns: Sequence[Json], **props: Any) -> Json:
    return {"type": "ColumnSet", "columns": list(columns), **props}


def execute(title: str, verb: str, data: Mapping[str, Any], *, style: str | None = None) -> Json:
    action: Json = {"type": "Action.Execute", "title": title, "verb": verb, "data": dict(data)}
    if style is not None:
        action["style"] = style
    return action


def case_action(
    case: Case, verb: str, title: str, *, style: str | None = None, extra: Mapping[str, Any] | None = None
) -> Json:
    """An ``Action.Execute`` on ``case``; the version lets the bot tell a stale card from the current one."""
    data = {"case_id": case.id, "version": case.version, "line_id": case.line_id, **(extra or {})}
    return execute(title, verb, data, style=style)


def notice_block(escaped_text: str, *, positive: bool = False) -> Json:
    """A highlighted line on top of a card: a refusal (attention) or a confirmation (good)."""
    icon, style = ("✓", "good") if positive else ("⚠️", "attention")
    return {
        "type": "Container",
        "style": style,
        "spacing": "Medium",
        "items": [text_block(f"{icon} {escaped_text}", weight="Bolder")],
    }
