"""Grouping rules of the pure domain (the stores apply the same function: see tests/unit/test_storage_contract.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.domain.cases import Case, CaseState, PreviousCase
from bot.domain.events import WITHHELD, EventKind
from bot.domain.grouping import is_active, place_event
from tests.support.storage import ALICE, BOB, T0, make_event


def new_case(
    message_id: str = "m1", caller: str | None = "+4930123456", *, line_id: str = "line-1", minutes: float = 0,
    kind: EventKind = EventKind.MISSED_CALL,
) -> Case:
    event = make_event(message_id, caller, line_id=line_id, minutes=minutes, kind=kind)
    return place_event(event, None, None, "case-1")


def test_first_call_opens_a_case() -> None:
    event = make_event("m1", caller_name="Erika")
    case = place_event(event, None, None, "case-1")
    assert (case.id, case.state, case.version, case.events, case.caller_name) == (
        "case-1", CaseState.OPEN, 1, (event,), "Erika")
    assert case.created_at == case.updated_at == event.received_at and case.previous is None


@pytest.mark.parametrize("state", [CaseState.OPEN, CaseState.CLAIMED])
def test_repeat_caller_joins_the_active_case(state: CaseState) -> None:
    active = replace(new_case(), state=state, claimed_by=ALICE if state is CaseState.CLAIMED else None)
    later = make_event("m2", minutes=5, caller_name="Erika")

    joined = place_event(later, active, None, "unused")

    assert joined.id == active.id and joined.state is state and joined.claimed_by == active.claimed_by
    assert joined.events == (*active.events, later) and joined.version == active.version + 1
    assert joined.caller_name == "Erika" and joined.updated_at == later.received_at


def test_events_are_kept_in_call_time_order() -> None:
    active = new_case("m2", minutes=10)
    joined = place_event(make_event("m1", minutes=1), active, None, "unused")
    assert [event.mail.message_id for event in joined.events] == ["m1", "m2"]


@pytest.mark.parametrize(
    ("caller", "kind"), [(WITHHELD, EventKind.MISSED_CALL), (None, EventKind.VOICEMAIL),
                         ("+4930123456", EventKind.UNRECOGNISED)],
)
def test_withheld_unknown_and_unrecognised_never_group(caller: str | None, kind: EventKind) -> None:
    active = new_case(caller=caller, kind=kind)
    done = replace(active, id="done-1", state=CaseState.DONE, done_by=BOB, done_at=T0)

    placed = place_event(make_event("m2", caller, kind=kind), active, done, "case-2")

    assert placed.id == "case-2" and placed.events[0].mail.message_id == "m2"
    assert placed.previous is None


def test_after_done_a_new_case_links_the_previous_one() -> None:
    done = replace(new_case(), state=CaseState.DONE, done_by=BOB, done_at=T0 + timedelta(minutes=3))

    placed = place_event(make_event("m2", minutes=60), None, done, "case-2")

    assert placed.id == "case-2" and placed.state is CaseState.OPEN
    assert placed.previous == PreviousCase("case-1", BOB, T0 + timedelta(minutes=3))
    assert not is_active(done) and is_active(placed)


def test_different_lines_do_not_group() -> None:
    active = new_case(line_id="line-1")
    with pytest.raises(ValueError, match="active_case"):
        place_event(make_event("m2", line_id="line-2"), active, None, "case-2")
    assert place_event(make_event("m2", line_id="line-2"), None, None, "case-2").line_id == "line-2"


def test_a_done_case_is_never_joined() -> None:
    done = replace(new_case(), state=CaseState.DONE, done_by=BOB, done_at=T0)
    with pytest.raises(ValueError, match="active_case"):
        place_event(make_event("m2"), done, None, "case-2")
