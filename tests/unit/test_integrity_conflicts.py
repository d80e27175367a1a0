"""Integrity conflicts name what refused the write, so that only the active-case index reads as "the caller already
has an active case" (on SQLite here; PostgreSQL names the index through the same field)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.ports import Store
from bot.storage.database import IntegrityConflict
from bot.storage.factory import open_store, sql_database
from bot.storage.sql_store import _second_active_case

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CASE = (
    "INSERT INTO cases (id, line_id, caller_key, state, version, created_at) VALUES (?, 'line', '+49301', 'open', 1, ?)"
)
JOB = (
    "INSERT INTO jobs (kind, payload, state, dedupe_key, run_at, created_at, updated_at) "
    "VALUES ('k', '{}', 'pending', 'same', ?, ?, ?)"
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'conflicts.sqlite3'}")
    yield opened
    await opened.close()


async def _conflict(store: Store, sql: str, *rows: tuple[object, ...]) -> IntegrityConflict:
    with pytest.raises(IntegrityConflict) as raised:
        async with sql_database(store).transaction() as cursor:
            for params in rows:
                await cursor.execute(sql, params)
    return raised.value


async def test_a_second_active_case_is_recognised(store: Store) -> None:
    conflict = await _conflict(store, CASE, ("a", NOW), ("b", NOW))
    assert _second_active_case(conflict)


async def test_another_conflict_is_not_read_as_a_second_active_case(store: Store) -> None:
    conflict = await _conflict(store, JOB, (NOW, NOW, NOW), (NOW, NOW, NOW))
    assert conflict.constraint is not None
    assert not _second_active_case(conflict)
