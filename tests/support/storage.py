"""Storage fixtures: one ``database``/``store`` per backend (SQLite file, fresh PostgreSQL schema per test).

PostgreSQL tests skip when the server is unreachable, or FAIL when ``REQUIRE_POSTGRES=1`` (CI). The server is taken
from ``TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).

Run as a module (``python -m tests.support.storage …``) this file is also the separate worker process some tests
start: ``claim`` races for a case, ``lease-and-hang`` leases a job and waits to be killed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.effects import no_effects
from bot.domain.cases import Actor
from bot.domain.events import CallEvent, EventKind, MailSource, Voicemail
from bot.domain.state_machine import Verb
from bot.storage.database import Cursor, Database, Params, Row, Written
from bot.storage.factory import open_database, open_store
from bot.storage.sql_store import SqlStore
from sandbox.schemas import fresh_postgres_schema as sandbox_schema
from sandbox.schemas import postgres_problem

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
CLAIM_TIMEOUT = timedelta(minutes=30)
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ALICE = Actor("aad-alice", "Alice")
BOB = Actor("aad-bob", "Bob")
CAROL = Actor("aad-carol", "Carol")


def make_event(
    message_id: str,
    caller: str | None = "+4930123456",
    *,
    line_id: str = "line-1",
    mailbox: str | None = None,
    at: datetime = T0,
    minutes: float = 0,
    kind: EventKind = EventKind.MISSED_CALL,
    caller_name: str | None = None,
    voicemail: Voicemail | None = None,
    subject: str | None = None,
    sender: str = "noreply@placetel.de",
    web_link: str | None = None,
) -> CallEvent:
    """A call event from the mail ``message_id`` in ``mailbox`` (the line's by default), ``minutes`` after ``at``.

    The one event factory of the tests (the card tests' :func:`tests.support.cards.card_event` presets it).
    """
    mailbox = mailbox or f"{line_id}@example.com"
    return CallEvent(
        source_id=CallEvent.source_id_for(mailbox, message_id),
        kind=kind,
        line_id=line_id,
        caller=caller,
        received_at=at + timedelta(minutes=minutes),
        mail=MailSource(mailbox, message_id, web_link, f"Anruf {message_id}" if subject is None else subject, sender),
        caller_name=caller_name,
        voicemail=voicemail,
    )


_postgres_problem = functools.cache(postgres_problem)


def postgres_url() -> str:
    """The test server's URL; skips the test when it is unreachable (fails instead with ``REQUIRE_POSTGRES=1``)."""
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    problem = _postgres_problem(url)
    if problem is not None:
        message = f"PostgreSQL at {url} is not reachable: {problem}"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but {message}", pytrace=False)
        pytest.skip(message)
    return url


def fresh_postgres_schema() -> AbstractAsyncContextManager[str]:
    """A URL whose connections work in a new, empty schema of the test server; dropped afterwards."""
    return sandbox_schema(postgres_url())


def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql://")


class _RecordingCursor:
    """A transaction's cursor that records what it sends: one entry per ``execute`` or ``execute_all``."""

    def __init__(self, inner: Cursor, sent: list[str]) -> None:
        self._inner = inner
        self._sent = sent

    async def execute(self, sql: str, params: Params = ()) -> int:
        self._sent.append(sql)
        return await self._inner.execute(sql, params)

    async def execute_all(self, statements: Sequence[tuple[str, Params]]) -> None:
        self._sent.append(";\n".join(sql for sql, _ in statements))
        await self._inner.execute_all(statements)

    async def fetchone(self) -> Row | None:
        return await self._inner.fetchone()

    async def fetchall(self) -> list[Row]:
        return await self._inner.fetchall()


class CountingDatabase:
    """The real database, counting write transactions and what they send, and keeping the group-committed writes
    (SQL, parameters)."""

    def __init__(self, inner: Database) -> None:
        self._inner = inner
        self.dialect = inner.dialect
        self.transactions = 0
        self.sent_in_transactions: list[str] = []
        """One entry per statement or batch of statements a transaction sent (a round trip on PostgreSQL)."""
        self.written: list[tuple[str, Params]] = []

    @property
    def writes(self) -> int:
        return len(self.written)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Cursor]:
        self.transactions += 1
        async with self._inner.transaction() as cursor:
            yield _RecordingCursor(cursor, self.sent_in_transactions)

    def read(self) -> AbstractAsyncContextManager[Cursor]:
        return self._inner.read()

    async def write(self, sql: str, params: Params = ()) -> Written:
        self.written.append((sql, params))
        return await self._inner.write(sql, params)

    async def lock_for_migrations(self, cursor: Cursor) -> None:
        await self._inner.lock_for_migrations(cursor)

    async def close(self) -> None:
        await self._inner.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database for one test: a SQLite file in WAL mode, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    async with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The migrated database; tests may wrap it in their own :class:`SqlStore` (fake clock, fixed jitter)."""
    opened = await open_database(database_url)
    await SqlStore(opened).migrate()
    yield opened
    await opened.close()


@pytest.fixture
def store(database: Database) -> SqlStore:
    return SqlStore(database)


def start_storage_worker(*args: str) -> subprocess.Popen[str]:
    """Run this module's ``main`` in a separate OS process."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.storage", *args],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _claim_many(database_url: str, case_id: str, attempts: int, actor_prefix: str) -> None:
    store = await open_store(database_url)
    try:
        now = datetime.now(UTC)
        outcomes = await asyncio.gather(*(
            store.cases.transition(
                case_id, Verb.CLAIM, Actor(f"{actor_prefix}-{n}", f"User {n}"), now, CLAIM_TIMEOUT, effects=no_effects
            )
            for n in range(attempts)
        ))
    finally:
        await store.close()
    result = {
        "winners": [o.case.claimed_by.id for o in outcomes if o.applied and o.case.claimed_by],
        "refusal_holders": [o.refusal.holder.id for o in outcomes if o.refusal and o.refusal.holder],
    }
    print(json.dumps(result), flush=True)


async def _lease_and_hang(database_url: str, kind: str, lease_seconds: float) -> None:
    store = await open_store(database_url)
    jobs = await store.jobs.lease("doomed-worker", [kind], timedelta(seconds=lease_seconds))
    print(json.dumps([{"id": job.id, "attempts": job.attempts} for job in jobs]), flush=True)
    await asyncio.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    claim = commands.add_parser("claim")
    claim.add_argument("database_url")
    claim.add_argument("case_id")
    claim.add_argument("attempts", type=int)
    claim.add_argument("actor_prefix")
    hang = commands.add_parser("lease-and-hang")
    hang.add_argument("database_url")
    hang.add_argument("kind")
    hang.add_argument("lease_seconds", type=float)
    arguments = parser.parse_args()
    if arguments.command == "claim":
        asyncio.run(_claim_many(arguments.database_url, arguments.case_id, arguments.attempts, arguments.actor_prefix))
    else:
        asyncio.run(_lease_and_hang(arguments.database_url, arguments.kind, arguments.lease_seconds))


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Started worker processes, killed at the end of the test if still running."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


if __name__ == "__main__":
    main()
