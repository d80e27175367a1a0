"""A small async database abstraction so that the repositories' SQL is written once for SQLite and PostgreSQL.

SQL uses ``?`` placeholders everywhere. Every difference between the two engines lives here: placeholder
translation, parameter and value adaptation (timestamps, JSON), the DDL type names the migrations use, row locking
and the migration lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Row = dict[str, Any]
Params = Sequence[Any]
T = TypeVar("T")

SQLITE_READERS = 4
"""Read connections of a SQLite file: read transactions open at once (a read block may await other work)."""
CHECKPOINT_INTERVAL_S = 0.5
"""How often the WAL is checkpointed (in a thread of its own) while there are writes."""
WAL_SIZE_LIMIT = 64 * 1024 * 1024
"""The WAL file is cut back to this size when it starts over after a burst."""
GROUP_LIMIT = 512
"""At most this many single-statement writes share one commit."""


class IntegrityConflict(Exception):
    """A unique (or other integrity) constraint refused a write; the transaction was rolled back. ``constraint``
    names what refused it: the constraint or index on PostgreSQL, the table's columns on SQLite (which names an
    index only by its columns), None when the engine did not say."""

    def __init__(self, message: str, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint

    def refused_by(self, index: str, columns: str) -> bool:
        """Whether the unique ``index`` on ``columns`` (``table.column, table.column``) refused the write."""
        return self.constraint in (index, columns)


def _sqlite_conflict(error: sqlite3.IntegrityError) -> IntegrityConflict:
    message = str(error)
    _, _, columns = message.partition(" constraint failed: ")
    return IntegrityConflict(message, columns or None)


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


@dataclass(frozen=True, slots=True)
class Written:
    """What a statement returned: its rows (``RETURNING``) and how many rows it changed."""

    rows: list[Row]
    rowcount: int


@dataclass(slots=True)
class PendingWrite:
    """One single-statement write waiting in a :class:`GroupCommit` group."""

    sql: str
    params: Params
    done: asyncio.Future[Written] = field(default_factory=lambda: _future())


def _future() -> asyncio.Future[Written]:
    future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
    # The writer may have given up waiting (cancelled): its write's outcome is then nobody's to read.
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future


class GroupCommit:
    """Group commit: single-statement writes that arrive while a commit is under way wait for the next one and then
    share it, so a burst costs one transaction (and one fsync) per group instead of one per write. A write's
    future resolves only after its group committed: durable before anyone is told.

    ``commit`` runs one group in one transaction and returns, per write, its result or the exception of that write
    alone (the others still commit); an exception from ``commit`` itself fails the whole group. Up to ``in_flight``
    groups commit at once: one for SQLite's single writer; more for a server, where a group mostly waits for its
    round trips and the next group need not wait for them.
    """

    def __init__(
        self, commit: Callable[[Sequence[PendingWrite]], Awaitable[list[Written | Exception]]], in_flight: int = 1
    ) -> None:
        self._commit = commit
        self._pending: list[PendingWrite] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(in_flight)
        self._task: asyncio.Task[None] | None = None
        self._committing: set[asyncio.Task[None]] = set()

    async def write(self, sql: str, params: Params = ()) -> Written:
        write = PendingWrite(sql, list(params))
        self._pending.append(write)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit")
        # A caller that gives up cancels only its own future: the write is still committed with its group.
        return await write.done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._slots.acquire()
                group, self._pending = self._pending[:GROUP_LIMIT], self._pending[GROUP_LIMIT:]
                committing = asyncio.create_task(self._commit_one(group), name="group-commit-one")
                self._committing.add(committing)
                committing.add_done_callback(self._committing.discard)

    async def _commit_one(self, group: list[PendingWrite]) -> None:
        outcomes: list[Written | Exception] = [RuntimeError("the database was closed")] * len(group)
        try:
            outcomes = await self._commit(group)
        except Exception as error:
            outcomes = [error] * len(group)
        finally:
            self._slots.release()
            for write, outcome in zip(group, outcomes, strict=True):
                if write.done.done():
                    continue
                if isinstance(outcome, Exception):
                    write.done.set_exception(outcome)
                else:
                    write.done.set_result(outcome)

    async def close(self) -> None:
        await cancel_and_wait([task for task in (self._task, *self._committing) if task is not None])
        self._task = None
        for write in self._pending:
            if not write.done.done():
                write.done.set_exception(RuntimeError("the database was closed"))
        self._pending = []


class Cursor(Protocol):
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed (-1 when not applicable)."""

    async def execute_all(self, statements: Sequence[tuple[str, Params]]) -> None:
        """Run statements whose rows and row counts nobody reads, in order: on PostgreSQL in one round trip."""

    async def fetchone(self) -> Row | None: ...

    async def fetchall(self) -> list[Row]: ...


class Database(Protocol):
    dialect: Dialect

    def transaction(self) -> AbstractAsyncContextManager[Cursor]:
        """One transaction: committed when the block ends, rolled back on an exception."""

    def read(self) -> AbstractAsyncContextManager[Cursor]:
        """A read-only transaction on a consistent snapshot; never waits for writers. Writing in it is an error."""

    async def write(self, sql: str, params: Params = ()) -> Written:
        """One statement in its own transaction, group-committed with concurrent ones; returns after the commit.
        Raises :class:`IntegrityConflict` for this statement alone."""

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
    """Timestamps as fixed-width UTC text (``2026-12-01T18:55:00.000000+00:00``): SQLite compares them as text, so
    every stored value must sort correctly. ``isoformat`` costs half of ``strftime``, and writes hold several."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime passed to the database; use timezone-aware UTC")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds")
    return value


class _SqliteThread:
    """A connection used only from its own thread (the checkpointer): every call is one hop from the event loop."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._connection: sqlite3.Connection | None = None

    @property
    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the SQLite connection is not open")
        return self._connection

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, self.connection)

    async def open(self, path: str, busy_timeout_ms: int) -> None:
        self._connection = await asyncio.get_running_loop().run_in_executor(
            self._executor, _sqlite_connect, path, busy_timeout_ms
        )

    async def close(self) -> None:
        if self._connection is not None:
            await self.run(sqlite3.Connection.close)
            self._connection = None
        self._executor.shutdown(wait=False)


def _sqlite_connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def _locked(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


async def _switch_to_wal(connection: sqlite3.Connection, patience: float) -> None:
    """Switch to WAL. Changing the journal mode may answer "database is locked" at once, without waiting for the
    busy timeout, while another process opens the same new file; so wait here."""
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if not _locked(error) or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.02)


def _sqlite_statement(connection: sqlite3.Connection, sql: str, params: Params) -> Written:
    """The statement, its rows and its row count."""
    try:
        cursor = connection.execute(sql, [_sqlite_param(p) for p in params])
    except sqlite3.IntegrityError as error:
        raise _sqlite_conflict(error) from error
    try:
        names = [column[0] for column in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()] if names else []
        return Written(rows, cursor.rowcount)
    finally:
        cursor.close()


def _sqlite_end(connection: sqlite3.Connection, how: str) -> None:
    if connection.in_transaction:
        connection.execute(how)


class _SqliteCursor:
    """Statements of one transaction on one connection, run on the event loop's own thread (see
    :class:`SqliteDatabase`); as it is, the write transaction's cursor."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._rows: list[Row] = []

    async def execute(self, sql: str, params: Params = ()) -> int:
        written = _sqlite_statement(self._connection, sql, params)
        self._rows = written.rows
        return written.rowcount

    async def execute_all(self, statements: Sequence[tuple[str, Params]]) -> None:
        for sql, params in statements:
            await self.execute(sql, params)

    async def fetchone(self) -> Row | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows


class _SqliteReadCursor(_SqliteCursor):
    """Statements of one read transaction on a reader connection; the ``BEGIN`` comes with the first statement."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        if not self._connection.in_transaction:
            self._connection.execute("BEGIN")
        return await super().execute(sql, params)


class SqliteDatabase:
    """SQLite in WAL mode: one write connection and a few read connections, all used on the event loop's thread.

    A statement on an indexed table takes microseconds; a hop to a thread costs more than that under load (two
    wake-ups and a fight for the GIL), so statements run on the loop, and nothing in SQLite may wait there: the
    writer has ``busy_timeout`` 0 and ``BEGIN IMMEDIATE`` meeting a writer of another process is retried with
    ``asyncio.sleep`` for up to ``busy_timeout_ms``; WAL readers never wait for locks. Checkpoints, the only slow
    part of writing (they copy the WAL into the database and sync), run in a thread of their own.

    Write transactions are serialised by an asyncio lock; single-statement writes (:meth:`write`) are
    group-committed. Reads use the read connections and never wait for the writer's lock: WAL gives each read
    transaction a consistent snapshot. ``:memory:`` has no read connections (a private in-memory database exists
    only on its one connection), so reads go through the writer there.
    """

    dialect = SQLITE

    def __init__(
        self,
        writer: sqlite3.Connection,
        readers: Sequence[sqlite3.Connection],
        checkpointer: _SqliteThread | None,
        busy_timeout_ms: int,
    ) -> None:
        self._writer = writer
        self._patience_s = busy_timeout_ms / 1000
        self._readers: asyncio.Queue[sqlite3.Connection] = asyncio.Queue()
        self._all_readers = list(readers)
        for reader in readers:
            self._readers.put_nowait(reader)
        self._lock = asyncio.Lock()
        self._group = GroupCommit(self._commit_group)
        self._commits_since_checkpoint = 0
        self._checkpoint_thread = checkpointer
        self._checkpointer: asyncio.Task[None] | None = None
        if checkpointer is not None:
            self._checkpointer = asyncio.create_task(self._checkpoint_forever(checkpointer), name="sqlite-checkpoint")

    @classmethod
    async def open(cls, path: str, busy_timeout_ms: int = 10_000, readers: int = SQLITE_READERS) -> SqliteDatabase:
        in_memory = path == ":memory:"
        if not in_memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = _sqlite_connect(path, busy_timeout_ms)
        await _switch_to_wal(writer, busy_timeout_ms / 1000)
        # NORMAL: a commit survives a crash of the process (what "durable before 202" guards against here); a power
        # cut may lose the last commits, which the periodic delta catch-up repairs. FULL costs an fsync per commit.
        writer.execute("PRAGMA synchronous=NORMAL")
        writer.execute("PRAGMA busy_timeout=0")
        if in_memory:
            return cls(writer, [], None, busy_timeout_ms)
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        read_connections = []
        for _ in range(readers):
            reader = _sqlite_connect(path, busy_timeout_ms)
            reader.execute("PRAGMA query_only=ON")
            read_connections.append(reader)
        checkpointer = _SqliteThread("sqlite-checkpoint")
        await checkpointer.open(path, busy_timeout_ms)
        return cls(writer, read_connections, checkpointer, busy_timeout_ms)

    async def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting without blocking the loop while another process holds the write lock."""
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + self._patience_s, 0.001
        while True:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not _locked(error) or loop.time() > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _commit(self) -> None:
        try:
            _sqlite_end(self._writer, "COMMIT")
        except BaseException:
            _sqlite_end(self._writer, "ROLLBACK")
            raise
        self._commits_since_checkpoint += 1

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Cursor]:
        async with self._lock:
            await self._begin()
            try:
                yield _SqliteCursor(self._writer)
            except BaseException:
                _sqlite_end(self._writer, "ROLLBACK")
                raise
            self._commit()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Cursor]:
        if not self._all_readers:
            async with self.transaction() as cursor:
                yield cursor
            return
        reader = await self._readers.get()
        try:
            yield _SqliteReadCursor(reader)
        finally:
            try:
                _sqlite_end(reader, "ROLLBACK")
            finally:
                self._readers.put_nowait(reader)

    async def write(self, sql: str, params: Params = ()) -> Written:
        return await self._group.write(sql, params)

    async def _commit_group(self, writes: Sequence[PendingWrite]) -> list[Written | Exception]:
        """Every write in one transaction. A write that fails (a constraint) fails alone: SQLite undoes just that
        statement, the others commit."""
        async with self._lock:
            await self._begin()
            outcomes: list[Written | Exception] = []
            try:
                for write in writes:
                    try:
                        outcomes.append(_sqlite_statement(self._writer, write.sql, write.params))
                    except IntegrityConflict as conflict:
                        outcomes.append(conflict)
            except BaseException:
                _sqlite_end(self._writer, "ROLLBACK")
                raise
            self._commit()
            return outcomes

    async def _checkpoint_forever(self, thread: _SqliteThread) -> None:
        """Copy the WAL into the database file off the loop, twice a second while there are writes.

        The WAL only starts over (instead of growing) when a write begins after a checkpoint copied every frame; with
        writes going on all the time a checkpoint beside them never catches up. So the bulk is copied beside the
        writes, and then the few frames written meanwhile while writes wait (a short pause, not a blocked loop).
        """
        passive = "PRAGMA wal_checkpoint(PASSIVE)"
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL_S)
            if self._commits_since_checkpoint == 0:
                continue
            self._commits_since_checkpoint = 0
            try:
                await thread.run(lambda connection: connection.execute(passive).fetchall())
                async with self._lock:
                    await thread.run(lambda connection: connection.execute(passive).fetchall())
            except sqlite3.Error as error:
                log.warning("SQLite checkpoint failed: %s", error)

    async def lock_for_migrations(self, cursor: Cursor) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's single write lock."""

    async def close(self) -> None:
        await self._group.close()
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        if self._checkpoint_thread is not None:
            await self._checkpoint_thread.close()
        for reader in self._all_readers:
            reader.close()
        self._writer.close()
