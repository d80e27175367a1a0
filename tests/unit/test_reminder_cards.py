"""What reminders look like: due line on the case card, reminder texts, the morning overview, help with rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.config import Settings
from bot.core.commands import CommandRequest, Commands
from bot.domain.cases import Actor
from bot.domain.reminders import ReminderKind
from bot.storage.sql_store import SqlStore
from cards.case_card import build_case_card
from cards.i18n import Lang
from cards.messages import build_help_card
from cards.reminder_cards import Mention, format_waited, help_rules_blocks, reminder_text
from tests.support.cards import HOSTILE, NOW, actions, case_view, claimed_case, open_case, texts
from tests.support.reminder_cards import RULES, due_of, overview


def joined(card: dict[str, object]) -> str:
    return " | ".join(texts(card))


def test_a_new_case_shows_neu_and_its_waiting_time() -> None:
    # The first call came at 09:50 Berlin; at 10:10 it waits 20 minutes, under the 30-minute rule.
    due = due_of("open", timedelta(minutes=-30))
    card = build_case_card(case_view(open_case(), now=NOW - timedelta(minutes=30), due=due))
    assert "Neu · wartet seit 20 Min." in joined(card)
    assert card["body"][1]["style"] == "accent"


def test_an_overdue_case_shows_faellig_seit_in_red() -> None:
    later = NOW + timedelta(minutes=65)
    card = build_case_card(case_view(open_case(), now=later, due=due_of("open", timedelta(minutes=65))))
    due_line = card["body"][1]
    assert due_line["style"] == "attention"
    # The first call was at 09:50 Berlin: due at 10:20, now 11:45 → waiting 1 h 55 min of business time.
    assert due_line["items"][0]["text"] == "⏰ Fällig seit 10:20 · wartet seit 1 Std. 55 Min."


def test_english_due_line() -> None:
    later = NOW + timedelta(minutes=65)
    card = build_case_card(case_view(open_case(), Lang.EN, now=later, due=due_of("open", timedelta(minutes=65))))
    assert "Due since 10:20 · waiting for 1 h 55 min" in joined(card)


def test_a_claim_shows_its_due_line_only_when_overdue() -> None:
    assert "Freigeben" not in joined(build_case_card(case_view(claimed_case(), due=due_of("claimed"))))[:200]
    late = NOW + timedelta(hours=3)
    card = build_case_card(case_view(claimed_case(), now=late, due=due_of("claimed", timedelta(hours=3))))
    assert "in Bearbeitung – fertig? Sonst bitte „Freigeben“." in joined(card)
    assert any(action.get("verb") == "release" for action in actions(card))


def test_without_reminders_the_card_has_no_due_line() -> None:
    card = build_case_card(case_view(open_case()))
    assert "wartet seit" not in joined(card) and "Fällig" not in joined(card)


@pytest.mark.parametrize(
    ("minutes", "german"), [(0, "0 Min."), (45, "45 Min."), (60, "1 Std. 0 Min."), (125, "2 Std. 5 Min.")]
)
def test_waiting_time_format(minutes: int, german: str) -> None:
    assert format_waited(minutes, Lang.DE) == german


def test_reminder_texts_mention_and_stay_inert() -> None:
    tag = Mention("tag-1", "Empfang", is_tag=True)
    text = reminder_text(
        ReminderKind.UNCLAIMED,
        Lang.DE,
        mentions=[tag],
        waited_minutes=45,
        line_name="Zentrale",
        case=open_case(),
        count=3,
    )
    assert text == "⏰ <at>Empfang</at> Dieser Rückruf wartet seit 45 Min. – wer übernimmt?"
    nobody = reminder_text(
        ReminderKind.UNCLAIMED, Lang.DE, mentions=[], waited_minutes=30, line_name="Z", case=open_case(), count=3
    )
    assert "<at>" not in nobody and "wartet seit 30 Min." in nobody
    nudge = reminder_text(
        ReminderKind.CLAIMED,
        Lang.DE,
        mentions=[Mention("aad-anna", "Anna Schmidt")],
        waited_minutes=125,
        line_name="Z",
        case=claimed_case(),
        count=3,
    )
    assert nudge.startswith("⏰ <at>Anna Schmidt</at> du hast") and "„Freigeben“" in nudge
    escalation = reminder_text(
        ReminderKind.ESCALATION,
        Lang.EN,
        mentions=[Mention("aad-boss", HOSTILE)],
        waited_minutes=150,
        line_name=HOSTILE,
        case=claimed_case(),
        count=3,
    )
    assert "Escalation" in escalation and "with Anna Schmidt" in escalation and "reminded 3×" in escalation
    assert "https://evil" not in escalation and "[klick](" not in escalation


def test_overview_lists_oldest_first_with_claim_buttons_and_a_count() -> None:
    card = overview(Lang.DE, count=3)
    body = joined(card)
    assert body.startswith("☀️ Guten Morgen – 3 Anrufe seit 26.11.2026, 19:40 (Zentrale)")
    claims = [action for action in actions(card) if action.get("verb") == "claim"]
    assert len(claims) == 2  # many_cases claims every third case; a claimed case has no button
    assert all(action["data"]["list"] == {"command": "open", "offset": 0} for action in claims)
    long = overview(Lang.DE, count=15, total=240)
    assert "+225 weitere" in joined(long)


def test_help_explains_the_rules_and_each_lines_hours() -> None:
    card = build_help_card(Lang.DE, extra=help_rules_blocks(RULES, Lang.DE))
    body = joined(card)
    assert "Erinnerungen" in body and "nach 30 Min." in body and "länger als 120 Min." in body
    assert "nach 3 Erinnerungen" in body and "Feiertage" in body
    assert "Zentrale: Mo-Fr 08:00-12:00,14:00-18:00" in body
    assert "Mo-So 00:00-24:00 · Erinnerungen aus" in body
    off = joined(build_help_card(Lang.DE, extra=help_rules_blocks(RULES[1:], Lang.DE)))
    assert "Erinnerungen aus" in off and "nach 30 Min." not in off


async def test_hilfe_command_explains_the_configured_rules(store: SqlStore) -> None:
    line = {
        "id": "zentrale",
        "mailbox": "z@praxis.example",
        "numbers": ["+49301234500"],
        "display_name": "Zentrale",
        "hours": {"weekly": "Mo-Do 08:00-17:00; Fr 08:00-13:00", "state": "NW"},
        "reminders": {"enabled": True, "unclaimed_minutes": 20, "claimed_minutes": 90, "escalate_after": 2},
    }
    settings = Settings(_env_file=None, sandbox_mode=True, graph_client_state="s", pool_lines=[line])  # type: ignore[call-arg]
    request = CommandRequest("hilfe", Actor("aad-anna", "Anna"), None, "tenant", "19:c", "https://service")
    for message in ("hilfe", "was kannst du"):
        reply = await Commands(settings, store).handle(replace(request, text=message))
        assert reply.card is not None
        body = joined(reply.card)
        assert "nach 20 Min." in body and "länger als 90 Min." in body and "nach 2 Erinnerungen" in body
        assert "Zentrale: Mo-Do 08:00-17:00; Fr 08:00-13:00" in body
