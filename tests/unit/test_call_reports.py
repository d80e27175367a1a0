"""One call from two reports (mail and call webhook) and contacts (callbacks, answered repeat calls): the pure rules
and the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.effects import no_effects
from bot.domain.callbacks import AutoDone, apply_contact
from bot.domain.cases import CALLBACK_ACTOR, Case, CaseState, Contact, ContactKind
from bot.domain.events import WITHHELD, CallEvent, EventKind, Voicemail
from bot.domain.matching import find_same_call, merge_reports, reports_same_call
from bot.domain.state_machine import Refusal, RefusalCode, Verb, decide
from bot.stats.model import Period, PersonStats
from bot.stats.queries import StatsQueries
from bot.storage.database import Database
from bot.storage.sql_store import SqlStore
from cards.case_card import build_case_card
from cards.i18n import BERLIN, Lang, refusal_text
from cards.messages import contact_reply
from cards.stats_card import StatsCardView, build_stats_card
from tests.support.cards import callback_case, caller_reached_case, card_texts, case_view, markdown_link_targets, texts
from tests.support.stats import LINE_NAMES, team_stats
from tests.support.storage import ALICE, CLAIM_TIMEOUT, T0, make_event
from tests.support.store_probes import mails_of_case

WINDOW = timedelta(minutes=3)
CALLER = "+4930123456"


def webhook_event(
    call_id: str, caller: str | None = CALLER, *, minutes: float = 0, kind: EventKind = EventKind.MISSED_CALL
) -> CallEvent:
    return CallEvent(
        source_id=CallEvent.source_id_for_call(call_id),
        kind=kind,
        line_id="line-1",
        caller=caller,
        received_at=T0 + timedelta(minutes=minutes),
        mail=None,
        call_id=call_id,
    )


def callback(call_id: str, *, reached: bool, minutes: float = 5, seconds: int = 135) -> Contact:
    return Contact(call_id, ContactKind.CALLBACK, T0 + timedelta(minutes=minutes), reached,
                   seconds if reached else 0, "Anna Schmidt")


# The pure rules --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mail", "same"),
    [
        (make_event("m1", minutes=2.9), True),
        (make_event("m1", minutes=-2.9), True),
        (make_event("m1", minutes=3.1), False),
        (make_event("m1", caller="+4940999999"), False),
        (make_event("m1", line_id="line-2"), False),
        (make_event("m1", kind=EventKind.FAX), False),
        (make_event("m1", kind=EventKind.VOICEMAIL), True),
        (make_event("m1", caller=None), False),
    ],
    ids=["just-inside", "mail-earlier", "outside", "other-caller", "other-line", "fax", "voicemail", "no-caller"],
)
def test_a_mail_reports_the_webhooks_call_when_line_caller_kind_and_time_agree(mail: CallEvent, same: bool) -> None:
    assert reports_same_call(webhook_event("c1"), mail, WINDOW) is same


def test_two_reports_of_one_source_never_match() -> None:
    assert not reports_same_call(make_event("m1"), make_event("m2"), WINDOW), "two mails are two calls"
    assert not reports_same_call(webhook_event("c1"), webhook_event("c2"), WINDOW), "two webhooks are two calls"
    joined = replace(webhook_event("c1"), mail=make_event("m1").mail)
    assert not reports_same_call(joined, make_event("m2"), WINDOW), "a call that has its mail takes no second one"
    assert not reports_same_call(webhook_event("c1", None), make_event("m1", None), WINDOW), "no number, no match"


def test_the_closest_call_in_time_wins_and_withheld_callers_match_each_other() -> None:
    earlier, later = webhook_event("c1", WITHHELD, minutes=-2), webhook_event("c2", WITHHELD, minutes=1)
    mail = make_event("m1", caller=WITHHELD)
    assert find_same_call(mail, [earlier, later], WINDOW) == later
    assert find_same_call(mail, [], WINDOW) is None


def test_merging_keeps_the_first_reports_identity_and_takes_the_mails_voicemail() -> None:
    call = replace(webhook_event("c1", minutes=0), called_number="+49301234500")
    voicemail = Voicemail("a1", "vm.mp3")
    mail = make_event("m1", minutes=1, kind=EventKind.VOICEMAIL, voicemail=voicemail, caller_name="Erika")
    merged = merge_reports(call, mail)
    assert (merged.source_id, merged.received_at, merged.call_id) == (call.source_id, call.received_at, "c1")
    assert (merged.mail, merged.voicemail, merged.kind, merged.caller_name, merged.called_number) == (
        mail.mail, mail.voicemail, EventKind.VOICEMAIL, "Erika", "+49301234500")


def case_with(state: CaseState) -> Case:
    case = Case(id="c", line_id="line-1", caller=CALLER, created_at=T0, events=(make_event("m1"),))
    if state is CaseState.CLAIMED:
        return replace(case, state=state, claimed_by=ALICE, claimed_at=T0)
    return case


@pytest.mark.parametrize("state", [CaseState.OPEN, CaseState.CLAIMED])
def test_a_reached_callback_closes_through_the_state_machine_only_when_the_line_says_so(state: CaseState) -> None:
    case, now = case_with(state), T0 + timedelta(minutes=8)
    closed = apply_contact(case, callback("x", reached=True), AutoDone.REACHED, now, CLAIM_TIMEOUT)
    assert (closed.state, closed.done_by, closed.done_at) == (CaseState.DONE, CALLBACK_ACTOR, now)
    assert closed.version == case.version + 2 and closed.last_callback == callback("x", reached=True)

    shown = apply_contact(case, callback("x", reached=True), AutoDone.NEVER, now, CLAIM_TIMEOUT)
    assert (shown.state, shown.version, shown.contacts) == (state, case.version + 1, (callback("x", reached=True),))

    unreached = apply_contact(case, callback("x", reached=False), AutoDone.REACHED, now, CLAIM_TIMEOUT)
    assert unreached.state is state, "an unreached attempt never closes a case"

    again = Contact("y", ContactKind.CALLER_REACHED, now, True, 60)
    assert apply_contact(case, again, AutoDone.REACHED, now, CLAIM_TIMEOUT).state is state


def test_people_cannot_fire_the_callback_verb_and_the_callback_cannot_click() -> None:
    refused = decide(case_with(CaseState.OPEN), Verb.CALLBACK_REACHED, ALICE, T0, CLAIM_TIMEOUT)
    assert isinstance(refused, Refusal) and refused.code is RefusalCode.PHONE_ONLY
    clicked = decide(case_with(CaseState.OPEN), Verb.CLAIM, CALLBACK_ACTOR, T0, CLAIM_TIMEOUT)
    assert isinstance(clicked, Refusal) and clicked.code is RefusalCode.USERS_ONLY


# The store --------------------------------------------------------------------------------------------------------


async def test_a_webhook_event_round_trips_without_a_mail(store: SqlStore) -> None:
    outcome = await store.cases.record_event(webhook_event("c1"), WINDOW, effects=no_effects)
    assert outcome.event_added and outcome.case_created
    stored = await store.cases.get(outcome.case.id)
    assert stored is not None and stored.events == (webhook_event("c1"),)
    assert await mails_of_case(store, outcome.case.id) == []


async def test_mail_after_webhook_is_one_call_with_the_mails_voicemail(store: SqlStore) -> None:
    first = await store.cases.record_event(webhook_event("c1", kind=EventKind.VOICEMAIL), WINDOW, effects=no_effects)
    mail = replace(
        make_event("m1", minutes=1, kind=EventKind.VOICEMAIL, voicemail=Voicemail("a1", "vm.mp3", 42)),
        called_number="+49301234500",
        caller_as_written="030 123456",
    )

    joined = await store.cases.record_event(mail, WINDOW, effects=no_effects)
    again = await store.cases.record_event(mail, WINDOW, effects=no_effects)

    assert joined.merged and not joined.event_added and not joined.case_created
    assert joined.case.id == first.case.id and joined.case.version == first.case.version + 1
    (event,) = joined.case.events
    assert (event.source_id, event.call_id, event.mail, event.voicemail) == (
        "call:c1", "c1", mail.mail, mail.voicemail)
    assert (event.called_number, event.caller_as_written) == ("+49301234500", "030 123456")
    assert await store.cases.get(first.case.id) == joined.case
    assert [m.message_id for m in await mails_of_case(store, first.case.id)] == ["m1"]
    assert (again.event_added, again.merged, again.case) == (False, False, joined.case)


async def test_webhook_after_mail_is_one_call_and_redelivery_changes_nothing(store: SqlStore) -> None:
    first = await store.cases.record_event(make_event("m1"), WINDOW, effects=no_effects)
    joined = await store.cases.record_event(webhook_event("c1", minutes=2), WINDOW, effects=no_effects)
    again = await store.cases.record_event(webhook_event("c1", minutes=2), WINDOW, effects=no_effects)

    assert joined.merged and joined.case.id == first.case.id and joined.case.call_count == 1
    assert joined.case.events[0].call_id == "c1" and joined.case.events[0].mail == make_event("m1").mail
    assert not again.event_added and not again.merged and again.case == joined.case


async def test_without_a_window_every_report_is_its_own_call(store: SqlStore) -> None:
    await store.cases.record_event(webhook_event("c1"), effects=no_effects)
    outcome = await store.cases.record_event(make_event("m1"), effects=no_effects)
    assert outcome.event_added and outcome.case.call_count == 2


async def test_two_mails_race_for_one_webhook_event_and_one_wins(store: SqlStore) -> None:
    await store.cases.record_event(webhook_event("c1"), WINDOW, effects=no_effects)
    outcomes = await asyncio.gather(
        store.cases.record_event(make_event("m1", minutes=1), WINDOW, effects=no_effects),
        store.cases.record_event(make_event("m2", minutes=1), WINDOW, effects=no_effects),
    )
    assert sorted(o.merged for o in outcomes) == [False, True], "the second mail is a second call"
    case = await store.cases.get(outcomes[0].case.id)
    assert case is not None and case.call_count == 2


async def test_a_contact_is_recorded_once_and_closes_atomically(store: SqlStore) -> None:
    created = await store.cases.record_event(webhook_event("c1"), WINDOW, effects=no_effects)
    now = T0 + timedelta(minutes=8)

    results = await asyncio.gather(
        *(store.cases.record_contact("line-1", CALLER, callback("x", reached=True), AutoDone.REACHED, now,
                                     CLAIM_TIMEOUT, effects=no_effects) for _ in range(4))
    )

    assert sum(1 for r in results if r is not None and r.added) == 1
    stored = await store.cases.get(created.case.id)
    assert stored is not None and stored.state is CaseState.DONE and stored.done_by == CALLBACK_ACTOR
    assert stored.contacts == (callback("x", reached=True),)
    assert await store.cases.record_contact("line-1", CALLER, callback("z", reached=True), AutoDone.REACHED, now,
                                            CLAIM_TIMEOUT, effects=no_effects) is None, "a done case takes no callbacks"


async def test_a_contact_for_nobodys_case_or_another_line_changes_nothing(store: SqlStore) -> None:
    created = await store.cases.record_event(webhook_event("c1"), WINDOW, effects=no_effects)
    for line, caller in (("line-1", "+4940999999"), ("line-2", CALLER)):
        assert await store.cases.record_contact(line, caller, callback("x", reached=True), AutoDone.REACHED, T0,
                                                CLAIM_TIMEOUT, effects=no_effects) is None
    assert await store.cases.get(created.case.id) == created.case


async def test_the_peer_of_an_outgoing_call_is_remembered_and_old_ones_pruned(store: SqlStore) -> None:
    await store.calls.remember_peer("old", "a@fpbx.de", T0)
    await store.calls.remember_peer("x", "anna@fpbx.de", T0 + timedelta(days=3))
    await store.calls.remember_peer("x", "other@fpbx.de", T0 + timedelta(days=3))
    assert await store.calls.peer_of("x") == "anna@fpbx.de"
    assert await store.calls.peer_of("old") is None
    assert await store.calls.peer_of("unknown") is None


# The card and the thread --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "badge", "fact"),
    [
        (Lang.DE, "Erledigt – durch Rückruf", "Anna Schmidt · 27.11.2026, 10:32 · erreicht (2:15 Min.)"),
        (Lang.EN, "Done – called back", "Anna Schmidt · 2026-11-27 10:32 · reached (2:15 min)"),
    ],
)
def test_the_card_of_a_case_done_by_callback_names_the_callback(lang: Lang, badge: str, fact: str) -> None:
    card = build_case_card(case_view(callback_case(reached=True), lang))
    shown = list(texts(card))
    assert shown[0] == badge
    assert fact in shown
    assert [action["verb"] for action in card["actions"]] == ["reopen"]


def test_an_unreached_callback_shows_the_attempt_keeps_the_buttons_and_the_name_inert() -> None:
    card = build_case_card(case_view(callback_case(reached=False, agent="[Klick](https://evil.example)")))
    shown = list(texts(card))
    assert shown[0] == "Offen"
    assert any(value.endswith("· nicht erreicht") and "evil" in value for value in shown)
    assert markdown_link_targets(card) == [target for target in markdown_link_targets(card) if "evil" not in target]
    assert [action["verb"] for action in card["actions"]] == ["claim", "done"]


@pytest.mark.parametrize("make", [caller_reached_case, lambda: callback_case(reached=True, auto_done=AutoDone.NEVER)])
def test_a_reached_caller_puts_done_first_with_a_hint(make: Callable[[], Case]) -> None:
    card = build_case_card(case_view(make()))
    assert [action["verb"] for action in card["actions"]] == ["done", "claim"]
    assert card["actions"][0]["style"] == "positive"
    assert "Der Anrufer wurde erreicht – erledigt?" in list(texts(card))


def test_contact_thread_lines_read_as_specified() -> None:
    at = datetime(2026, 11, 27, 13, 32, tzinfo=UTC)
    reached = Contact("x", ContactKind.CALLBACK, at, True, 135, "Anna Schmidt")
    assert contact_reply(reached, Lang.DE) == "Rückruf von Anna Schmidt · 14:32 · erreicht (2:15 Min.)"
    assert contact_reply(replace(reached, reached=False, duration_seconds=0, agent="Durchwahl 12"), Lang.DE) == (
        "Rückruf von Durchwahl 12 · 14:32 · nicht erreicht")
    assert contact_reply(reached, Lang.EN) == "Callback by Anna Schmidt · 14:32 · reached (2:15 min)"
    again = Contact("y", ContactKind.CALLER_REACHED, at, True, 60)
    assert contact_reply(again, Lang.DE) == "Anrufer hat erneut angerufen und wurde erreicht · 14:32"
    assert contact_reply(again, Lang.EN) == "Caller called again and was reached · 14:32"


def test_a_click_on_a_case_done_by_callback_says_so() -> None:
    case = callback_case(reached=True)
    refused = decide(case, Verb.CLAIM, ALICE, T0, CLAIM_TIMEOUT)
    assert isinstance(refused, Refusal)
    assert refusal_text(refused, Lang.DE) == "Bereits erledigt – durch Rückruf um 10:34"
    assert refusal_text(refused, Lang.EN) == "Already done – called back at 10:34"


async def test_the_statistics_count_unreached_callbacks_once_the_webhooks_are_in_use(database: Database) -> None:
    store = SqlStore(database)
    week = Period(T0 - timedelta(days=1), T0 + timedelta(days=6))
    await store.cases.record_event(make_event("m1"), WINDOW, effects=no_effects)
    await store.cases.record_event(make_event("m2", caller="+4940999999"), WINDOW, effects=no_effects)
    await store.cases.record_event(make_event("m3", line_id="line-2"), WINDOW, effects=no_effects)
    for call_id, caller, line in (("a", CALLER, "line-1"), ("b", CALLER, "line-1"), ("c", CALLER, "line-2")):
        await store.cases.record_contact(line, caller, callback(call_id, reached=False), AutoDone.REACHED, T0,
                                         CLAIM_TIMEOUT, effects=no_effects)
    await store.cases.record_contact("line-1", "+4940999999", callback("d", reached=True), AutoDone.NEVER, T0,
                                     CLAIM_TIMEOUT, effects=no_effects)
    old = replace(callback("e", reached=False), at=T0 - timedelta(days=3))
    await store.cases.record_contact("line-1", CALLER, old, AutoDone.REACHED, T0, CLAIM_TIMEOUT, effects=no_effects)

    stats = await StatsQueries(database, callbacks_known=True).team_stats(["line-1"], week, BERLIN)
    assert stats.unreached_callbacks == 2, "line 1's unreached attempts in the period; reached and old ones not"
    both = await StatsQueries(database, callbacks_known=True).team_stats(["line-1", "line-2"], week, BERLIN)
    assert both.unreached_callbacks == 3
    assert (await StatsQueries(database).team_stats(["line-1"], week, BERLIN)).unreached_callbacks is None


def test_the_statistics_card_names_cases_done_by_callback_and_counts_unreached_ones() -> None:
    stats = replace(team_stats(), people=(PersonStats(CALLBACK_ACTOR.id, CALLBACK_ACTOR.name, done=4),),
                    unreached_callbacks=7)
    shown = card_texts(build_stats_card(StatsCardView(stats, Lang.DE, LINE_NAMES)))
    assert "Durch Rückruf (Telefonanlage)" in shown
    assert "Nicht erreichte Rückrufe: 7" in shown
