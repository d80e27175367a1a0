"""Property tests: any sequence of actions by any users keeps the invariants, in the domain and in the store."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.effects import no_effects
from bot.core.ports import Store
from bot.domain.cases import OUTLOOK_ACTOR, Actor, Case, CaseState
from bot.domain.events import WITHHELD, CallEvent
from bot.domain.grouping import place_event
from bot.domain.state_machine import Refusal, RefusalCode, Verb, decide
from bot.storage.factory import open_store
from tests.support.storage import ALICE, BOB, CAROL, CLAIM_TIMEOUT, T0, make_event

ACTORS = st.sampled_from([ALICE, BOB, CAROL, OUTLOOK_ACTOR])
VERBS = st.sampled_from(list(Verb))
MINUTES = st.integers(min_value=0, max_value=45)
CALLERS = ["+4930111", "+4930222", WITHHELD]
LINES = ["line-1", "line-2"]

Action = tuple[Verb, Actor, int]
ACTIONS = st.lists(st.tuples(VERBS, ACTORS, MINUTES), max_size=40)


def assert_case_invariants(case: Case) -> None:
    match case.state:
        case CaseState.OPEN:
            assert (case.claimed_by, case.claimed_at, case.done_by, case.done_at) == (None, None, None, None)
        case CaseState.CLAIMED:
            assert case.claimed_by is not None and case.claimed_at is not None
            assert case.done_by is None and case.done_at is None
        case CaseState.DONE:
            assert case.done_by is not None and case.done_at is not None


def assert_step(before: Case, outcome: Case | Refusal, after: Case) -> None:
    """An applied action raises the version by one; a refusal changes nothing and names the current holder
    (of the caller's newer active case, when that is what blocks a reopen)."""
    if isinstance(outcome, Refusal):
        assert after == before
        if outcome.code is not RefusalCode.CALLER_HAS_ACTIVE_CASE:
            assert (outcome.holder, outcome.since) == (before.holder, before.held_since)
    else:
        assert after.version == before.version + 1
    assert_case_invariants(after)


@settings(max_examples=300, deadline=None)
@given(ACTIONS)
def test_any_actions_keep_the_case_invariants(actions: list[Action]) -> None:
    case = place_event(make_event("m1"), None, None, "case-1")
    now = T0
    for verb, actor, minutes in actions:
        now += timedelta(minutes=minutes)
        outcome = decide(case, verb, actor, now, CLAIM_TIMEOUT)
        after = outcome if isinstance(outcome, Case) else case
        assert_step(case, outcome, after)
        case = after


@dataclass(frozen=True)
class NewMail:
    message: int
    line_id: str
    minutes: int


@dataclass(frozen=True)
class Act:
    pick: int
    """Which of the cases seen so far (modulo their number)."""
    verb: Verb
    actor: Actor
    minutes: int


Step = NewMail | Act
STORE_STEPS = st.lists(
    st.one_of(
        st.builds(NewMail, st.integers(min_value=0, max_value=7), st.sampled_from(LINES), MINUTES),
        st.builds(Act, st.integers(min_value=0, max_value=20), VERBS, ACTORS, MINUTES),
    ),
    max_size=25,
)


def event_for(message: int, line_id: str, minutes: int) -> CallEvent:
    """Mail ``message`` on a line always names the same caller, so a repeated number is a true duplicate mail."""
    return make_event(f"m{message}", CALLERS[message % len(CALLERS)], line_id=line_id, minutes=minutes)


async def _run_on_store(steps: list[Step]) -> None:
    store: Store = await open_store("sqlite:///:memory:")
    try:
        seen: dict[str, CallEvent] = {}
        case_ids: list[str] = []
        elapsed = 0
        for step in steps:
            elapsed += step.minutes
            if isinstance(step, NewMail):
                event = event_for(step.message, step.line_id, elapsed)
                recorded = await store.cases.record_event(event, effects=no_effects)
                assert recorded.event_added is (event.source_id not in seen)
                seen.setdefault(event.source_id, event)
                if recorded.case.id not in case_ids:
                    case_ids.append(recorded.case.id)
                assert_case_invariants(recorded.case)
            elif case_ids:
                case_id = case_ids[step.pick % len(case_ids)]
                now = T0 + timedelta(minutes=elapsed)
                before = await store.cases.get(case_id)
                outcome = await store.cases.transition(
                    case_id, step.verb, step.actor, now, CLAIM_TIMEOUT, effects=no_effects
                )
                after = await store.cases.get(case_id)
                assert before is not None and after is not None and after == outcome.case
                assert_step(before, outcome.refusal or outcome.case, after)
        cases = [case for case_id in case_ids if (case := await store.cases.get(case_id)) is not None]
        stored_events = [event for case in cases for event in case.events]
        assert Counter(event.source_id for event in stored_events) == Counter(seen.keys()), "event lost or doubled"
        assert all(event == seen[event.source_id] for event in stored_events)
        active_keys = Counter(
            (case.line_id, case.caller) for case in cases
            if case.state is not CaseState.DONE and case.first_event and case.first_event.grouping_key
        )
        assert all(count == 1 for count in active_keys.values()), "two active cases for one caller on one line"
        for case in cases:
            assert_case_invariants(case)
            assert list(case.events) == sorted(case.events, key=lambda e: (e.received_at, e.source_id))
    finally:
        await store.close()


@settings(max_examples=60, deadline=None)
@given(STORE_STEPS)
def test_any_events_and_actions_keep_the_store_invariants(steps: list[Step]) -> None:
    asyncio.run(_run_on_store(steps))
