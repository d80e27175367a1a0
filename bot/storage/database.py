"""A small async database abstraction so that the repositories' SQL is written once for SQLite and PostgreSQL.

SQL uses ``?`` placeholders everywhere. Every difference between the two engines lives here: placeholder
translation, parameter and value adaptation (timestamps, JSON), the DDL type names the migrations use, row locking
and the migration lock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

Row = dict[str, Any]
Params = Sequence[Any]

_SQLITE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"
"""Fixed width, always UTC: SQLite compares timestamps as text, so every stored value must sort correctly."""

_MIGRATION_LOCK_KEY = 7_426_117_001
"""PostgreSQL advisory lock key held while migrations run (any constant unique to this application)."""


class IntegrityConflict(Exception):
    """A unique (or other integrity) constraint refused a write; the transaction was rolled back."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the engines, for the SQL that cannot be the same."""

    name: str
    ddl_types: Mapping[str, str]
    """Substituted into migration files: ``{timestamp}``, ``{json}``, ``{id_pk}``."""
    lock_rows: str
    """Appended to a SELECT that claims rows (``FOR UPDATE SKIP LOCKED`` where the engine has it)."""


SQLITE = Dialect(
    name="sqlite",
    ddl_types={"timestamp": "TEXT", "json": "TEXT", "id_pk": "INTEGER PRIMARY KEY"},
    lock_rows="",
)
POSTGRES = Dialect(
    name="postgresql",
    ddl_types={"timestamp": "TIMESTAMPTZ", "json": "JSONB", "id_pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"},
    lock_rows=" FOR UPDATE SKIP LOCKED",
)


class Cursor(Protocol):
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed (-1 when not applicable)."""

    async def fetchone(self) -> Row | None: ...

    async def fetchall(self) -> list[Row]: ...


class Database(Protocol):
    dialect: Dialect

    def transaction(self) -> AbstractAsyncContextManager[Cursor]:
        """One transaction: committed when the block ends, rolled back on an exception."""

    async def lock_for_migrations(self, cursor: Cursor) -> None:
        """Inside a transaction: make concurrent migration runs (other processes) wait for this one."""

    async def close(self) -> None: ...


def to_utc(value: datetime | str | None) -> datetime | None:
    """A stored timestamp as a timezone-aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC)


def require_utc(value: datetime | str | None) -> datetime:
    """Like :func:`to_utc` for NOT NULL columns."""
    converted = to_utc(value)
    if converted is None:
        raise ValueError("timestamp column unexpectedly NULL")
    return converted


def from_json(value: Any) -> Any:
    """A JSON column's value: text on SQLite, already decoded by psycopg from JSONB."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _sqlite_param(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime passed to the database; use timezone-aware UTC")
        return value.astimezone(UTC).strftime(_SQLITE_TIME_FORMAT)
    return value


class _SqliteCursor:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._rows: list[Row] = []

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            cursor = await self._connection.execute(sql, [_sqlite_param(p) for p in params])
        except sqlite3.IntegrityError as error:
            raise IntegrityConflict(str(error)) from error
        names = [column[0] for column in cursor.description or ()]
        self._rows = [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()] if names else []
        rowcount = cursor.rowcount
        await cursor.close()
        return rowcount

    async def fetchone(self) -> Row | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows


async def _switch_to_wal(connection: aiosqlite.Connection, patience: float) -> None:
    """Switch to WAL. Changing the journal mode may answer "database is locked" at once, without waiting for the
    busy timeout, while another process opens the same new file; so wait here."""
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.02)


class SqliteDatabase:
    """SQLite in WAL mode with one writer.

    Write transactions in this process are serialised by an asyncio lock and start with ``BEGIN IMMEDIATE`` so that
    a writer in another process makes us wait (``busy_timeout``) instead of failing halfway through a transaction.
    """

    dialect = SQLITE

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, busy_timeout_ms: int = 10_000) -> SqliteDatabase:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        await connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        await _switch_to_wal(connection, busy_timeout_ms / 1000)
        await connection.execute("PRAGMA foreign_keys=ON")
        await connection.execute("PRAGMA synchronous=NORMAL")
        return cls(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Cursor]:
        async with self._lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteCursor(self._connection)
            except BaseException:
                await self._connection.execute("ROLLBACK")
                raise
            await self._connection.execute("COMMIT")

    async def lock_for_migrations(self, cursor: Cursor) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's single write lock."""

    async def close(self) -> None:
        await self._connection.close()


def _postgres_sql(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class _PostgresCursor:
    def __init__(self, cursor: psycopg.AsyncCursor[Row]) -> None:
        self._cursor = cursor

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            await self._cursor.execute(_postgres_sql(sql), list(params))
        except psycopg.errors.IntegrityError as error:
            raise IntegrityConflict(str(error)) from error
        return self._cursor.rowcount

    async def fetchone(self) -> Row | None:
        return await self._cursor.fetchone()

    async def fetchall(self) -> list[Row]:
        return await self._cursor.fetchall()


class PostgresDatabase:
    """PostgreSQL through a psycopg connection pool; sessions run in UTC."""

    dialect = POSTGRES

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, conninfo: str, min_size: int = 1, max_size: int = 10) -> PostgresDatabase:
        options = f"{conninfo_to_dict(conninfo).get('options') or ''} -c timezone=UTC".strip()
        pool = AsyncConnectionPool(
            make_conninfo(conninfo, options=options), min_size=min_size, max_size=max_size, open=False
        )
        await pool.open(wait=True, timeout=10)
        return cls(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Cursor]:
        async with self._pool.connection() as connection, connection.transaction():
            cursor = connection.cursor(row_factory=dict_row)
            try:
                yield _PostgresCursor(cursor)
            finally:
                await cursor.close()

    async def lock_for_migrations(self, cursor: Cursor) -> None:
        await cursor.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK_KEY,))

    async def close(self) -> None:
        await self._pool.close()
