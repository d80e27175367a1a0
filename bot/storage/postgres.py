"""PostgreSQL behind :class:`bot.storage.database.Database`, in a module of its own: psycopg (≈ 7 MB resident) is
imported only by a bot that runs on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import psycopg
import psycopg.errors
from psycopg import AsyncClientCursor
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bot.storage.database import (
    POSTGRES,
    Cursor,
    GroupCommit,
    IntegrityConflict,
    Params,
    PendingWrite,
    Row,
    Written,
)

POSTGRES_GROUPS_IN_FLIGHT = 3
"""PostgreSQL groups committing at once (each on its own pooled connection)."""
_MIGRATION_LOCK_KEY = 7_426_117_001
"""PostgreSQL advisory lock key held while migrations run (any constant unique to this application)."""


def _postgres_sql(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def _bound_statements(cursor: AsyncClientCursor[Row], statements: Iterable[tuple[str, Params]]) -> list[str]:
    """The statements with their parameters bound client-side, to go as one simple-query message."""
    return [cursor.mogrify(_postgres_sql(sql), list(params)) for sql, params in statements]


class _PostgresCursor:
    def __init__(self, cursor: psycopg.AsyncCursor[Row]) -> None:
        self._cursor = cursor

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            await self._cursor.execute(_postgres_sql(sql), list(params))
        except psycopg.errors.IntegrityError as error:
            raise IntegrityConflict(str(error), error.diag.constraint_name) from error
        return self._cursor.rowcount

    async def execute_all(self, statements: Sequence[tuple[str, Params]]) -> None:
        """One simple-query message with the parameters bound client-side (as a group commit does): a transition's
        roll-up statements and outbox rows took a round trip each, a dozen per click."""
        if not statements:
            return
        client = AsyncClientCursor(self._cursor.connection)
        try:
            await client.execute(";\n".join(_bound_statements(client, statements)))
        except psycopg.errors.IntegrityError as error:
            raise IntegrityConflict(str(error), error.diag.constraint_name) from error
        finally:
            await client.close()

    async def fetchone(self) -> Row | None:
        return await self._cursor.fetchone() if self._cursor.description else None

    async def fetchall(self) -> list[Row]:
        return await self._cursor.fetchall() if self._cursor.description else []


class PostgresDatabase:
    """PostgreSQL through a psycopg connection pool, used concurrently (no lock in this process); sessions run in
    UTC. Single-statement writes are group-committed through one pipelined transaction per group, a few groups at
    once."""

    dialect = POSTGRES

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._group = GroupCommit(self._commit_group, in_flight=POSTGRES_GROUPS_IN_FLIGHT)

    @classmethod
    async def open(cls, conninfo: str, min_size: int = 4, max_size: int = 10) -> PostgresDatabase:
        options = f"{conninfo_to_dict(conninfo).get('options') or ''} -c timezone=UTC".strip()
        # Autocommit: a read is one round trip (a transaction block would add BEGIN and COMMIT); write
        # transactions open their block explicitly.
        pool = AsyncConnectionPool(
            make_conninfo(conninfo, options=options),
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True},
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

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Cursor]:
        """Any pooled connection, each statement on its own snapshot (MVCC: nothing here waits for a writer). The
        reads of this project tolerate that: a count beside a page, or a case's events read just after the case."""
        async with self._pool.connection() as connection:
            cursor = connection.cursor(row_factory=dict_row)
            try:
                yield _PostgresCursor(cursor)
            finally:
                await cursor.close()

    async def write(self, sql: str, params: Params = ()) -> Written:
        return await self._group.write(sql, params)

    async def _commit_group(self, writes: Sequence[PendingWrite]) -> list[Written | Exception]:
        """The group as one simple-query message, ``BEGIN; …; COMMIT``, with the parameters bound client-side: one
        round trip and two turns of the event loop whatever the group's size. (A pipelined transaction awaits the
        loop once per statement; with the loop busy answering a burst of requests each of those turns queued
        behind every ready request, and a group took milliseconds.)"""
        async with self._pool.connection() as connection:
            cursor = AsyncClientCursor(connection, row_factory=dict_row)
            try:
                statements = _bound_statements(cursor, ((write.sql, write.params) for write in writes))
                await cursor.execute(";\n".join(["BEGIN", *statements, "COMMIT"]))
                outcomes: list[Written | Exception] = []
                for _ in writes:
                    cursor.nextset()  # past BEGIN, then past each statement before
                    outcomes.append(Written(await cursor.fetchall() if cursor.description else [], cursor.rowcount))
                return outcomes
            except (psycopg.errors.IntegrityError, psycopg.errors.DeadlockDetected):
                # One write was refused and took the group's transaction with it: each alone, so only that one
                # fails. A deadlock between groups committing at once (one was rolled back) is resolved the same way.
                await connection.execute("ROLLBACK")
            finally:
                await cursor.close()
        return [await self._write_alone(write) for write in writes]

    async def _write_alone(self, write: PendingWrite) -> Written | Exception:
        try:
            async with self.transaction() as cursor:
                rowcount = await cursor.execute(write.sql, write.params)
                return Written(await cursor.fetchall(), rowcount)
        except IntegrityConflict as conflict:
            return conflict

    async def lock_for_migrations(self, cursor: Cursor) -> None:
        await cursor.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK_KEY,))

    async def close(self) -> None:
        await self._group.close()
        await self._pool.close()
