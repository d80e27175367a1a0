"""Command parsing, the list card's size bound, and the benchmark module on a small N (no timing assertions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bench.open_answer import main as bench_main
from bot.core.commands import parse_command
from bot.domain.cases import Actor, Case, CaseState
from bot.domain.events import CallEvent, EventKind, MailSource
from cards.format import NAME_LIMIT
from cards.i18n import Lang
from cards.list_card import PAGE_SIZE, CaseListView, ListCommand, build_list_card

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
CARD_BUDGET_BYTES = 40 * 1024


@pytest.mark.parametrize(("message", "expected"), [
    ("open", ("open", "")),
    ("/open", ("open", "")),
    ("@Rufpool open", ("open", "")),
    ("rufpool: Offen", ("open", "")),
    ("  OFFEN  ", ("open", "")),
    ("&nbsp;offen&nbsp;", ("open", "")),
    ("\u00a0/Offen\u00a0\n", ("open", "")),
    ("<at>Rufpool</at> open", ("open", "")),
    ("open <at>Rufpool</at>", ("open", "")),
    ("<at>Rufpool (Test)</at>&nbsp;meine", ("mine", "")),
    ("<AT id=\"0\">Rufpool</AT> Mine.", ("mine", "")),
    ("hilfe!", ("help", "")),
    ("?", ("help", "")),
    ("verbinden   Zentrale ", ("link", "Zentrale")),
    ("<at>Rufpool</at>", (None, "")),
    ("", (None, "")),
    ("<at>Rufpool</at> was kannst du", (None, "was kannst du")),
    ("opener", (None, "opener")),
])
def test_parse_command(message: str, expected: tuple[str | None, str]) -> None:
    assert parse_command(message) == expected


def _worst_case(n: int) -> Case:
    """A case with the longest names the cards show, claimed, with many calls."""
    longest = "Ä" * NAME_LIMIT
    mailbox = "zentrale@praxis.example"
    event = CallEvent(
        source_id=f"mail:{mailbox}:{n}", kind=EventKind.VOICEMAIL, line_id="zentrale", caller=f"+49171{n:07d}",
        received_at=NOW - timedelta(days=3), mail=MailSource(mailbox, str(n)), caller_name=longest,
    )
    return Case(
        id=f"{n:032x}", line_id="zentrale", caller=event.caller, created_at=event.received_at,
        state=CaseState.CLAIMED if n % 2 else CaseState.OPEN, version=7, events=(event,) * 40, caller_name=longest,
        claimed_by=Actor(f"aad-{n}", longest) if n % 2 else None, claimed_at=NOW if n % 2 else None,
    )


@pytest.mark.parametrize("lang", ["de", "en"])
def test_a_full_list_page_with_the_longest_names_stays_within_40_kb(lang: Lang) -> None:
    view = CaseListView(
        command=ListCommand.OPEN, cases=[_worst_case(n) for n in range(PAGE_SIZE)], total=10_000, offset=5_000,
        line_names={"zentrale": "L" * NAME_LIMIT}, lang=lang, now=NOW,
    )
    card = build_list_card(view)
    assert len(json.dumps(card).encode()) <= CARD_BUDGET_BYTES
    assert len(card["actions"]) == 2, "both paging buttons in the middle of a long list"


def test_the_benchmark_runs_on_a_small_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--cases", "25", "--repeat", "3", "--no-postgres"]) == 0
    printed = capsys.readouterr().out
    for scenario in ("open, channel, first page", "open, channel, last page", "open, personal chat", "mine"):
        assert scenario in printed
    assert "25 cases seeded" in printed
