"""A change and the effects it causes commit in one transaction: neither without the other (both engines)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from bot.core import effects
from bot.core.ports import CardRef, JobState
from bot.core.values import FlagStatus
from bot.domain.callbacks import AutoDone
from bot.domain.cases import Contact, ContactKind
from bot.domain.state_machine import RefusalCode, Verb
from bot.storage import sql_store
from bot.storage.database import Cursor
from bot.storage.sql_store import SqlStore
from tests.support.storage import ALICE, CLAIM_TIMEOUT, T0, make_event


class OutboxDown(Exception):
    """The outbox insert failed (the database went away between two statements, say)."""


async def _raise_outbox_down(cursor: Cursor, queued: Sequence[effects.Effect], now: datetime) -> None:
    raise OutboxDown


async def _jobs(store: SqlStore) -> list[tuple[str, str | None]]:
    async with store.database.read() as cursor:
        await cursor.execute("SELECT kind, dedupe_key FROM jobs WHERE state = 'pending' ORDER BY id")
        return [(row["kind"], row["dedupe_key"]) for row in await cursor.fetchall()]


def _card_and_reply(outcome: object) -> list[effects.Effect]:
    case = outcome.case  # type: ignore[attr-defined]
    return [
        effects.RefreshCard(case.id),
        effects.ThreadReply(case.id, case.version, effects.ContactLine("call-1")),
        effects.WriteCaseFlags(case.id),
    ]


async def test_an_event_commits_with_its_effects(store: SqlStore) -> None:
    outcome = await store.cases.record_event(make_event("m1"), effects=_card_and_reply)

    case_id = outcome.case.id
    assert await _jobs(store) == [
        (effects.POST_CARD, f"card:{case_id}"),
        (effects.THREAD_REPLY, f"reply:{case_id}:1"),
        (effects.SET_FLAG, "flag:line-1@example.com:m1"),  # the mail recorded in the same transaction is included
    ]


async def test_an_event_whose_effects_cannot_be_queued_is_not_recorded(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_store, "insert_effects", _raise_outbox_down)
    with pytest.raises(OutboxDown):
        await store.cases.record_event(make_event("m1"), effects=_card_and_reply)

    assert await store.cases.find_by_message("line-1@example.com", "m1") is None
    assert await store.mails.get_mail("line-1@example.com", "m1") is None
    monkeypatch.undo()
    # The retried notification finds the mail unknown, so it records it, and the card is queued this time.
    retried = await store.cases.record_event(make_event("m1"), effects=_card_and_reply)
    assert retried.event_added and (effects.POST_CARD, f"card:{retried.case.id}") in await _jobs(store)


async def test_a_transition_whose_effects_cannot_be_queued_is_not_applied(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=effects.no_effects)).case
    monkeypatch.setattr(sql_store, "insert_effects", _raise_outbox_down)

    with pytest.raises(OutboxDown):
        await store.cases.transition(case.id, Verb.CLAIM, ALICE, T0, CLAIM_TIMEOUT, effects=_card_and_reply)

    stored = await store.cases.get(case.id)
    assert stored is not None and stored.version == case.version and stored.claimed_by is None
    assert await _jobs(store) == []


async def test_a_contact_whose_effects_cannot_be_queued_is_not_recorded(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=effects.no_effects)).case
    monkeypatch.setattr(sql_store, "insert_effects", _raise_outbox_down)
    contact = Contact("call-1", ContactKind.CALLBACK, T0, True, 60, "Anna")

    with pytest.raises(OutboxDown):
        await store.cases.record_contact(
            "line-1", case.caller or "", contact, AutoDone.REACHED, T0, CLAIM_TIMEOUT, effects=_card_and_reply
        )

    stored = await store.cases.get(case.id)
    assert stored is not None and stored.contacts == () and stored.version == case.version


async def test_an_outlook_flag_is_taken_in_with_its_effects_or_not_at_all(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=effects.no_effects)).case
    monkeypatch.setattr(sql_store, "insert_effects", _raise_outbox_down)
    take_in = {
        "mailbox": "line-1@example.com",
        "message_id": "m1",
        "flag": FlagStatus.COMPLETE,
        "verb": Verb.OUTLOOK_COMPLETE,
        "now": T0,
        "claim_timeout": CLAIM_TIMEOUT,
        "effects": _card_and_reply,
    }

    with pytest.raises(OutboxDown):
        await store.cases.take_in_flag(**take_in)  # type: ignore[arg-type]

    mail = await store.mails.get_mail("line-1@example.com", "m1")
    assert mail is not None and mail.observed_flag is None and mail.written_flag is None  # not taken in: seen again
    monkeypatch.undo()
    outcome = await store.cases.take_in_flag(**take_in)  # type: ignore[arg-type]
    assert outcome.applied and outcome.before is not None and outcome.before.version == case.version
    assert (effects.SET_FLAG, "flag:line-1@example.com:m1") in await _jobs(store)


async def test_a_pending_card_refresh_is_not_queued_twice(store: SqlStore) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=_card_and_reply)).case
    await store.cases.record_event(make_event("m2", minutes=1), effects=_card_and_reply)
    await store.jobs.add([effects.RefreshCard(case.id), effects.RefreshCard(case.id, redraw=True)])

    jobs = await _jobs(store)
    assert jobs.count((effects.POST_CARD, f"card:{case.id}")) == 1
    assert (effects.THREAD_REPLY, f"reply:{case.id}:2") in jobs


async def test_a_thread_line_waits_only_for_unfinished_lines_of_earlier_versions(store: SqlStore) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=_card_and_reply)).case
    await store.cases.record_event(make_event("m2", minutes=1), effects=_card_and_reply)
    key = effects.reply_order_key(case.id)

    assert await store.jobs.earlier_unfinished(key, 1) is None
    assert await store.jobs.earlier_unfinished(key, 2) is JobState.PENDING  # version 1's line waits
    [first] = await store.jobs.lease("w", [effects.THREAD_REPLY], timedelta(minutes=1))
    assert first.payload["version"] == 1
    assert await store.jobs.earlier_unfinished(key, 2) is JobState.LEASED  # under way
    await store.jobs.complete(first, "w")
    assert await store.jobs.earlier_unfinished(key, 2) is None
    assert await store.jobs.earlier_unfinished(effects.reply_order_key("another-case"), 9) is None


async def test_a_post_intent_counts_attempts_until_the_card_is_saved(store: SqlStore) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=effects.no_effects)).case

    assert await store.cards.begin_post(case.id, T0) == 1
    assert await store.cards.begin_post(case.id, T0) == 2  # the first attempt's outcome is unknown
    await store.cards.save_card(CardRef(case.id, "19:c;messageid=1", "1", case.version))
    assert await store.cards.begin_post(case.id, T0) == 1  # a repost later starts afresh


async def test_an_outlook_reopen_refused_for_the_callers_newer_case_still_takes_in_the_flag(store: SqlStore) -> None:
    old = (await store.cases.record_event(make_event("m1"), effects=effects.no_effects)).case
    await store.cases.transition(old.id, Verb.DONE, ALICE, T0, CLAIM_TIMEOUT, effects=effects.no_effects)
    newer = (await store.cases.record_event(make_event("m2", minutes=5), effects=effects.no_effects)).case
    assert newer.id != old.id

    outcome = await store.cases.take_in_flag(
        "line-1@example.com",
        "m1",
        FlagStatus.FLAGGED,
        Verb.OUTLOOK_FLAG,
        T0,
        CLAIM_TIMEOUT,
        effects=lambda refused: [effects.WriteFlag("line-1@example.com", "m1", refused.case.id)],
    )

    assert outcome.refusal is not None and outcome.refusal.code is RefusalCode.CALLER_HAS_ACTIVE_CASE
    mail = await store.mails.get_mail("line-1@example.com", "m1")
    assert mail is not None and mail.observed_flag is mail.written_flag is FlagStatus.FLAGGED
    assert (effects.SET_FLAG, "flag:line-1@example.com:m1") in await _jobs(store)  # the repair, committed with it
