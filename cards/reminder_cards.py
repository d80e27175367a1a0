"""What reminders look like: the due line on a case card, the reminder lines in a thread and the morning overview.

Pure functions from state to text or card JSON. Mentions are written as ``<at>Name</at>``; the Teams layer adds the
matching mention entities (users by AAD object id, team tags by tag id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from bot.domain.cases import Case, CaseState
from bot.domain.reminders import DueState, ReminderKind
from bot.domain.state_machine import Verb
from cards.elements import Json, adaptive_card, case_action, column, column_set, notice_block, text_block
from cards.format import NAME_LIMIT, caller_label, format_absolute, inert
from cards.i18n import BERLIN, Lang, calls_count, clock, text

OVERVIEW_LIST_ORIGIN = {"command": "open", "offset": 0}
"""A Claim clicked on an overview answers with the open list (as in the list card), not with one case's card."""
NUDGE_ORIGIN = "nudge"
"""``data.origin`` of the Freigeben button on a claim nudge: the click answers with a short confirmation."""


@dataclass(frozen=True, slots=True)
class Mention:
    """Someone to @mention: a user (AAD object id) or a team tag (``is_tag``)."""

    id: str
    name: str
    is_tag: bool = False

    @property
    def markup(self) -> str:
        return f"<at>{inert(self.name, NAME_LIMIT)}</at>"


def format_waited(minutes: int, lang: Lang) -> str:
    """``45 Min.`` / ``2 Std. 5 Min.`` (business minutes)."""
    if minutes < 60:
        return text(lang, "waited_minutes", m=minutes)
    return text(lang, "waited_hours", h=minutes // 60, m=minutes % 60)


def _moment(moment: datetime, now: datetime, lang: Lang, tz: tzinfo = BERLIN) -> str:
    """``08:30`` today, else the date and time."""
    same_day = moment.astimezone(tz).date() == now.astimezone(tz).date()
    return clock(moment, tz) if same_day else format_absolute(moment, lang, tz)


def due_block(due: DueState, lang: Lang, now: datetime) -> Json | None:
    """The case card's due line: "Fällig seit 08:30 · wartet seit 45 Min." in red, or "Neu · …"; for a claim only
    once it is overdue."""
    waited = format_waited(due.waited_minutes, lang)
    if due.state is CaseState.CLAIMED:
        if not due.is_due:
            return None
        line, style = text(lang, "due_claim_overdue", waited=waited), "warning"
    elif due.due_since is not None:
        since = _moment(due.due_since, now, lang)
        line, style = "⏰ " + text(lang, "due_since", since=since, waited=waited), "attention"
    else:
        line, style = text(lang, "due_new", waited=waited), "accent"
    # The container's style carries the colour; the text keeps the default colour, readable (WCAG AA) on it.
    return {
        "type": "Container",
        "style": style,
        "spacing": "Small",
        "items": [text_block(line, weight="Bolder", size="Small")],
    }


def mention_list(mentions: Sequence[Mention]) -> str:
    return " ".join(mention.markup for mention in mentions)


def reminder_text(
    kind: ReminderKind,
    lang: Lang,
    *,
    mentions: Sequence[Mention],
    waited_minutes: int,
    line_name: str,
    case: Case,
    count: int,
) -> str:
    """The thread line of a reminder (markdown; names inside ``<at>`` are plain, everything else inert)."""
    waited = format_waited(waited_minutes, lang)
    who = mention_list(mentions)
    match kind:
        case ReminderKind.UNCLAIMED:
            key = "reminder_unclaimed" if mentions else "reminder_unclaimed_nobody"
            return text(lang, key, mentions=who, waited=waited)
        case ReminderKind.CLAIMED:
            return text(lang, "reminder_claimed", mentions=who, waited=waited).strip()
        case ReminderKind.ESCALATION:
            holder = case.claimed_by if case.state is CaseState.CLAIMED else None
            key = "reminder_escalation_claimed" if holder else "reminder_escalation"
            return text(
                lang,
                key,
                mentions=who,
                waited=waited,
                line=inert(line_name, NAME_LIMIT),
                caller=caller_label(case, lang),
                name=inert(holder.name, NAME_LIMIT) if holder else "",
                count=count,
            ).strip()
    raise AssertionError(f"unhandled reminder kind {kind}")


@dataclass(frozen=True, slots=True)
class OverviewView:
    line_name: str
    cases: Sequence[Case]
    """The listed cases, oldest first (their current state: a case claimed since is shown without a button)."""
    total: int
    closed_since: datetime | None
    lang: Lang
    now: datetime


def build_overview_card(view: OverviewView) -> Json:
    """The morning digest: how many calls came in while closed, oldest first, each with a Claim button."""
    lang = view.lang
    count = calls_count(view.total, lang)
    line = inert(view.line_name, NAME_LIMIT)
    if view.closed_since is not None:
        title = text(lang, "overview_title", count=count, since=_moment(view.closed_since, view.now, lang), line=line)
    else:
        title = text(lang, "overview_title_first", count=count, line=line)
    body = [
        text_block(f"☀️ {title}", size="Large", weight="Bolder"),
        text_block(text(lang, "overview_intro"), isSubtle=True, spacing="Small"),
    ]
    body.extend(_overview_row(case, lang) for case in view.cases)
    hidden = view.total - len(view.cases)
    if hidden > 0:
        body.append(text_block(text(lang, "overview_more", count=hidden), isSubtle=True, separator=True))
    return adaptive_card(body, fallback_text=title)


def _overview_row(case: Case, lang: Lang) -> Json:
    who = f"**{caller_label(case, lang)}**"
    if case.caller_name:
        who += f" · {inert(case.caller_name, NAME_LIMIT)}"
    details = f"{format_absolute(case.created_at, lang)} · {calls_count(case.call_count, lang)}"
    columns = [column([text_block(who), text_block(details, isSubtle=True, size="Small", spacing="None")])]
    if case.state is CaseState.OPEN:
        claim = case_action(
            case, Verb.CLAIM, text(lang, "verb_claim"), style="positive", extra={"list": dict(OVERVIEW_LIST_ORIGIN)}
        )
        columns.append(
            column([{"type": "ActionSet", "actions": [claim]}], width="auto", verticalContentAlignment="Center")
        )
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": [column_set(columns)]}


@dataclass(frozen=True, slots=True)
class LineRulesSummary:
    """One line's hours and reminder rules, as the help card explains them."""

    line_name: str
    hours: str
    reminders_on: bool
    unclaimed_minutes: int
    claimed_minutes: int
    escalate_after: int


def help_rules_blocks(lines: Sequence[LineRulesSummary], lang: Lang) -> list[Json]:
    """The help card's section on reminders: the rules with the numbers of the first line that has them on (none
    when no line has), and every line's hours."""
    if not lines:
        return []
    blocks = [text_block(text(lang, "help_rules_title"), weight="Bolder", spacing="Medium")]
    example = next((line for line in lines if line.reminders_on), None)
    if example is not None:
        rules = text(
            lang,
            "help_rules",
            unclaimed=example.unclaimed_minutes,
            claimed=example.claimed_minutes,
            after=example.escalate_after,
        )
        blocks.append(text_block(rules))
    blocks.extend(
        text_block(
            text(
                lang,
                "help_hours" if line.reminders_on else "help_hours_off",
                line=inert(line.line_name, NAME_LIMIT),
                hours=inert(line.hours, NAME_LIMIT * 2),
            ),
            size="Small",
            spacing="None",
        )
        for line in lines
    )
    return blocks


def build_nudge_card(case: Case, lang: Lang) -> Json:
    """The Freigeben button under a claim nudge in the case's thread."""
    hint = text(lang, "nudge_release_hint")
    release = case_action(case, Verb.RELEASE, text(lang, "verb_release"), extra={"origin": NUDGE_ORIGIN})
    return adaptive_card([text_block(hint, isSubtle=True, size="Small")], [release], fallback_text=hint)


def build_nudge_answer(lang: Lang, notice: str, *, positive: bool) -> Json:
    """What the clicker of a nudge's Freigeben sees instead of the button: done, or why not."""
    return adaptive_card([notice_block(inert(notice, NAME_LIMIT * 4), positive=positive)], fallback_text=notice)
