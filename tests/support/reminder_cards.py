"""Card variants of reminders and business hours (due states, morning overview, help with rules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from bot.domain.business_hours import BusinessCalendar
from bot.domain.reminders import DueState, ReminderPolicy, due_state
from bot.line_rules import LineHours
from cards.case_card import build_case_card
from cards.i18n import Lang
from cards.messages import build_help_card
from cards.reminder_cards import (
    LineRulesSummary,
    OverviewView,
    build_nudge_answer,
    build_nudge_card,
    build_overview_card,
    help_rules_blocks,
)
from tests.support.cards import HOSTILE, LINE_NAME, NOW, case_view, claimed_case, many_cases, open_case

Json = dict[str, Any]
CALENDAR: BusinessCalendar = LineHours(weekly="Mo-Fr 08:00-18:00", state="BE").calendar
POLICY = ReminderPolicy()
RULES = [
    LineRulesSummary(LINE_NAME, "Mo-Fr 08:00-12:00,14:00-18:00", True, 30, 120, 3),
    LineRulesSummary(HOSTILE, "Mo-So 00:00-24:00", False, 30, 120, 3),
]


def due_of(case_state: str, now_offset: timedelta = timedelta(0)) -> DueState:
    case = open_case() if case_state == "open" else claimed_case()
    due = due_state(case, CALENDAR, POLICY, NOW + now_offset)
    assert due is not None
    return due


def overview(lang: Lang, count: int = 3, total: int | None = None) -> Json:
    cases = many_cases(count)
    view = OverviewView(LINE_NAME, cases, total if total is not None else count, NOW - timedelta(hours=15), lang, NOW)
    return build_overview_card(view)


def reminder_card_variants() -> Iterator[tuple[str, Callable[[], Json]]]:
    for lang in Lang:
        yield f"due-new-{lang}", lambda lang=lang: build_case_card(case_view(open_case(), lang, due=due_of("open")))
        yield (
            f"due-overdue-{lang}",
            lambda lang=lang: build_case_card(
                case_view(open_case(), lang, now=NOW + timedelta(hours=1), due=due_of("open", timedelta(hours=1)))
            ),
        )
        yield f"overview-{lang}", lambda lang=lang: overview(lang)
        yield f"help-rules-{lang}", lambda lang=lang: build_help_card(lang, extra=help_rules_blocks(RULES, lang))
    yield (
        "due-claim-overdue",
        lambda: build_case_card(
            case_view(claimed_case(), now=NOW + timedelta(hours=3), due=due_of("claimed", timedelta(hours=3)))
        ),
    )
    yield "overview-long", lambda: overview(Lang.DE, count=15, total=240)
    for lang in Lang:
        yield f"nudge-{lang}", lambda lang=lang: build_nudge_card(claimed_case(), lang)
    yield "nudge-answer", lambda: build_nudge_answer(Lang.DE, HOSTILE, positive=False)
