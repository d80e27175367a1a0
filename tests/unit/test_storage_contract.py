"""The repository contract: every test runs on SQLite and on PostgreSQL (fixtures in tests/support/storage.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest

from bot.core.effects import POST_CARD, SET_FLAG, THREAD_REPLY, no_effects, transition_effects
from bot.core.ports import CardRef, ChannelLink, Subscription
from bot.core.values import FlagStatus
from bot.domain.cases import OUTLOOK_ACTOR, CaseState
from bot.domain.events import WITHHELD, EventKind, Voicemail
from bot.domain.state_machine import RefusalCode, Verb
from bot.storage.database import Database
from bot.storage.factory import open_store
from bot.storage.migrations import available_migrations, migrate
from bot.storage.sql_store import SqlStore
from tests.support.storage import ALICE, BOB, CLAIM_TIMEOUT, T0, CountingDatabase, make_event
from tests.support.store_probes import mails_of_case


async def test_record_event_creates_a_case_and_round_trips_every_field(store: SqlStore) -> None:
    event = make_event("m1", caller_name="Erika Muster", kind=EventKind.VOICEMAIL,
                       voicemail=Voicemail("att-1", "voicemail.wav", 42))
    event = replace(event, received_at=event.received_at.astimezone(timezone(timedelta(hours=2))),
                    caller_as_written="030 123456 (alt)", called_number="+49301234501")

    outcome = await store.cases.record_event(event, effects=no_effects)

    assert outcome.event_added and outcome.case_created
    stored = await store.cases.get(outcome.case.id)
    assert stored == outcome.case
    assert stored.events == (event,)
    assert stored.caller_name == "Erika Muster"
    assert stored.created_at.tzinfo is UTC and stored.created_at == T0
    assert stored.events[0].received_at.tzinfo is UTC


async def test_same_mail_twice_is_one_event(store: SqlStore) -> None:
    first = await store.cases.record_event(make_event("m1"), effects=no_effects)
    again = await store.cases.record_event(make_event("m1"), effects=no_effects)

    assert not again.event_added and not again.case_created
    assert again.case == first.case
    assert again.case.call_count == 1


async def test_repeat_caller_joins_the_active_case_in_call_time_order(store: SqlStore) -> None:
    first = await store.cases.record_event(make_event("m2", minutes=10), effects=no_effects)
    earlier = await store.cases.record_event(make_event("m1", minutes=5), effects=no_effects)
    claimed = await store.cases.transition(first.case.id, Verb.CLAIM, ALICE, T0, CLAIM_TIMEOUT, effects=no_effects)
    later = await store.cases.record_event(make_event("m3", minutes=20), effects=no_effects)

    assert not earlier.case_created and not later.case_created
    assert later.case.id == first.case.id
    assert [e.mail.message_id for e in later.case.events] == ["m1", "m2", "m3"]
    assert later.case.state is CaseState.CLAIMED and later.case.claimed_by == ALICE
    assert later.case.version == claimed.case.version + 1
    assert await store.cases.get(first.case.id) == later.case


async def test_withheld_and_unknown_callers_never_group(store: SqlStore) -> None:
    cases = {
        (await store.cases.record_event(make_event(f"m{n}", caller, minutes=n), effects=no_effects)).case.id
        for n, caller in enumerate([WITHHELD, WITHHELD, None, None])
    }
    assert len(cases) == 4


async def test_after_done_a_new_case_links_the_previous_one(store: SqlStore) -> None:
    first = await store.cases.record_event(make_event("m1"), effects=no_effects)
    done = await store.cases.transition(
        first.case.id, Verb.DONE, BOB, T0 + timedelta(minutes=3), CLAIM_TIMEOUT, effects=no_effects
    )
    second = await store.cases.record_event(make_event("m2", minutes=60), effects=no_effects)

    assert second.case_created and second.case.id != first.case.id
    assert second.case.previous is not None
    assert second.case.previous.case_id == first.case.id
    assert second.case.previous.done_by == BOB
    assert second.case.previous.done_at == done.case.done_at == T0 + timedelta(minutes=3)
    assert (await store.cases.get(second.case.id)) == second.case


async def test_the_same_caller_on_different_lines_does_not_group(store: SqlStore) -> None:
    one = await store.cases.record_event(make_event("m1", line_id="line-1"), effects=no_effects)
    two = await store.cases.record_event(make_event("m2", line_id="line-2"), effects=no_effects)
    assert one.case.id != two.case.id and two.case_created


async def test_transition_applies_compare_and_set_and_persists(store: SqlStore) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=no_effects)).case

    claimed = await store.cases.transition(case.id, Verb.CLAIM, ALICE, T0, CLAIM_TIMEOUT, effects=no_effects)
    refused = await store.cases.transition(
        case.id, Verb.CLAIM, BOB, T0 + timedelta(minutes=1), CLAIM_TIMEOUT, effects=no_effects
    )

    assert claimed.applied and claimed.case.version == case.version + 1
    assert claimed.case.claimed_by == ALICE and claimed.case.claimed_at == T0
    assert not refused.applied and refused.refusal is not None
    assert refused.refusal.code is RefusalCode.ALREADY_CLAIMED
    assert (refused.refusal.holder, refused.refusal.since) == (ALICE, T0)
    assert refused.case == claimed.case == await store.cases.get(case.id)


async def test_a_race_of_clicks_on_one_case_is_one_transaction_the_rest_refused_in_memory(
    database: Database,
) -> None:
    """Fifty clicks on one fresh card: on PostgreSQL each locking the case row in turn queued them behind each
    other's transactions. The losers are decided against the case the winner left, without a transaction of their
    own. (SQLite runs a transaction in one turn of the loop: they never overlap, and each costs microseconds.)"""
    counting = CountingDatabase(database)
    store = SqlStore(counting)
    case = (await store.cases.record_event(make_event("m1"), effects=no_effects)).case
    opened = counting.transactions
    clickers = [replace(ALICE, id=f"29:user-{n}", name=f"User {n}") for n in range(20)]

    outcomes = await asyncio.gather(
        *(
            store.cases.transition(case.id, Verb.CLAIM, who, T0, CLAIM_TIMEOUT, effects=no_effects, seen=case)
            for who in clickers
        )
    )

    [winner] = [outcome for outcome in outcomes if outcome.applied]
    if database.dialect.name == "postgresql":
        assert counting.transactions - opened == 1
    assert all(outcome.refusal is not None and outcome.refusal.code is RefusalCode.ALREADY_CLAIMED
               for outcome in outcomes if outcome is not winner)
    assert {outcome.case.claimed_by for outcome in outcomes} == {winner.case.claimed_by}
    assert await store.cases.get(case.id) == winner.case


async def test_a_click_on_a_current_card_is_decided_without_reading_the_case_again(database: Database) -> None:
    """The click's own snapshot decides; the compare-and-set checks it. The roll-up statements and the outbox rows
    go as batches: on PostgreSQL a transition took a round trip per statement, 17 of them."""
    counting = CountingDatabase(database)
    store = SqlStore(counting)
    case = (await store.cases.record_event(make_event("m1"), effects=no_effects)).case
    sent_before = len(counting.sent_in_transactions)

    outcome = await store.cases.transition(
        case.id, Verb.CLAIM, ALICE, T0, CLAIM_TIMEOUT,
        effects=lambda done: transition_effects(done, Verb.CLAIM, ALICE, T0), seen=case,
    )  # fmt: skip

    sent = counting.sent_in_transactions[sent_before:]
    assert outcome.applied and outcome.case.claimed_by == ALICE
    assert not [statement for statement in sent if statement.startswith("SELECT * FROM cases")]
    # lock, roll-ups out, update, roll-ups in, the case's mails, the outbox rows
    assert len(sent) == 6, sent
    assert await store.cases.get(case.id) == outcome.case
    assert sorted(job.kind for job in await store.jobs.lease("t", [POST_CARD, THREAD_REPLY, SET_FLAG],
                                                                lease_for=timedelta(minutes=1), limit=10)) == sorted(
        [POST_CARD, SET_FLAG, THREAD_REPLY])  # fmt: skip


async def test_a_click_on_a_stale_card_is_decided_on_the_stored_case(store: SqlStore) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=no_effects)).case
    claimed = await store.cases.transition(case.id, Verb.CLAIM, BOB, T0, CLAIM_TIMEOUT, effects=no_effects)

    # Alice's snapshot still shows the case open: Claim looks allowed on it, the compare-and-set finds it moved on.
    outcome = await store.cases.transition(case.id, Verb.CLAIM, ALICE, T0, CLAIM_TIMEOUT, effects=no_effects, seen=case)

    assert outcome.refusal is not None and outcome.refusal.code is RefusalCode.ALREADY_CLAIMED
    assert outcome.case == claimed.case == await store.cases.get(case.id)


async def test_a_batch_of_statements_runs_in_order_in_its_transaction_and_is_one_round_trip(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with database.transaction() as cursor:
        await cursor.execute("CREATE TABLE batch_probe (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    sends = 0
    if database.dialect.name == "postgresql":
        import psycopg

        execute = psycopg.AsyncCursor.execute

        async def counted(cursor: psycopg.AsyncCursor[Any], *args: Any, **kwargs: Any) -> Any:
            nonlocal sends
            sends += 1
            return await execute(cursor, *args, **kwargs)

        monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
    batch = [
        ("INSERT INTO batch_probe (k, v) VALUES (?, ?)", ("a", 1)),
        ("UPDATE batch_probe SET v = v + ? WHERE k = ?", (10, "a")),
        ("INSERT INTO batch_probe (k, v) VALUES (?, ?)", ("it's", 2)),
    ]

    with pytest.raises(RuntimeError):
        async with database.transaction() as cursor:
            await cursor.execute_all(batch)
            raise RuntimeError("rolled back")
    async with database.transaction() as cursor:
        sends = 0
        await cursor.execute_all(batch)
        batch_sends = sends

    async with database.read() as cursor:
        await cursor.execute("SELECT k, v FROM batch_probe ORDER BY k")
        assert [(row["k"], row["v"]) for row in await cursor.fetchall()] == [("a", 11), ("it's", 2)]
    if database.dialect.name == "postgresql":
        assert batch_sends == 1


async def test_transition_of_an_unknown_case_raises(store: SqlStore) -> None:
    with pytest.raises(LookupError):
        await store.cases.transition("missing", Verb.CLAIM, ALICE, T0, CLAIM_TIMEOUT, effects=no_effects)


async def test_reopen_is_refused_while_the_caller_has_a_newer_active_case(store: SqlStore) -> None:
    old = (await store.cases.record_event(make_event("m1"), effects=no_effects)).case
    await store.cases.transition(old.id, Verb.DONE, ALICE, T0, CLAIM_TIMEOUT, effects=no_effects)
    new = (await store.cases.record_event(make_event("m2", minutes=5), effects=no_effects)).case
    await store.cases.transition(new.id, Verb.CLAIM, BOB, T0 + timedelta(minutes=6), CLAIM_TIMEOUT, effects=no_effects)

    outcome = await store.cases.transition(
        old.id, Verb.REOPEN, ALICE, T0 + timedelta(minutes=7), CLAIM_TIMEOUT, effects=no_effects
    )

    assert outcome.refusal is not None
    assert outcome.case.state is CaseState.DONE
    assert (outcome.refusal.holder, outcome.refusal.since) == (BOB, T0 + timedelta(minutes=6))
    active, total = await store.cases.list_active(["line-1"])
    assert total == 1 and active[0].id == new.id


async def test_list_active_filters_orders_and_pages(store: SqlStore) -> None:
    ids = [(await store.cases.record_event(make_event(f"m{n}", f"+49301000{n}", minutes=n), effects=no_effects)).case.id
           for n in range(5)]
    await store.cases.record_event(make_event("other-line", line_id="line-2"), effects=no_effects)
    await store.cases.transition(ids[1], Verb.CLAIM, ALICE, T0, CLAIM_TIMEOUT, effects=no_effects)
    await store.cases.transition(ids[3], Verb.CLAIM, ALICE, T0, CLAIM_TIMEOUT, effects=no_effects)
    await store.cases.transition(ids[4], Verb.DONE, BOB, T0, CLAIM_TIMEOUT, effects=no_effects)

    page, total = await store.cases.list_active(["line-1"], limit=2, offset=1)
    mine, mine_total = await store.cases.list_active(["line-1"], claimed_by=ALICE.id)
    both, both_total = await store.cases.list_active(["line-1", "line-2"])

    assert total == 4 and [case.id for case in page] == ids[1:3]
    assert all(case.events for case in page)
    assert mine_total == 2 and [case.id for case in mine] == [ids[1], ids[3]]
    assert both_total == 5 and len(both) == 5
    assert await store.cases.list_active([]) == ([], 0)


async def test_find_by_message_and_mail_flags(store: SqlStore) -> None:
    event = make_event("m1")
    case = (await store.cases.record_event(event, effects=no_effects)).case
    mailbox = event.mail.mailbox.upper()

    assert (await store.cases.find_by_message(mailbox, "m1")) == case
    assert await store.cases.find_by_message(mailbox, "nope") is None
    fresh = await store.mails.get_mail(mailbox, "m1")
    assert fresh is not None and fresh.case_id == case.id
    assert (fresh.observed_flag, fresh.written_flag) == (None, None)

    await store.mails.set_written_flag(mailbox, "m1", FlagStatus.FLAGGED)
    await store.mails.set_observed_flag(mailbox, "m1", FlagStatus.COMPLETE)

    [mail] = await mails_of_case(store, case.id)
    assert (mail.observed_flag, mail.written_flag) == (FlagStatus.COMPLETE, FlagStatus.FLAGGED)
    with pytest.raises(LookupError):
        await store.mails.set_observed_flag(mailbox, "unknown", FlagStatus.FLAGGED)


async def test_channel_links(store: SqlStore) -> None:
    link = ChannelLink("line-1", "tenant", "team-1", "19:general", "https://svc/", ALICE.id, T0)
    await store.links.link_channel(link)
    await store.links.link_channel(ChannelLink("line-2", "tenant", "team-2", "19:other", "https://svc/", BOB.id, T0))
    moved = ChannelLink("line-1", "tenant", "team-1", "19:sales", "https://svc/", BOB.id, T0 + timedelta(days=1))
    await store.links.link_channel(moved)

    assert await store.links.link_for_line("line-1") == moved
    assert await store.links.links_for_channel("19:general") == []
    assert await store.links.unlink_line("line-1") is True
    assert await store.links.unlink_line("line-1") is False
    assert await store.links.link_for_line("line-1") is None


async def test_cards(store: SqlStore) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=no_effects)).case
    await store.cards.save_card(CardRef(case.id, "19:general;messageid=1", "act-1", 1))
    updated = CardRef(case.id, "19:general;messageid=1", "act-1", 3)
    await store.cards.save_card(updated)

    assert await store.cards.get_card(case.id) == updated
    assert await store.cards.case_id_for_activity("act-1") == case.id
    assert await store.cards.case_id_for_activity("act-2") is None
    assert await store.cards.get_card("missing") is None


async def test_subscriptions_and_delta_links(store: SqlStore) -> None:
    subscription = Subscription("pool@example.com", "sub-1", T0)
    await store.subscriptions.save_subscription(subscription)
    renewed = Subscription("pool@example.com", "sub-2", T0 + timedelta(days=2))
    await store.subscriptions.save_subscription(renewed)
    await store.subscriptions.save_delta_link("pool@example.com", "https://graph/delta?token=1")
    await store.subscriptions.save_delta_link("pool@example.com", "https://graph/delta?token=2")

    assert await store.subscriptions.get_subscription("pool@example.com") == renewed
    assert await store.subscriptions.subscription_by_id("sub-2") == renewed
    assert await store.subscriptions.subscription_by_id("sub-1") is None
    assert await store.subscriptions.get_delta_link("pool@example.com") == "https://graph/delta?token=2"
    assert await store.subscriptions.get_delta_link("other@example.com") is None


async def test_leases_one_holder_at_a_time(store: SqlStore) -> None:
    ttl = timedelta(minutes=1)
    leases = store.leases

    assert await leases.try_acquire("renewal", "a", ttl, T0)
    assert not await leases.try_acquire("renewal", "b", ttl, T0 + timedelta(seconds=30))
    assert await leases.try_acquire("renewal", "a", ttl, T0 + timedelta(seconds=50))  # extends to +110 s
    assert not await leases.try_acquire("renewal", "b", ttl, T0 + timedelta(seconds=100))
    assert await leases.try_acquire("renewal", "b", ttl, T0 + timedelta(seconds=110))
    assert await leases.try_acquire("other", "a", ttl, T0)
    await leases.release("renewal", "a")  # not the holder: no effect
    assert not await leases.try_acquire("renewal", "a", ttl, T0 + timedelta(seconds=120))
    await leases.release("renewal", "b")
    assert await leases.try_acquire("renewal", "a", ttl, T0 + timedelta(seconds=120))


async def test_outlook_verbs_are_stored_like_user_verbs(store: SqlStore) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=no_effects)).case
    done = await store.cases.transition(
        case.id, Verb.OUTLOOK_COMPLETE, OUTLOOK_ACTOR, T0, CLAIM_TIMEOUT, effects=no_effects
    )
    flagged = await store.cases.transition(
        case.id, Verb.OUTLOOK_FLAG, OUTLOOK_ACTOR, T0, CLAIM_TIMEOUT, effects=no_effects
    )

    assert done.case.done_by == OUTLOOK_ACTOR
    assert flagged.case.state is CaseState.OPEN and flagged.case.reopened
    assert await store.cases.get(case.id) == flagged.case


async def test_migrations_are_applied_once_even_when_started_concurrently(database_url: str) -> None:
    opened = await asyncio.gather(*(open_store(database_url) for _ in range(3)))
    try:
        first = opened[0]
        assert isinstance(first, SqlStore)
        assert await migrate(first.database) == []
        async with first.database.transaction() as cursor:
            await cursor.execute("SELECT version FROM schema_migrations")
            versions = [row["version"] for row in await cursor.fetchall()]
        assert sorted(versions) == [migration.version for migration in available_migrations()]
        await asyncio.gather(*(each.ping() for each in opened))
    finally:
        await asyncio.gather(*(each.close() for each in opened))


@pytest.mark.parametrize("url", ["mysql://localhost/db", "sqlite://relative", "sqlite:///", "", "file.sqlite3"])
async def test_open_store_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        await open_store(url)


async def test_open_store_in_memory() -> None:
    store = await open_store("sqlite:///:memory:")
    try:
        outcome = await store.cases.record_event(make_event("m1"), effects=no_effects)
        assert await store.cases.get(outcome.case.id) == outcome.case
    finally:
        await store.close()


async def test_watched_since_is_recorded_once(store: SqlStore) -> None:
    first = await store.subscriptions.watched_since("Pool@Example.com", T0)
    later = await store.subscriptions.watched_since("pool@example.com", T0 + timedelta(days=3))

    assert first == later == T0


async def test_the_installations_table_nobody_read_is_gone(store: SqlStore) -> None:
    with pytest.raises(Exception, match="installations"):
        async with store.database.read() as cursor:
            await cursor.execute("SELECT * FROM installations")
