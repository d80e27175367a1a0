"""The live card of one case: state badge, caller, line, call history and the buttons the state allows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.callers import CallerIdentity
from bot.domain.cases import Actor, Case, CaseState, ContactKind
from bot.domain.events import WITHHELD, CallEvent, EventKind
from bot.domain.reminders import DueState
from bot.domain.state_machine import TRANSITIONS, Verb, Who
from cards.elements import (
    Json,
    adaptive_card,
    case_action,
    column,
    column_set,
    execute,
    fact_set,
    notice_block,
    text_block,
)
from cards.format import (
    NAME_LIMIT,
    OUTLOOK_HOSTS,
    SUBJECT_LIMIT,
    call_links,
    caller_label,
    format_absolute,
    format_date,
    format_duration,
    format_phone,
    format_relative,
    inert,
    markdown_link,
    plain,
    safe_link,
)
from cards.i18n import Lang, calls_count, clock, text
from cards.messages import contact_result
from cards.reminder_cards import due_block

SHOWN_EVENTS = 10
"""The newest events listed on the card; older ones collapse into "+N weitere" so the card size stays bounded."""

NOTICE_LIMIT = 300

REFRESH_VERB = "refresh"
"""``Action.Execute`` verb of a card's ``refresh``: answers with the card for the viewing user, changes nothing."""
LISTEN_VERB = "listen"
"""The ``Action.Execute`` verb of "Anhören": not a state transition, the bot answers with a voicemail link."""
LISTEN_BUTTONS = 3
"""Voicemails of a case that get a button, newest first (older ones stay in Outlook)."""

BUTTON_ORDER = (Verb.CLAIM, Verb.DONE, Verb.RELEASE, Verb.TAKE_OVER, Verb.REOPEN)
"""Display order of the user verbs; which of them a card shows comes from :data:`TRANSITIONS`."""

BADGE_STYLE: Mapping[CaseState, str] = {
    CaseState.OPEN: "attention",
    CaseState.CLAIMED: "warning",
    CaseState.DONE: "good",
}

_VERB_TITLE_KEYS: Mapping[Verb, str] = {
    Verb.CLAIM: "verb_claim",
    Verb.DONE: "verb_done",
    Verb.RELEASE: "verb_release",
    Verb.REOPEN: "verb_reopen",
}


@dataclass(frozen=True, slots=True)
class CaseCardView:
    """Everything the case card shows; ``now`` must be timezone-aware."""

    case: Case
    line_name: str
    lang: Lang
    now: datetime
    claim_timeout: timedelta
    listen_link: tuple[str, str] | None = None
    """(event source id, URL): the fresh link a click on that voicemail's "Anhören" answered with, shown only to the
    member who clicked (the card of an invoke response updates only their view)."""
    notice: str | None = None
    """Plain text shown on top in attention style, e.g. why an action was refused."""
    viewer: Actor | None = None
    """Who the card is rendered for (an invoke answer or a refresh); None for the message everyone shares."""
    identity: CallerIdentity | None = None
    """Who the caller is (contacts, directory, PBX); None when no caller source is configured: the mail's name."""
    notice_positive: bool = False
    """Show the notice as a confirmation instead."""
    due: DueState | None = None
    """Waiting time and due state in business hours, on lines with reminders."""


def card_verbs(state: CaseState, *, holder_viewing: bool = False) -> tuple[Verb, ...]:
    """The user verbs the state machine allows from ``state``, in button order; the holder cannot take over."""
    return tuple(
        verb
        for verb in BUTTON_ORDER
        if (state, verb) in TRANSITIONS and not (holder_viewing and TRANSITIONS[state, verb].who is Who.NOT_CLAIMER)
    )


def state_label(case: Case, lang: Lang, *, markdown: bool = False) -> str:
    """ "Offen" / "In Bearbeitung – Anna Schmidt" / "Erledigt – Anna Schmidt", for a TextBlock when ``markdown``."""
    holder = case.holder
    if holder is not None and holder.is_outlook:
        # Graph does not say who set the flag in Outlook: say where, not a made-up name.
        return text(lang, "state_done_outlook")
    if holder is not None and holder.is_callback:
        return text(lang, "state_done_callback")
    safe = inert if markdown else plain
    return text(lang, f"state_{case.state}", name=safe(holder.name, NAME_LIMIT) if holder else "?")


def card_activity_text(case: Case, lang: Lang) -> str:
    """A one-line plain summary of the case for notifications and the activity's ``summary``."""
    return text(
        lang,
        "activity_summary",
        state=state_label(case, lang),
        caller=caller_label(case, lang),
        calls=calls_count(case.call_count, lang),
    )


def build_case_card(view: CaseCardView) -> Json:
    case = view.case
    body = [_header(view)]
    due = due_block(view.due, view.lang, view.now) if view.due is not None else None
    if due is not None:
        body.append(due)
    if view.notice:
        body.append(notice_block(inert(view.notice, NOTICE_LIMIT), positive=view.notice_positive))
    body.extend(_caller(view))
    body.extend(_facts(view))
    if _claim_timed_out(view):
        body.append(
            text_block(
                text(view.lang, "claim_timed_out", minutes=int(view.claim_timeout.total_seconds() // 60)),
                isSubtle=True,
                size="Small",
            )
        )
    if caller_was_reached(case):
        body.append(text_block(text(view.lang, "reached_hint"), weight="Bolder", spacing="Small"))
    body.extend(_history(view))
    body.extend(_listen_buttons(view))
    if case.previous is not None:
        body.append(text_block(_previous_text(view), isSubtle=True, size="Small", separator=True))
    card = adaptive_card(body, _actions(view), fallback_text=card_activity_text(case, view.lang))
    if case.state is CaseState.CLAIMED:
        # The holder's Teams client refreshes the shared card to the holder's own view: Done and Release only.
        card["refresh"] = {"action": execute("", REFRESH_VERB, {"case_id": case.id, "version": case.version})}
        holder = case.claimed_by
        if holder is not None and holder.teams_id:
            card["refresh"]["userIds"] = [holder.teams_id]
    return card


def _header(view: CaseCardView) -> Json:
    """A strip in the state's colour across the card's top: the state badge, and the line on the right."""
    case = view.case
    style = BADGE_STYLE[case.state]
    badge = column(
        # The strip's background carries the state's colour; the text keeps the theme's default colour, which
        # Teams keeps readable on it in light and dark themes (coloured text on it is not: WCAG AA needs 4.5:1).
        [text_block(state_label(case, view.lang, markdown=True), weight="Bolder")],
        verticalContentAlignment="Center",
    )
    line = column(
        [text_block(inert(view.line_name, NAME_LIMIT), isSubtle=True, horizontalAlignment="Right", size="Small")],
        width="auto",
        verticalContentAlignment="Center",
    )
    return {
        "type": "Container",
        "id": card_marker(case.id),
        "style": style,
        "bleed": True,
        "items": [column_set([badge, line])],
    }


def card_marker(case_id: str) -> str:
    """The id of a case card's first element: finds the card among the channel's messages (a POST in doubt)."""
    return f"rufpool-case-{case_id}"


def _caller(view: CaseCardView) -> list[Json]:
    case, lang = view.case, view.lang
    blocks = [text_block(caller_label(case, lang), size="ExtraLarge", weight="Bolder", spacing="Medium")]
    name_line = _caller_name_line(view)
    if name_line:
        blocks.append(text_block(name_line, spacing="None"))
    first = case.first_event
    if first is not None and first.kind is EventKind.UNRECOGNISED and first.mail is not None:
        # Sender and subject only: nothing in such a mail is trusted, so no number and no call link.
        blocks.append(text_block(text(lang, "unrecognised_hint"), isSubtle=True, size="Small", spacing="None"))
        blocks.append(
            fact_set(
                [
                    (text(lang, "mail_subject"), inert(first.mail.subject, SUBJECT_LIMIT)),
                    (text(lang, "mail_sender"), inert(first.mail.sender, SUBJECT_LIMIT)),
                ],
                spacing="Small",
            )
        )
        return blocks
    links = call_links(case.caller) if case.caller and case.caller != WITHHELD else None
    if links is not None:
        tel, teams = links
        blocks.append(
            text_block(
                f"📞 {markdown_link(text(lang, 'call_phone'), tel)}"
                f"  ·  {markdown_link(text(lang, 'call_teams'), teams)}",
                spacing="Small",
            )
        )
    return blocks


def _caller_name_line(view: CaseCardView) -> str | None:
    """``Dr. Weber · Labor Nord`` (already inert), or None when the caller's name is not known."""
    identity = view.identity
    if identity is None:
        return inert(view.case.caller_name, NAME_LIMIT) if view.case.caller_name else None
    if identity.name is None:
        return None
    name = f"**{inert(identity.name, NAME_LIMIT)}**"
    return f"{name} · {inert(identity.detail, NAME_LIMIT)}" if identity.detail else name


def _facts(view: CaseCardView) -> list[Json]:
    case, lang, now = view.case, view.lang, view.now
    facts: list[tuple[str, str]] = []
    last = case.last_event
    if last is not None:
        relative = format_relative(last.received_at, now, lang)
        summary = text(lang, "calls_summary", count=case.call_count, relative=relative)
        facts.append((text(lang, "fact_calls"), summary))
    holder, since = case.holder, case.held_since
    if holder is not None and since is not None:
        title = text(lang, "fact_claimed" if case.state is CaseState.CLAIMED else "fact_done")
        name = _holder_name(holder, lang)
        value = text(
            lang,
            "holder_since",
            name=name,
            absolute=format_absolute(since, lang),
            relative=format_relative(since, now, lang),
        )
        facts.append((title, value))
    facts.extend(_contact_facts(view))
    return [fact_set(facts, spacing="Medium")] if facts else []


def _holder_name(holder: Actor, lang: Lang) -> str:
    if holder.is_outlook:
        return text(lang, "actor_outlook")
    if holder.is_callback:
        return text(lang, "actor_callback")
    return inert(holder.name, NAME_LIMIT)


def _contact_facts(view: CaseCardView) -> list[tuple[str, str]]:
    """The last callback attempt and, when it came later, the caller's answered repeat call."""
    case, lang = view.case, view.lang
    facts = []
    callback = case.last_callback
    if callback is not None:
        value = text(
            lang,
            "callback_fact",
            agent=inert(callback.agent or "?", NAME_LIMIT),
            absolute=format_absolute(callback.at, lang),
            result=contact_result(callback, lang),
        )
        facts.append((text(lang, "fact_callback"), value))
    last = case.last_contact
    if last is not None and last.kind is ContactKind.CALLER_REACHED:
        reached = text(lang, "caller_reached_fact", absolute=format_absolute(last.at, lang))
        facts.append((text(lang, "fact_caller_reached"), reached))
    return facts


def caller_was_reached(case: Case) -> bool:
    """An open or claimed case whose caller was reached last (by a callback or their own call): Done comes first."""
    last = case.last_contact
    return case.state is not CaseState.DONE and last is not None and last.reached


def _claim_timed_out(view: CaseCardView) -> bool:
    case = view.case
    return (
        case.state is CaseState.CLAIMED
        and case.claimed_at is not None
        and view.now - case.claimed_at >= view.claim_timeout
    )


def _history(view: CaseCardView) -> list[Json]:
    events = view.case.events
    shown = events[-SHOWN_EVENTS:][::-1]
    blocks = [text_block(text(view.lang, "events_title"), weight="Bolder", separator=True, spacing="Medium")]
    blocks.extend(text_block(_event_line(view, event), spacing="Small") for event in shown)
    hidden = len(events) - len(shown)
    if hidden > 0:
        blocks.append(text_block(text(view.lang, "more_events", count=hidden), isSubtle=True, spacing="Small"))
    return blocks


def _event_line(view: CaseCardView, event: CallEvent) -> str:
    lang = view.lang
    parts = [
        f"**{format_absolute(event.received_at, lang)}**",
        format_relative(event.received_at, view.now, lang),
        _event_kind(event, lang),
    ]
    if event.called_number:
        number = format_phone(event.called_number).replace(" ", "\u00a0")  # a number never breaks across lines
        parts.append(text(lang, "event_called", number=number))
    mail = safe_link(event.mail.web_link, OUTLOOK_HOSTS) if event.mail is not None else None
    if mail is not None:
        parts.append(markdown_link(text(lang, "open_mail"), mail))
    return " · ".join(parts)


def _listen_buttons(view: CaseCardView) -> list[Json]:
    """One "Anhören" per recent voicemail: a click (``Action.Execute``) that checks membership and answers with a
    fresh single-use link; the card itself carries no link that could play for anyone."""
    case, lang = view.case, view.lang
    voicemails = [event for event in case.events[::-1] if event.voicemail is not None][:LISTEN_BUTTONS]
    buttons = []
    for event in voicemails:
        title = text(lang, "listen")
        if len(voicemails) > 1:
            title = f"{title} · {format_absolute(event.received_at, lang)}"
        fresh = view.listen_link
        url = safe_link(fresh[1]) if fresh is not None and fresh[0] == event.source_id else None
        if url is not None:
            buttons.append({"type": "Action.OpenUrl", "title": f"▶ {text(lang, 'listen_now')}", "url": url})
        else:
            buttons.append(case_action(case, LISTEN_VERB, title, extra={"event": event.source_id}))
    return [{"type": "ActionSet", "actions": buttons, "spacing": "Small"}] if buttons else []


def _event_kind(event: CallEvent, lang: Lang) -> str:
    voicemail = event.voicemail
    if voicemail is not None and voicemail.duration_seconds is not None:
        return text(lang, "event_voicemail_duration", duration=format_duration(voicemail.duration_seconds, lang))
    return text(lang, f"event_{event.kind}")


def _previous_text(view: CaseCardView) -> str:
    previous = view.case.previous
    if previous is None or previous.done_by is None or previous.done_at is None:
        return text(view.lang, "previous_done_unknown")
    return text(
        view.lang,
        "previous_done",
        name=inert(previous.done_by.name, NAME_LIMIT),
        date=format_date(previous.done_at, view.lang),
    )


def _actions(view: CaseCardView) -> list[Json]:
    case, lang = view.case, view.lang
    actions = []
    holder_viewing = view.viewer is not None and view.viewer == case.claimed_by
    verbs = card_verbs(case.state, holder_viewing=holder_viewing)
    if caller_was_reached(case) and Verb.DONE in verbs:
        verbs = (Verb.DONE, *(verb for verb in verbs if verb is not Verb.DONE))
    for index, verb in enumerate(verbs):
        style = "positive" if index == 0 else None
        if verb is Verb.TAKE_OVER:
            actions.append(_take_over(view))
        else:
            actions.append(case_action(case, verb, text(lang, _VERB_TITLE_KEYS[verb]), style=style))
    return actions


def _take_over(view: CaseCardView) -> Json:
    """Taking a case from a colleague asks for confirmation: a ShowCard holding the real ``Action.Execute``."""
    case, lang = view.case, view.lang
    holder = case.claimed_by
    name = holder.name if holder else "?"
    since = clock(case.claimed_at) if case.claimed_at else "?"
    question = text(lang, "take_over_question", name=inert(name, NAME_LIMIT), time=since)
    return {
        "type": "Action.ShowCard",
        "title": text(lang, "verb_take_over", name=plain(name, NAME_LIMIT)),
        "card": {
            "type": "AdaptiveCard",
            "body": [text_block(question)],
            "actions": [case_action(case, Verb.TAKE_OVER, text(lang, "take_over_confirm"), style="positive")],
        },
    }
