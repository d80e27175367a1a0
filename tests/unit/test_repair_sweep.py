"""The repair sweep queues what a case's state requires but is neither there nor on its way: a missing card, a
stale card, a wrong flag; idempotently and bounded per pass."""

from __future__ import annotations

from datetime import timedelta

from bot.core import effects
from bot.core.ports import CardRef, ChannelLink
from bot.core.repair import Repairs, RepairSweep
from bot.core.values import FlagStatus
from bot.domain.state_machine import Verb
from bot.storage.factory import sql_database
from bot.storage.repair_store import SqlRepairQueries
from bot.storage.sql_store import SqlStore
from tests.support.storage import ALICE, T0, make_event
from tests.support.store_probes import mails_of_case

NOW = T0 + timedelta(hours=1)
TIMEOUT = timedelta(minutes=30)
NOTHING = Repairs(0, 0, 0)


def sweep(store: SqlStore, limit: int = 50) -> RepairSweep:
    return RepairSweep(store, SqlRepairQueries(sql_database(store)), clock=lambda: NOW, limit=limit)


async def linked_store(store: SqlStore) -> SqlStore:
    await store.links.link_channel(ChannelLink("line-1", "tenant", "team-1", "19:general", "https://svc/", "a", T0))
    return store


async def new_case(store: SqlStore, n: int, *, card: bool = True) -> str:
    outcome = await store.cases.record_event(
        make_event(f"m{n}", f"+49301234{n:03d}", minutes=n), effects=effects.no_effects
    )
    case = outcome.case
    mail = case.events[0].mail
    assert mail is not None
    await store.mails.set_observed_flag(mail.mailbox, mail.message_id, FlagStatus.NOT_FLAGGED)
    if card:
        await store.cards.save_card(CardRef(case.id, f"19:general;messageid={n}", f"a{n}", case.version))
    return case.id


async def pending_jobs(store: SqlStore) -> list[tuple[str, str | None]]:
    async with sql_database(store).read() as cursor:
        await cursor.execute("SELECT kind, dedupe_key FROM jobs WHERE state = 'pending' ORDER BY id")
        return [(row["kind"], row["dedupe_key"]) for row in await cursor.fetchall()]


async def finish_all(store: SqlStore) -> None:
    await store.jobs.lease("test", [effects.POST_CARD, effects.SET_FLAG], timedelta(minutes=1), limit=1000)
    await sql_database(store).write("UPDATE jobs SET state = 'done' WHERE state = 'leased'")


async def test_a_healthy_case_needs_no_repair(store: SqlStore) -> None:
    await linked_store(store)
    await new_case(store, 1)
    assert await sweep(store).run() == NOTHING
    assert await pending_jobs(store) == []


async def test_a_missing_card_is_queued_once(store: SqlStore) -> None:
    await linked_store(store)
    case_id = await new_case(store, 1, card=False)  # its card job was lost

    assert await sweep(store).run() == Repairs(1, 0, 0)
    assert await pending_jobs(store) == [(effects.POST_CARD, f"card:{case_id}")]
    assert await sweep(store).run() == NOTHING  # on its way already
    await finish_all(store)  # it ran (and still no card: the line's channel refused it, say)
    assert await sweep(store).run() == Repairs(1, 0, 0)


async def test_cases_of_a_line_without_a_channel_get_no_card(store: SqlStore) -> None:
    await new_case(store, 1, card=False)
    assert await sweep(store).run() == NOTHING


async def test_a_stale_card_and_a_wrong_flag_are_queued(store: SqlStore) -> None:
    await linked_store(store)
    case_id = await new_case(store, 1)
    claimed = await store.cases.transition(case_id, Verb.CLAIM, ALICE, NOW, TIMEOUT, effects=effects.no_effects)
    assert claimed.applied  # ... and the process died before it queued the card update and the flag write

    assert await sweep(store).run() == Repairs(0, 1, 1)
    [card_job, flag_job] = await pending_jobs(store)
    assert card_job == (effects.POST_CARD, f"card:{case_id}")
    assert flag_job == (effects.SET_FLAG, "flag:line-1@example.com:m1")
    assert await sweep(store).run() == NOTHING

    await finish_all(store)
    mail = (await mails_of_case(store, case_id))[0]
    await store.mails.set_written_flag(mail.mailbox, mail.message_id, FlagStatus.FLAGGED)
    await store.cards.save_card(CardRef(case_id, "19:general;messageid=1", "a1", claimed.case.version))
    assert await sweep(store).run() == NOTHING  # repaired


async def test_a_sweep_is_bounded_and_the_next_pass_continues(store: SqlStore) -> None:
    await linked_store(store)
    cases = [await new_case(store, n, card=False) for n in range(5)]

    passes = [await sweep(store, limit=2).run() for _ in range(4)]

    assert [repairs.missing_cards for repairs in passes] == [2, 2, 1, 0]
    assert sorted(key for _, key in await pending_jobs(store)) == sorted(f"card:{case_id}" for case_id in cases)
