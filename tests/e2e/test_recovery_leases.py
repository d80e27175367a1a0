"""Short leases renewed by a heartbeat: a dead worker's jobs come back within seconds, a live one keeps its job,
and waiting for another holder's card lease costs no attempt."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.core import effects
from bot.core.jobs import JobRunner
from bot.storage.database import Database
from bot.storage.factory import sql_database
from bot.storage.sql_store import SqlStore
from tests.support.bot_stack import BotStack, user
from tests.support.teams import action_data, badge, card_json, posted_case, the_card

KIND = "teams.card"
GUARD_S = 20
"""Only turns a hang into a failure; no timing is asserted."""


async def test_a_dead_workers_job_is_leased_again_once_its_short_lease_ran_out(database: Database) -> None:
    now = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    store = SqlStore(database, clock=lambda: now[0])
    started = asyncio.Event()
    ran: list[str] = []

    async def hang(payload: dict[str, Any]) -> None:
        ran.append("first")
        started.set()
        await asyncio.Event().wait()

    dying = JobRunner(store.jobs, {KIND: hang}, concurrency=1, idle_poll=0.01)
    await store.jobs.enqueue(KIND, {"case_id": "c1"})
    dying.start()
    async with asyncio.timeout(GUARD_S):
        await started.wait()
    await dying.stop()  # killed: nothing completes, fails or releases the job

    async def succeed(payload: dict[str, Any]) -> None:
        ran.append("second")

    survivor = JobRunner(store.jobs, {KIND: succeed})
    now[0] += timedelta(seconds=10)
    await survivor.run_until_idle()
    assert ran == ["first"]  # still leased to the dead worker
    now[0] += timedelta(seconds=20)  # 30 s after the kill: a two-minute lease would still hold it
    await survivor.run_until_idle()
    assert ran == ["first", "second"]


async def test_a_live_worker_keeps_its_job_past_the_lease_by_renewing_it(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's clock is moved by hand, past the first lease and well beyond: only the heartbeat's renewals keep
    another instance from taking the job (no wall-clock race between a slow machine and a short lease)."""
    now = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    store = SqlStore(database, clock=lambda: now[0])
    lease = timedelta(milliseconds=400)  # the heartbeat beats every 100 ms of real time
    renewals, release, runs = [0], asyncio.Event(), []
    extend = store.jobs.extend

    async def counted_extend(job: Any, worker_id: str, lease_for: timedelta) -> bool:
        held = await extend(job, worker_id, lease_for)
        renewals[0] += 1
        return held

    async def slow(payload: dict[str, Any]) -> None:
        runs.append(1)
        await release.wait()

    monkeypatch.setattr(store.jobs, "extend", counted_extend)
    runner = JobRunner(store.jobs, {KIND: slow}, lease_for=lease, concurrency=1, idle_poll=0.01)
    await store.jobs.enqueue(KIND, {"case_id": "c1"})
    runner.start()
    try:
        async with asyncio.timeout(GUARD_S):
            while not runs:
                await asyncio.sleep(0.01)
            for _ in range(4):  # 1.2 s of store time in all: three times the lease
                now[0] += lease * 3 / 4
                seen = renewals[0]
                while renewals[0] < seen + 2:  # the second renewal surely read the moved clock
                    await asyncio.sleep(0.01)
                # Another instance looks for expired leases all the time the handler runs.
                assert await store.jobs.lease("other-instance", [KIND], lease) == [], f"stolen at {now[0]:%T.%f}"
            release.set()
            while (await store.jobs.depth())["done"] == 0:
                await asyncio.sleep(0.01)
    finally:
        release.set()
        await runner.stop()
    assert runs == [1]


async def test_a_worker_that_lost_its_lease_stops_and_does_not_complete(store: SqlStore) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def long_job(payload: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner = JobRunner(store.jobs, {KIND: long_job}, lease_for=timedelta(milliseconds=200), concurrency=1)
    job_id = await store.jobs.enqueue(KIND, {"case_id": "c1"})
    runner.start()
    try:
        async with asyncio.timeout(GUARD_S):
            await started.wait()
            # It stalled past its lease and another worker took the job over.
            await store.database.write("UPDATE jobs SET leased_by = 'other-worker' WHERE id = ?", (job_id,))
            await cancelled.wait()
    finally:
        await runner.stop()
    assert (await store.jobs.depth())["leased"] == 1  # the other worker's, untouched


async def test_waiting_for_another_holders_card_lease_costs_no_attempt(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = await posted_case(bot_stack)
    store = bot_stack.services.store
    [case], _ = await store.cases.list_active(["zentrale"])
    name = f"teams-card:{case.id}"
    # A process that died while posting this card still holds its lease.
    assert await store.leases.try_acquire(name, "dead-process", timedelta(minutes=5), datetime.now(UTC))
    refused = []
    acquire = store.leases.try_acquire

    async def counting(lease: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        taken = await acquire(lease, holder, ttl, now)
        if lease == name and not taken:
            refused.append(holder)
        return taken

    monkeypatch.setattr(store.leases, "try_acquire", counting)
    await bot_stack.click("claim", action_data(card_json(card.current), "claim"), user(0), card.conversation_id,
                          card.activity_id)  # fmt: skip
    async with asyncio.timeout(GUARD_S):
        while len(refused) < 3:
            await asyncio.sleep(0.05)
    await store.leases.release(name, "dead-process")  # its lease ran out
    await bot_stack.drain()

    assert badge(card_json(the_card(bot_stack).current)) == "In Bearbeitung – Anna Schmidt"
    assert await store.jobs.dead_letters() == []
    async with sql_database(store).read() as cursor:
        await cursor.execute("SELECT attempts FROM jobs WHERE kind = ? ORDER BY id DESC LIMIT 1", (effects.POST_CARD,))
        row = await cursor.fetchone()
    assert row["attempts"] == 1
