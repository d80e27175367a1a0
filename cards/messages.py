"""Small cards (link and unlink confirmations, help) and the one-line replies in a case's thread.

Thread replies are sent as Teams message text, which is markdown too, so names in them are made inert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo

from bot.domain.cases import Actor, Contact, ContactKind
from bot.domain.events import CallEvent, EventKind
from bot.domain.state_machine import Verb
from cards.elements import Json, adaptive_card, fact_set, text_block
from cards.format import NAME_LIMIT, format_duration, inert
from cards.i18n import BERLIN, Lang, clock, ordinal, text

_REPLY_KEYS: Mapping[Verb, str] = {
    Verb.CLAIM: "reply_claim",
    Verb.TAKE_OVER: "reply_take_over",
    Verb.RELEASE: "reply_release",
    Verb.DONE: "reply_done",
    Verb.REOPEN: "reply_reopen",
    Verb.OUTLOOK_COMPLETE: "reply_outlook_complete",
    Verb.OUTLOOK_FLAG: "reply_outlook_reopen",
    Verb.OUTLOOK_CLEAR: "reply_outlook_reopen",
    Verb.CALLBACK_REACHED: "reply_callback_reached",
}

_REPEAT_KEYS: Mapping[EventKind, str] = {
    EventKind.MISSED_CALL: "reply_repeat_call",
    EventKind.VOICEMAIL: "reply_repeat_voicemail",
    EventKind.FAX: "reply_repeat_fax",
    EventKind.UNRECOGNISED: "reply_repeat_mail",
}

_HELP_COMMANDS = (
    ("cmd_open", "help_cmd_open"),
    ("cmd_mine", "help_cmd_mine"),
    ("cmd_stats", "help_cmd_stats"),
    ("cmd_help", "help_cmd_help"),
    ("cmd_link", "help_cmd_link"),
    ("cmd_unlink", "help_cmd_unlink"),
    ("cmd_forget", "help_cmd_forget"),
)

UNKNOWN_COMMAND_LIMIT = 60


def state_change_reply(
    verb: Verb,
    actor: Actor,
    at: datetime,
    lang: Lang,
    *,
    previous_holder: Actor | None = None,
    tz: tzinfo = BERLIN,
) -> str:
    """The thread line for a state change, e.g. "Anna Schmidt hat übernommen · 10:32"."""
    previous = inert(previous_holder.name, NAME_LIMIT) if previous_holder else "?"
    key = "reply_outlook_release" if verb is Verb.OUTLOOK_CLEAR and previous_holder else _REPLY_KEYS[verb]
    return text(lang, key, name=inert(actor.name, NAME_LIMIT), previous=previous, time=clock(at, tz))


def repeat_call_reply(event: CallEvent, call_number: int, lang: Lang, tz: tzinfo = BERLIN) -> str:
    """The thread line for another call in an open case, e.g. "Erneuter Anruf · 10:45 (3. Anruf)"."""
    return text(lang, _REPEAT_KEYS[event.kind], time=clock(event.received_at, tz), ordinal=ordinal(call_number, lang))


def build_erased_card(lang: Lang, *, expired: bool) -> Json:
    """What a deleted case's card becomes: no number, no name, no times; only that it was deleted and why."""
    return adaptive_card(
        [
            text_block(f"🗑 {text(lang, 'erased_title')}", weight="Bolder", size="Medium"),
            text_block(text(lang, "expired_text" if expired else "erased_text"), isSubtle=True),
        ],
        fallback_text=text(lang, "erased_title"),
    )


def contact_result(contact: Contact, lang: Lang) -> str:
    """``erreicht (2:15 Min.)`` or ``nicht erreicht``."""
    if contact.reached:
        return text(lang, "callback_reached", duration=format_duration(contact.duration_seconds, lang))
    return text(lang, "callback_not_reached")


def contact_reply(contact: Contact, lang: Lang, tz: tzinfo = BERLIN) -> str:
    """The thread line for a callback ("Rückruf von Anna · 14:32 · erreicht (2:15 Min.)") or for a caller who
    called again and was reached."""
    time = clock(contact.at, tz)
    if contact.kind is ContactKind.CALLER_REACHED:
        return text(lang, "reply_caller_reached", time=time)
    agent = inert(contact.agent or "?", NAME_LIMIT)
    return text(lang, "reply_callback", agent=agent, time=time, result=contact_result(contact, lang))


def build_link_confirmation_card(line_name: str, lang: Lang) -> Json:
    return _confirmation(lang, "linked_title", "linked_text", line_name, "good")


def build_unlink_confirmation_card(line_name: str, lang: Lang) -> Json:
    return _confirmation(lang, "unlinked_title", "unlinked_text", line_name, "default")


def _confirmation(lang: Lang, title_key: str, text_key: str, line_name: str, style: str) -> Json:
    title = text(lang, title_key)
    container = {
        "type": "Container",
        "style": style,
        "items": [
            text_block(f"✓ {title}", weight="Bolder", size="Medium"),
            text_block(text(lang, text_key, line=f"**{inert(line_name, NAME_LIMIT)}**")),
        ],
    }
    return adaptive_card([container], fallback_text=title)


def build_backlog_summary_card(count: int, line_name: str, lang: Lang) -> Json:
    """Posted once when a catch-up brings many calls of a line at once, so the team sees the backlog at once."""
    title = text(lang, "backlog_title", count=count)
    container = {
        "type": "Container",
        "style": "attention",
        "items": [
            text_block(title, weight="Bolder", size="Medium"),
            text_block(text(lang, "backlog_text", count=count, line=f"**{inert(line_name, NAME_LIMIT)}**")),
        ],
    }
    return adaptive_card([container], fallback_text=title)


def build_help_card(lang: Lang, unknown_text: str | None = None, extra: Sequence[Json] = ()) -> Json:
    """What the bot does and its commands; ``unknown_text`` is the message that was not understood, if any;
    ``extra`` are further sections (the reminder rules)."""
    body = [text_block(text(lang, "help_title"), size="Large", weight="Bolder")]
    if unknown_text is not None:
        body.append(
            text_block(
                text(lang, "help_unknown", text=inert(unknown_text, UNKNOWN_COMMAND_LIMIT)),
                weight="Bolder",
            )
        )
    buttons = {"claim": text(lang, "verb_claim"), "done": text(lang, "verb_done")}
    body.append(text_block(text(lang, "help_intro", **buttons)))
    body.append(text_block(text(lang, "help_commands"), weight="Bolder", spacing="Medium"))
    body.append(fact_set([(text(lang, command), text(lang, meaning)) for command, meaning in _HELP_COMMANDS]))
    body.extend(extra)
    return adaptive_card(body, fallback_text=text(lang, "help_intro", **buttons))
