"""Races: compare-and-set claims (tasks on PostgreSQL, two OS processes on both engines) and concurrent grouping.

The compare-and-set is what decides a race on PostgreSQL (READ COMMITTED: two transactions may both read the old
version). On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` and so holds the database's one write
lock while it reads and writes (and a process runs each transaction's statements without yielding to its other
tasks): the CAS never loses there, and a SQLite run of the CAS tests passes without it. So those run on PostgreSQL;
on SQLite, the race between two processes checks the write lock.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from bot.core.effects import no_effects
from bot.domain.cases import Actor, CaseState
from bot.domain.state_machine import RefusalCode, Verb
from bot.storage.factory import open_store
from bot.storage.sql_store import SqlStore
from tests.support.storage import CLAIM_TIMEOUT, T0, make_event, start_storage_worker

ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
"""Where the compare-and-set decides the race (see the module docstring)."""


@ON_POSTGRES
async def test_fifty_concurrent_claims_have_exactly_one_winner(store: SqlStore) -> None:
    case = (await store.cases.record_event(make_event("m1"), effects=no_effects)).case
    actors = [Actor(f"user-{n}", f"User {n}") for n in range(50)]

    outcomes = await asyncio.gather(
        *(store.cases.transition(case.id, Verb.CLAIM, actor, T0, CLAIM_TIMEOUT, effects=no_effects) for actor in actors)
    )

    winners = [outcome for outcome in outcomes if outcome.applied]
    assert len(winners) == 1
    winner = winners[0].case.claimed_by
    refusals = [outcome.refusal for outcome in outcomes if outcome.refusal is not None]
    assert len(refusals) == 49
    assert {refusal.code for refusal in refusals} == {RefusalCode.ALREADY_CLAIMED}
    assert {(refusal.holder, refusal.since) for refusal in refusals} == {(winner, T0)}
    stored = await store.cases.get(case.id)
    assert stored is not None and stored.claimed_by == winner and stored.version == case.version + 1


@ON_POSTGRES
async def test_concurrent_calls_of_one_caller_make_one_case(store: SqlStore) -> None:
    events = [make_event(f"m{n}", minutes=n) for n in range(20)]

    outcomes = await asyncio.gather(*(store.cases.record_event(event, effects=no_effects) for event in events))

    assert sum(outcome.case_created for outcome in outcomes) == 1
    assert len({outcome.case.id for outcome in outcomes}) == 1
    stored = await store.cases.get(outcomes[0].case.id)
    assert stored is not None and stored.events == tuple(events) and stored.version == 20


async def test_the_same_mail_recorded_concurrently_is_one_event(store: SqlStore) -> None:
    outcomes = await asyncio.gather(
        *(store.cases.record_event(make_event("m1"), effects=no_effects) for _ in range(10))
    )

    assert sum(outcome.event_added for outcome in outcomes) == 1
    [case], total = await store.cases.list_active(["line-1"])
    assert total == 1 and case.call_count == 1


@ON_POSTGRES
async def test_events_and_claims_interleaved_keep_every_event(store: SqlStore) -> None:
    first = (await store.cases.record_event(make_event("m0"), effects=no_effects)).case
    actors = [Actor(f"user-{n}", f"User {n}") for n in range(10)]

    await asyncio.gather(
        *(store.cases.record_event(make_event(f"m{n}", minutes=n), effects=no_effects) for n in range(1, 11)),
        *(
            store.cases.transition(first.id, Verb.CLAIM, actor, T0, CLAIM_TIMEOUT, effects=no_effects)
            for actor in actors
        ),
    )

    stored = await store.cases.get(first.id)
    assert stored is not None and stored.call_count == 11
    assert stored.state is CaseState.CLAIMED and stored.version == 1 + 10 + 1


async def test_claims_from_two_processes_have_exactly_one_winner(
    database_url: str, worker_processes: list[subprocess.Popen[str]]
) -> None:
    """Two processes are two connections (on SQLite two writers, taking turns at the file's write lock)."""
    store = await open_store(database_url)
    try:
        case = (await store.cases.record_event(make_event("m1"), effects=no_effects)).case
        worker_processes.extend(
            start_storage_worker("claim", database_url, case.id, "25", f"proc{n}") for n in range(2)
        )
        results = []
        for process in worker_processes:
            stdout, stderr = await asyncio.to_thread(process.communicate, timeout=120)
            assert process.returncode == 0, stderr
            results.append(json.loads(stdout))
        stored = await store.cases.get(case.id)
    finally:
        await store.close()

    winners = [winner for result in results for winner in result["winners"]]
    holders = [holder for result in results for holder in result["refusal_holders"]]
    assert len(winners) == 1 and len(holders) == 49
    assert set(holders) == set(winners)
    assert stored is not None and stored.claimed_by is not None and stored.claimed_by.id == winners[0]
