"""Retention and erasure: the store on both engines, and the whole bot (Teams command, CLI, cards replaced)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.config import load_settings
from bot.core.effects import no_effects
from bot.core.ports import JobState, RetryPolicy
from bot.core.retention import Retention, erase_number
from bot.domain.callbacks import AutoDone
from bot.domain.cases import Contact, ContactKind
from bot.domain.state_machine import Verb
from bot.storage.factory import open_store
from bot.storage.sql_store import SqlStore
from tests.support.bot_stack import ADMIN, CHANNEL_ID, POOL_MAILBOX, BotStack, user
from tests.support.cards import card_texts
from tests.support.storage import ALICE, T0, make_event
from tests.support.store_probes import audit_entries, mails_of_case
from tests.support.teams import card_json, the_card

CLAIM_TIMEOUT = timedelta(hours=2)
NUMBER = "+4930123456"
OTHER = "+4940555666"


async def done_case(store: SqlStore, message_id: str, caller: str, done_at_minutes: float) -> str:
    outcome = await store.cases.record_event(make_event(message_id, caller), effects=no_effects)
    await store.cases.transition(
        outcome.case.id, Verb.DONE, ALICE, T0 + timedelta(minutes=done_at_minutes), CLAIM_TIMEOUT, effects=no_effects
    )
    return outcome.case.id


async def test_retention_deletes_done_cases_past_the_period_with_everything_naming_them(store: SqlStore) -> None:
    old = await done_case(store, "m-old", NUMBER, 1)
    recent = await done_case(store, "m-recent", OTHER, 60 * 24 * 85)
    still_open = (await store.cases.record_event(make_event("m-open", "+4989111222"), effects=no_effects)).case.id
    now = T0 + timedelta(days=91)

    outcome = await store.privacy.purge_done_cases(now - timedelta(days=90), now)

    assert (outcome.cases, outcome.events) == (1, 1)
    assert await store.cases.get(old) is None
    assert await store.cases.find_by_message("line-1@example.com", "m-old") is None
    assert await mails_of_case(store, old) == []
    assert await store.cases.get(recent) is not None and await store.cases.get(still_open) is not None


async def test_retention_keeps_a_later_cases_last_done_note_but_not_the_link(store: SqlStore) -> None:
    old = await done_case(store, "m-1", NUMBER, 1)
    again = await store.cases.record_event(make_event("m-2", NUMBER, minutes=60 * 24 * 95), effects=no_effects)
    assert again.case.previous is not None and again.case.previous.case_id == old
    now = T0 + timedelta(days=96)

    await store.privacy.purge_done_cases(now - timedelta(days=90), now)

    later = await store.cases.get(again.case.id)
    assert await store.cases.get(old) is None
    assert later is not None and later.previous is not None and later.previous.done_by == ALICE


async def test_finished_jobs_are_purged_after_their_days(store: SqlStore) -> None:
    done_id = await store.jobs.enqueue("teams.card", {"case_id": "c"})
    pending_id = await store.jobs.enqueue("teams.card", {"case_id": "d"})
    (job,) = await store.jobs.lease("w", ["teams.card"], timedelta(minutes=1))
    assert job.id == done_id and pending_id is not None
    await store.jobs.complete(job, "w")
    dead = await store.jobs.enqueue("graph.flag", {"x": 1})
    (failing,) = await store.jobs.lease("w", ["graph.flag"], timedelta(minutes=1))
    assert failing.id == dead
    assert await store.jobs.fail(failing, "w", "boom", RetryPolicy(max_attempts=1)) is JobState.DEAD
    assert await store.privacy.purge_finished_jobs(datetime.now(UTC) - timedelta(days=1)) == 0
    assert await store.privacy.purge_finished_jobs(datetime.now(UTC) + timedelta(seconds=1)) == 2
    assert (await store.jobs.depth())["pending"] == 1


async def test_erasure_deletes_every_case_and_event_of_the_number_and_audits_without_it(store: SqlStore) -> None:
    first = await done_case(store, "m-1", NUMBER, 1)
    second = (
        await store.cases.record_event(make_event("m-2", NUMBER, minutes=60 * 24 * 10), effects=no_effects)
    ).case.id
    await store.cases.record_event(
        make_event("m-3", NUMBER, minutes=60 * 24 * 10 + 5), effects=no_effects
    )  # joins the second
    other = (await store.cases.record_event(make_event("m-4", OTHER), effects=no_effects)).case.id

    outcome = await erase_number(store, "030 123456", actor="cli:test", now=T0 + timedelta(days=11))

    assert (outcome.cases, outcome.events) == (2, 3)
    assert await store.cases.get(first) is None and await store.cases.get(second) is None
    assert await store.cases.get(other) is not None
    (entry,) = await audit_entries(store)
    assert (entry["action"], entry["actor"], entry["cases"], entry["events"]) == ("erase", "cli:test", 2, 3)
    assert NUMBER not in json.dumps(entry, default=str) and "123456" not in json.dumps(entry, default=str)


async def test_erasure_and_retention_delete_the_callbacks_recorded_by_the_call_webhooks(store: SqlStore) -> None:
    # Issue 19's contacts (callbacks, answered repeat calls) belong to a case: they go with it, on both engines.
    erased = (await store.cases.record_event(make_event("m-1", NUMBER), effects=no_effects)).case.id
    purged = (await store.cases.record_event(make_event("m-2", OTHER), effects=no_effects)).case.id
    for call_id, caller in (("call-1", NUMBER), ("call-2", OTHER)):
        contact = Contact(call_id, ContactKind.CALLBACK, T0 + timedelta(minutes=5), False, 0, "Anna Schmidt")
        recorded = await store.cases.record_contact(
            "line-1", caller, contact, AutoDone.NEVER, T0, CLAIM_TIMEOUT, effects=no_effects
        )
        assert recorded is not None and recorded.added
    await store.cases.transition(
        purged, Verb.DONE, ALICE, T0 + timedelta(minutes=10), CLAIM_TIMEOUT, effects=no_effects
    )

    assert (await erase_number(store, NUMBER, actor="cli:test", now=T0 + timedelta(days=1))).cases == 1
    now = T0 + timedelta(days=91)
    assert (await store.privacy.purge_done_cases(now - timedelta(days=90), now)).cases == 1

    assert await store.cases.get(erased) is None and await store.cases.get(purged) is None
    # A later callback to the erased number finds no case to attach to.
    late = Contact("call-3", ContactKind.CALLBACK, now, True, 60, "Anna Schmidt")
    assert (
        await store.cases.record_contact("line-1", NUMBER, late, AutoDone.NEVER, now, CLAIM_TIMEOUT, effects=no_effects)
        is None
    )


async def test_erasure_refuses_what_is_no_number(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="phone number"):
        await erase_number(store, "everyone", actor="cli:test")


# --- the whole bot ---------------------------------------------------------------------------------------------

CALLER = "0171 2345678"
CALLER_E164 = "+491712345678"


def card_shows(stack: BotStack, conversation_id: str) -> str:
    card = next(c for c in stack.channel_cards() if c.conversation_id == conversation_id)
    return json.dumps(card_json(card.current), ensure_ascii=False)


async def test_an_admin_erases_a_number_in_teams_and_its_card_says_deleted(
    bot_stack: BotStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await bot_stack.link()
    bot_stack.deliver_missed_call(CALLER)
    bot_stack.deliver_missed_call("030 9876543")
    await bot_stack.settle()
    erased_card, kept_card = sorted(bot_stack.channel_cards(), key=lambda c: "2345678" not in json.dumps(c.current))
    assert "2345678" in json.dumps(erased_card.current)

    assert await bot_stack.message(f"vergessen {CALLER}", user(1)) < 300  # not an admin
    refused = bot_stack.connector.activities(CHANNEL_ID)[-1].current["text"]
    assert "Admins" in refused
    assert await bot_stack.message(f"vergessen {CALLER}", ADMIN) < 300
    await bot_stack.settle()

    answer = bot_stack.connector.activities(CHANNEL_ID)[-1].current["text"]
    assert answer.startswith("Gelöscht: 1 Fälle mit 1 Anrufen") and "Aufbewahrung des Postfachs" in answer
    assert (await bot_stack.services.store.cases.list_active(["zentrale"]))[1] == 1
    shown = card_shows(bot_stack, erased_card.conversation_id)
    assert "Gelöscht" in shown and "2345678" not in shown and "0171" not in shown
    assert "9876543" in card_shows(bot_stack, kept_card.conversation_id)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "erasure by teams:aad-admin: 1 case(s), 1 event(s) deleted" in logged
    assert "2345678" not in logged and CALLER_E164 not in logged


async def test_an_admin_erases_in_personal_chat_with_the_english_alias(bot_stack: BotStack) -> None:
    await bot_stack.link()
    bot_stack.deliver_missed_call(CALLER)
    await bot_stack.settle()

    assert await bot_stack.message(f"forget {CALLER_E164}", ADMIN, "a:personal-chat-admin") < 300
    answer = bot_stack.connector.activities("a:personal-chat-admin")[-1].current["text"]
    assert answer.startswith("Gelöscht: 1 Fälle")

    assert (await bot_stack.services.store.cases.list_active(["zentrale"]))[1] == 0


async def test_retention_replaces_the_cards_of_expired_cases(bot_stack: BotStack) -> None:
    await bot_stack.link()
    bot_stack.deliver_missed_call(CALLER)
    await bot_stack.settle()
    store = bot_stack.services.store
    (case,), _ = await store.cases.list_active(["zentrale"])
    long_ago = datetime.now(UTC) - timedelta(days=100)
    await store.cases.transition(case.id, Verb.DONE, ALICE, long_ago, CLAIM_TIMEOUT, effects=no_effects)

    outcome = await Retention(bot_stack.settings, store, "test").purge()
    await bot_stack.settle()

    assert outcome.cases == 1 and await store.cases.get(case.id) is None
    shown = card_texts(card_json(the_card(bot_stack).current))
    assert "Aufbewahrungsfrist" in shown and "2345678" not in shown
    (entry,) = await audit_entries(store)
    assert (entry["action"], entry["cases"]) == ("retention", 1)


def test_the_erase_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'rufpool.sqlite3'}"
    monkeypatch.chdir(tmp_path)  # no .env
    root = logging.getLogger()  # the command configures logging for the process: put it back afterwards
    monkeypatch.setattr(root, "handlers", root.handlers[:])
    monkeypatch.setattr(root, "level", root.level)
    for noisy in ("azure", "msrest", "httpx", "aiohttp.access"):
        monkeypatch.setattr(logging.getLogger(noisy), "level", logging.getLogger(noisy).level)
    for name, value in {"DATABASE_URL": database_url, "SANDBOX_MODE": "true", "LOG_LEVEL": "WARNING"}.items():
        monkeypatch.setenv(name, value)

    async def seed() -> str:
        store = await open_store(database_url)
        try:
            return (await store.cases.record_event(make_event("m-1", NUMBER), effects=no_effects)).case.id
        finally:
            await store.close()

    async def remaining(case_id: str) -> bool:
        store = await open_store(database_url)
        try:
            return await store.cases.get(case_id) is not None
        finally:
            await store.close()

    case_id = asyncio.run(seed())

    assert main(["erase", "--number", "not a number"]) == 2
    assert main(["erase", "--number", NUMBER]) == 0
    assert "Erased 1 case(s) with 1 call(s)" in capsys.readouterr().out
    assert not asyncio.run(remaining(case_id))


async def test_the_retention_pass_purges_old_jobs_and_links_too(store: SqlStore) -> None:
    job_id = await store.jobs.enqueue("teams.card", {"case_id": "c"})
    (job,) = await store.jobs.lease("w", ["teams.card"], timedelta(minutes=1))
    await store.jobs.complete(job, "w")
    settings = load_settings(_env_file=None, sandbox_mode=True, outbox_retention_days=7)
    week_later = datetime.now(UTC) + timedelta(days=7, minutes=1)

    await Retention(settings, store, "test", clock=lambda: week_later - timedelta(days=1)).purge()
    assert (await store.jobs.depth())["done"] == 1
    await Retention(settings, store, "test", clock=lambda: week_later).purge()
    assert job_id is not None and (await store.jobs.depth())["done"] == 0


async def test_an_erased_mail_changed_in_outlook_stays_erased(bot_stack: BotStack) -> None:
    await bot_stack.link()
    message_id = bot_stack.deliver_missed_call(CALLER)
    await bot_stack.settle()
    assert await bot_stack.message(f"vergessen {CALLER}", ADMIN) < 300
    await bot_stack.settle()

    bot_stack.graph.set_flag(POOL_MAILBOX, message_id, {"flagStatus": "flagged"})  # a colleague flags it in Outlook
    await bot_stack.services.coordinator.handle_resync({"mailbox": POOL_MAILBOX})  # and a catch-up runs
    await bot_stack.settle()

    store = bot_stack.services.store
    assert await store.cases.find_by_message(POOL_MAILBOX, message_id) is None
    assert (await store.cases.list_active(["zentrale"]))[1] == 0
    assert len(bot_stack.channel_cards()) == 1  # the one "Gelöscht" card, no new one
