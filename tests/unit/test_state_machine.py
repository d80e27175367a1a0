"""Every cell of the state-machine table, allowed and refused, and every (state, verb) pair outside it."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain.cases import CALLBACK_ACTOR, OUTLOOK_ACTOR, Actor, Case, CaseState
from bot.domain.state_machine import (
    TRANSITIONS,
    Refusal,
    RefusalCode,
    Rule,
    Verb,
    Who,
    decide,
    markdown_table,
)
from tests.support.storage import ALICE, BOB, CLAIM_TIMEOUT, T0, make_event

S, V = CaseState, Verb
NOW = T0 + timedelta(minutes=10)

EXPECTED_TABLE = {
    (S.OPEN, V.CLAIM): Rule(S.CLAIMED, Who.ANYONE),
    (S.OPEN, V.DONE): Rule(S.DONE, Who.ANYONE),
    (S.OPEN, V.OUTLOOK_COMPLETE): Rule(S.DONE, Who.OUTLOOK),
    (S.OPEN, V.CALLBACK_REACHED): Rule(S.DONE, Who.PHONE),
    (S.CLAIMED, V.RELEASE): Rule(S.OPEN, Who.CLAIMER_OR_AFTER_TIMEOUT),
    (S.CLAIMED, V.DONE): Rule(S.DONE, Who.CLAIMER),
    (S.CLAIMED, V.TAKE_OVER): Rule(S.CLAIMED, Who.NOT_CLAIMER),
    (S.CLAIMED, V.OUTLOOK_COMPLETE): Rule(S.DONE, Who.OUTLOOK),
    (S.CLAIMED, V.OUTLOOK_CLEAR): Rule(S.OPEN, Who.OUTLOOK),
    (S.CLAIMED, V.CALLBACK_REACHED): Rule(S.DONE, Who.PHONE),
    (S.DONE, V.REOPEN): Rule(S.OPEN, Who.ANYONE),
    (S.DONE, V.OUTLOOK_FLAG): Rule(S.OPEN, Who.OUTLOOK),
    (S.DONE, V.OUTLOOK_CLEAR): Rule(S.OPEN, Who.OUTLOOK),
}

ALLOWED_ACTOR = {
    Who.ANYONE: BOB,
    Who.CLAIMER: ALICE,
    Who.CLAIMER_OR_AFTER_TIMEOUT: ALICE,
    Who.NOT_CLAIMER: BOB,
    Who.OUTLOOK: OUTLOOK_ACTOR,
    Who.PHONE: CALLBACK_ACTOR,
}
REFUSED_ACTORS = {
    Who.ANYONE: [(OUTLOOK_ACTOR, RefusalCode.USERS_ONLY), (CALLBACK_ACTOR, RefusalCode.USERS_ONLY)],
    Who.CLAIMER: [
        (BOB, RefusalCode.CLAIMED_BY_OTHER),
        (OUTLOOK_ACTOR, RefusalCode.USERS_ONLY),
        (CALLBACK_ACTOR, RefusalCode.USERS_ONLY),
    ],
    Who.CLAIMER_OR_AFTER_TIMEOUT: [
        (BOB, RefusalCode.CLAIMED_BY_OTHER),
        (OUTLOOK_ACTOR, RefusalCode.USERS_ONLY),
        (CALLBACK_ACTOR, RefusalCode.USERS_ONLY),
    ],
    Who.NOT_CLAIMER: [
        (ALICE, RefusalCode.ALREADY_YOURS),
        (OUTLOOK_ACTOR, RefusalCode.USERS_ONLY),
        (CALLBACK_ACTOR, RefusalCode.USERS_ONLY),
    ],
    Who.OUTLOOK: [
        (ALICE, RefusalCode.OUTLOOK_ONLY),
        (BOB, RefusalCode.OUTLOOK_ONLY),
        (CALLBACK_ACTOR, RefusalCode.OUTLOOK_ONLY),
    ],
    Who.PHONE: [
        (ALICE, RefusalCode.PHONE_ONLY),
        (BOB, RefusalCode.PHONE_ONLY),
        (OUTLOOK_ACTOR, RefusalCode.PHONE_ONLY),
    ],
}

MISSING_CELLS: dict[tuple[CaseState, Verb], list[tuple[Actor, RefusalCode]]] = {
    (S.OPEN, V.RELEASE): [(BOB, RefusalCode.NOT_CLAIMED)],
    (S.OPEN, V.REOPEN): [(BOB, RefusalCode.NOT_DONE)],
    (S.OPEN, V.TAKE_OVER): [(BOB, RefusalCode.NOT_CLAIMED)],
    (S.OPEN, V.OUTLOOK_FLAG): [(OUTLOOK_ACTOR, RefusalCode.NO_CHANGE)],
    (S.OPEN, V.OUTLOOK_CLEAR): [(OUTLOOK_ACTOR, RefusalCode.NO_CHANGE)],
    (S.CLAIMED, V.CLAIM): [(BOB, RefusalCode.ALREADY_CLAIMED), (ALICE, RefusalCode.ALREADY_YOURS)],
    (S.CLAIMED, V.REOPEN): [(BOB, RefusalCode.NOT_DONE), (ALICE, RefusalCode.NOT_DONE)],
    (S.CLAIMED, V.OUTLOOK_FLAG): [(OUTLOOK_ACTOR, RefusalCode.NO_CHANGE)],
    (S.DONE, V.CLAIM): [(BOB, RefusalCode.ALREADY_DONE)],
    (S.DONE, V.RELEASE): [(BOB, RefusalCode.ALREADY_DONE)],
    (S.DONE, V.DONE): [(BOB, RefusalCode.ALREADY_DONE), (ALICE, RefusalCode.ALREADY_DONE)],
    (S.DONE, V.TAKE_OVER): [(BOB, RefusalCode.ALREADY_DONE)],
    (S.DONE, V.OUTLOOK_COMPLETE): [(OUTLOOK_ACTOR, RefusalCode.NO_CHANGE)],
    (S.DONE, V.CALLBACK_REACHED): [(CALLBACK_ACTOR, RefusalCode.NO_CHANGE)],
}

REASONS_NAMING_THE_HOLDER = {
    RefusalCode.ALREADY_CLAIMED, RefusalCode.CLAIMED_BY_OTHER, RefusalCode.ALREADY_YOURS, RefusalCode.ALREADY_DONE,
    RefusalCode.NOT_DONE,
}
"""Refusals whose plain-text reason spells out holder and time (all refusals carry them as fields)."""


def case_in(state: CaseState) -> Case:
    """A case in ``state``, held by Alice since T0 when claimed or done."""
    case = Case(id="c1", line_id="line-1", caller="+4930123456", created_at=T0, version=5,
                events=(make_event("m1"),))
    if state is S.CLAIMED:
        return replace(case, state=state, claimed_by=ALICE, claimed_at=T0)
    if state is S.DONE:
        return replace(case, state=state, done_by=ALICE, done_at=T0)
    return case


def test_the_table_is_the_documented_one() -> None:
    assert TRANSITIONS == EXPECTED_TABLE
    every_pair = set(itertools.product(CaseState, Verb))
    assert set(TRANSITIONS) | set(MISSING_CELLS) == every_pair
    assert not set(TRANSITIONS) & set(MISSING_CELLS)


@pytest.mark.parametrize(("state", "verb"), list(EXPECTED_TABLE), ids=lambda value: str(value))
def test_allowed_cell(state: CaseState, verb: Verb) -> None:
    rule = EXPECTED_TABLE[(state, verb)]
    actor = ALLOWED_ACTOR[rule.who]
    case = case_in(state)

    result = decide(case, verb, actor, NOW, CLAIM_TIMEOUT)

    assert isinstance(result, Case)
    assert result.state is rule.target
    assert (result.version, result.updated_at, result.events) == (case.version + 1, NOW, case.events)
    if rule.target is S.CLAIMED:
        assert (result.claimed_by, result.claimed_at, result.done_by) == (actor, NOW, None)
    elif rule.target is S.DONE:
        assert (result.done_by, result.done_at) == (actor, NOW)
    else:
        assert (result.claimed_by, result.claimed_at, result.done_by, result.done_at) == (None, None, None, None)
        assert result.reopened is (state is S.DONE and verb in (V.REOPEN, V.OUTLOOK_FLAG))


def _assert_refused(case: Case, verb: Verb, actor: Actor, code: RefusalCode) -> None:
    result = decide(case, verb, actor, NOW, CLAIM_TIMEOUT)
    assert isinstance(result, Refusal), f"{actor.name} may {verb} in {case.state}"
    assert (result.code, result.verb, result.state) == (code, verb, case.state)
    expected_holder = ALICE if case.state is not S.OPEN else None
    assert (result.holder, result.since) == (expected_holder, T0 if expected_holder else None)
    if expected_holder and code in REASONS_NAMING_THE_HOLDER:
        assert "Alice since 2025-03-03 09:00 UTC" in result.reason


@pytest.mark.parametrize(
    ("state", "verb", "actor", "code"),
    [(s, v, actor, code) for (s, v), rule in EXPECTED_TABLE.items() for actor, code in REFUSED_ACTORS[rule.who]],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_refused_in_an_allowed_cell(state: CaseState, verb: Verb, actor: Actor, code: RefusalCode) -> None:
    _assert_refused(case_in(state), verb, actor, code)


@pytest.mark.parametrize(
    ("state", "verb", "actor", "code"),
    [(s, v, actor, code) for (s, v), refusals in MISSING_CELLS.items() for actor, code in refusals],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_missing_cell_is_refused(state: CaseState, verb: Verb, actor: Actor, code: RefusalCode) -> None:
    _assert_refused(case_in(state), verb, actor, code)


def test_release_by_someone_else_only_after_the_claim_timeout() -> None:
    case = case_in(S.CLAIMED)
    just_before = T0 + CLAIM_TIMEOUT - timedelta(seconds=1)

    assert isinstance(decide(case, V.RELEASE, BOB, just_before, CLAIM_TIMEOUT), Refusal)
    for when in (T0 + CLAIM_TIMEOUT, T0 + CLAIM_TIMEOUT * 3):
        released = decide(case, V.RELEASE, BOB, when, CLAIM_TIMEOUT)
        assert isinstance(released, Case) and released.state is S.OPEN and released.claimed_by is None
    assert isinstance(decide(case, V.RELEASE, ALICE, T0, CLAIM_TIMEOUT), Case), "the claimer may release any time"


def test_markdown_table_lists_every_cell() -> None:
    table = markdown_table()
    for (state, verb), rule in EXPECTED_TABLE.items():
        assert f"| {state} | {verb} | {rule.target} | {rule.who} |" in table


def test_the_readme_shows_the_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme
