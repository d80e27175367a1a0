"""The storage paths the throughput depends on, checked by what they do (never by how long they take):
group commit, reads beside an open write transaction, refusals and coalesced refreshes without a write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.core import effects
from bot.core.effects import no_effects
from bot.domain.state_machine import Verb
from bot.storage.database import Database, GroupCommit, IntegrityConflict, Written
from bot.storage.factory import open_database
from bot.storage.sql_store import SqlStore
from tests.support.storage import ALICE, BOB, CountingDatabase, make_event

CLAIM_TIMEOUT = timedelta(minutes=120)
DEADLOCK_GUARD_S = 30
"""Only turns a hang (a read waiting for the writer this very task holds) into a failure; no timing is asserted."""


@pytest.fixture
async def counting(database: Database) -> AsyncIterator[CountingDatabase]:
    yield CountingDatabase(database)


async def test_concurrent_writes_share_commits_and_each_is_durable_when_it_returns(
    database: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    group = database._group  # type: ignore[attr-defined]
    commit = group._commit

    async def counted(writes: Sequence[Any]) -> list[Written | Exception]:
        groups.append(len(writes))
        return await commit(writes)

    monkeypatch.setattr(group, "_commit", counted)
    store = SqlStore(database)
    ids = await asyncio.gather(*(store.jobs.enqueue("test.kind", {"n": n}, dedupe_key=f"k{n}") for n in range(50)))

    assert all(job_id is not None for job_id in ids)
    assert sum(groups) == 50
    assert len(groups) < 50, groups
    # Committed before enqueue returned: another connection sees every job.
    other = await open_database(database_url)
    try:
        async with other.read() as cursor:
            await cursor.execute("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'test.kind'")
            row = await cursor.fetchone()
    finally:
        await other.close()
    assert row is not None and row["n"] == 50


async def test_a_refused_write_fails_alone_in_its_group(database: Database) -> None:
    await SqlStore(database).jobs.enqueue("test.kind", {}, dedupe_key="taken")
    insert = (
        "INSERT INTO jobs (kind, payload, state, attempts, dedupe_key, run_at, created_at, updated_at) "
        "VALUES ('test.kind', '{}', 'pending', 0, ?, ?, ?, ?)"
    )
    now = datetime.now(UTC)
    outcomes = await asyncio.gather(
        *(database.write(insert, (key, now, now, now)) for key in ("a", "taken", "b")), return_exceptions=True
    )

    assert isinstance(outcomes[1], IntegrityConflict)
    assert [o.rowcount for o in (outcomes[0], outcomes[2]) if isinstance(o, Written)] == [1, 1]


async def test_reads_do_not_wait_for_an_open_write_transaction(database: Database) -> None:
    store = SqlStore(database)
    recorded = await store.cases.record_event(make_event("m-1"), effects=no_effects)
    async with asyncio.timeout(DEADLOCK_GUARD_S), database.transaction() as cursor:
        await cursor.execute("UPDATE cases SET caller_name = ? WHERE id = ?", ("Neu", recorded.case.id))
        # Same task, writer lock held: a read that needed that lock could never finish.
        seen = await store.cases.get(recorded.case.id)
    assert seen is not None
    assert seen.caller_name != "Neu"  # the snapshot before the open transaction's change


async def test_a_losing_click_is_refused_without_a_write_transaction(counting: CountingDatabase) -> None:
    store = SqlStore(counting)
    case = (await store.cases.record_event(make_event("m-1"), effects=no_effects)).case
    now = datetime.now(UTC)
    won = await store.cases.transition(case.id, Verb.CLAIM, ALICE, now, CLAIM_TIMEOUT, effects=no_effects)
    assert won.applied
    before = counting.transactions

    lost = await store.cases.transition(case.id, Verb.CLAIM, BOB, now, CLAIM_TIMEOUT, effects=no_effects)

    assert lost.refusal is not None
    assert lost.case.claimed_by == ALICE
    assert counting.transactions == before


async def test_a_refresh_already_pending_is_coalesced_without_a_write(counting: CountingDatabase) -> None:
    store = SqlStore(counting)
    refresh = [effects.RefreshCard("c1")]
    await store.jobs.add(refresh)
    writes = counting.writes + counting.transactions

    for _ in range(5):
        await store.jobs.add(refresh)

    assert counting.writes + counting.transactions == writes
    assert (await store.jobs.depth())["pending"] == 1
    # Once the pending job has been taken, a new refresh is queued again.
    leased = await store.jobs.lease("worker", [effects.POST_CARD], timedelta(minutes=1))
    assert len(leased) == 1
    await store.jobs.add(refresh)
    assert (await store.jobs.depth())["pending"] == 1


async def _commits_at_once(in_flight: int, writes: int) -> int:
    """The most groups that were inside ``commit`` at the same time while ``writes`` arrive one by one."""
    running = most = 0
    release = asyncio.Event()

    async def commit(group: Sequence[Any]) -> list[Written | Exception]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return [Written([], 1) for _ in group]

    group = GroupCommit(commit, in_flight=in_flight)
    pending = []
    for n in range(writes):
        pending.append(asyncio.create_task(group.write("INSERT", (n,))))
        for _ in range(5):  # let the group take this write before the next arrives
            await asyncio.sleep(0)
    assert not any(task.done() for task in pending)  # no write is answered before its commit returned
    release.set()
    assert [written.rowcount for written in await asyncio.gather(*pending)] == [1] * writes
    await group.close()
    return most


async def test_groups_commit_one_at_a_time_unless_more_are_allowed_in_flight() -> None:
    assert await _commits_at_once(in_flight=1, writes=6) == 1
    assert await _commits_at_once(in_flight=3, writes=6) == 3


async def test_a_write_given_up_by_its_caller_is_still_committed_with_its_group(database: Database) -> None:
    store = SqlStore(database)
    given_up = asyncio.create_task(store.jobs.enqueue("test.kind", {}, dedupe_key="given-up"))
    kept = asyncio.create_task(store.jobs.enqueue("test.kind", {}, dedupe_key="kept"))
    await asyncio.sleep(0)
    given_up.cancel()
    assert await kept is not None
    await asyncio.sleep(0.1)  # only lets the cancelled task finish; nothing is timed
    assert await store.jobs.pending("given-up")
    assert await store.jobs.pending("kept")


async def test_sqlite_stores_every_timestamp_as_fixed_width_utc_text(tmp_path: Any) -> None:
    database = await open_database(f"sqlite:///{tmp_path / 'times.sqlite3'}")
    try:
        berlin = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
        whole_second = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
        await database.write("CREATE TABLE times (at TEXT)")
        for value in (berlin, whole_second):
            await database.write("INSERT INTO times (at) VALUES (?)", (value,))
        async with database.read() as cursor:
            await cursor.execute("SELECT at FROM times ORDER BY rowid")
            stored = [row["at"] for row in await cursor.fetchall()]
    finally:
        await database.close()
    assert stored == ["2026-03-29T01:30:00.000000+00:00", "2026-12-01T18:00:00.000000+00:00"]
