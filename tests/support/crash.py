"""A harness that fails or kills the bot at one named write boundary, restarts it and lets it recover.

``Cluster`` runs one or two bot apps (replicas) on one database against the Graph and connector stand-ins. Each app
is started inside its own value of :data:`INSTANCE`, so every task it spawns (job workers, request handlers) carries
it: a patched write boundary knows which app reached it.

A :class:`CrashPoint` wraps one method (a store write, a Teams or Graph call). Armed, its first call in an app
either raises :class:`InjectedFault` (a failure the normal retries see) or kills the app: the app's database refuses
every further statement by cancelling the caller, so nothing of the dying process is written after that point
(no lease release, no job failure record), and its listener is closed. ``Cluster.restart_the_dead`` then lets the
killed app's job leases run out (it sets their expiry to now, as waiting would) and starts a fresh app on the same
database and port, as a process restart would.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import SERVICES, Services
from bot.config import Settings
from bot.core.ports import JobState, Store
from bot.storage.database import Database, SqliteDatabase
from bot.storage.factory import open_store, sql_database
from bot.storage.postgres import PostgresDatabase
from sandbox.connector import ConnectorStandIn
from sandbox.graph import GraphStandIn
from sandbox.identity import GRAPH_AUDIENCE, IdentityServer
from sandbox.tls import TlsMaterial
from tests.support.bot_stack import POOL_MAILBOX, TEAM_GROUP_ID, BotStack, free_port, stack_settings, start_bot

INSTANCE: contextvars.ContextVar[int | None] = contextvars.ContextVar("crash_instance", default=None)
SETTLE_LIMIT_S = 60


class InjectedFault(RuntimeError):
    """The one failure a crash point injects."""


@dataclass(frozen=True)
class CrashPoint:
    """A write boundary: ``owner.method`` (a method of a class, or a function of a module); ``after``: the fault
    comes once the call has returned (the write is committed, or the remote side accepted it); ``when`` picks the
    calls that count (by their arguments, ``self`` first for a method)."""

    name: str
    owner: Any
    method: str
    after: bool
    step: str
    """The scenario step before which the point is armed (so its first call there is the one that fails)."""
    when: Callable[..., bool] = lambda *_args, **_kwargs: True


@dataclass
class Instance:
    number: int
    slot: int
    settings: Settings
    runner: web.AppRunner
    app: web.Application

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def database(self) -> Database:
        return sql_database(self.services.store)


@dataclass
class Injection:
    point: CrashPoint
    death: bool
    armed: bool = False
    fired_in: int | None = None


class _Refused:
    """The transaction or read of a killed app: cancels its caller before anything is executed."""

    async def __aenter__(self) -> None:
        raise asyncio.CancelledError

    async def __aexit__(self, *_exc: object) -> None:
        return None


@dataclass
class Cluster:
    """Bot apps on one database; ``slots`` are their ports (slot 0 receives Graph's notifications and clicks)."""

    settings: list[Settings]
    observer: Store
    """A connection of its own to the database, as an operator's: it outlives every app."""
    instances: dict[int, Instance] = field(default_factory=dict)
    """Live apps by slot."""
    killed: list[Instance] = field(default_factory=list)
    dead_databases: set[int] = field(default_factory=set)
    injection: Injection | None = None
    stack: BotStack = field(init=False)
    """Slot 0's app with the stand-ins, the HTTP session and the helpers that drive Teams and Outlook."""
    deaths: asyncio.Event = field(default_factory=asyncio.Event)
    _numbers: Iterator[int] = field(default_factory=lambda: iter(range(1, 1000)))

    @property
    def graph(self) -> GraphStandIn:
        return self.stack.graph

    @property
    def connector(self) -> ConnectorStandIn:
        return self.stack.connector

    @property
    def first(self) -> Instance:
        return self.instances[min(self.instances)]

    async def start(self, slot: int) -> Instance:
        number = next(self._numbers)
        token = INSTANCE.set(number)
        try:
            runner, app = await start_bot(self.settings[slot])
        finally:
            INSTANCE.reset(token)
        instance = Instance(number, slot, self.settings[slot], runner, app)
        self.instances[slot] = instance
        if slot == 0 and hasattr(self, "stack"):
            self.stack.runner, self.stack.app = runner, app
        return instance

    # Injection ----------------------------------------------------------------------------------------------

    def arm(self, step: str) -> None:
        if self.injection is not None and self.injection.point.step == step and self.injection.fired_in is None:
            self.injection.armed = True

    def reached(self, point: CrashPoint, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Called by the patched method at its boundary: fail or kill here if armed for this point."""
        injection, number = self.injection, INSTANCE.get()
        if injection is None or not injection.armed or injection.point is not point or number is None:
            return
        if not point.when(*args, **kwargs):
            return
        injection.armed, injection.fired_in = False, number
        if not injection.death:
            raise InjectedFault(f"injected failure at {point.name}")
        victim = next(instance for instance in self.instances.values() if instance.number == number)
        self.dead_databases.add(id(victim.database))
        self.deaths.set()
        raise asyncio.CancelledError

    def refused(self, database: Database) -> bool:
        return id(database) in self.dead_databases

    # Death and restart --------------------------------------------------------------------------------------

    async def restart_the_dead(self) -> None:
        """Close the killed apps' listeners, let their leases run out and start fresh apps in their slots."""
        if not self.deaths.is_set():
            return
        self.deaths.clear()
        for slot, instance in list(self.instances.items()):
            if not self.refused(instance.database):
                continue
            del self.instances[slot]
            self.killed.append(instance)
            for site in list(instance.runner.sites):
                await site.stop()
            await self.stack.http.close()  # its keep-alive connections may lead to the dead app
            self.stack.http = aiohttp.ClientSession()
            worker = instance.services.runner._worker_id  # the killed process's identity
            await self._leases_run_out(worker)
            await self.start(slot)

    async def _leases_run_out(self, worker: str) -> None:
        """What waiting out the killed process's leases would do: its jobs and card locks are free again."""
        past = datetime.now(UTC) - timedelta(seconds=1)
        async with sql_database(self.observer).transaction() as cursor:
            await cursor.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE state = 'leased' AND leased_by LIKE ?", (past, worker + "%")
            )
            await cursor.execute("UPDATE leases SET expires_at = ? WHERE name LIKE 'teams-card:%'", (past,))

    async def periodic_pass(self) -> None:
        """The next periodic pass (catch-up of every line and the repair sweep), a delta interval later: the lease
        of the pass taken by an earlier app has run out by then."""
        past = datetime.now(UTC) - timedelta(seconds=1)
        async with sql_database(self.observer).transaction() as cursor:
            await cursor.execute("UPDATE leases SET expires_at = ? WHERE name = 'periodic-catch-up'", (past,))
        await self.first.services.coordinator.periodic_catch_up()
        await self.settle()

    # Waiting ------------------------------------------------------------------------------------------------

    async def settle(self) -> None:
        """Until notifications are delivered and the outbox is empty (retries included) three polls in a row;
        restarts a killed app on the way."""
        quiet = 0
        async with asyncio.timeout(SETTLE_LIMIT_S):
            while quiet < 3:
                await self.restart_the_dead()
                await self.graph.idle()
                depth = await self.observer.jobs.depth()
                quiet = quiet + 1 if depth[JobState.PENDING] == depth[JobState.LEASED] == 0 else 0
                await asyncio.sleep(0.05)

    async def fresh_outbox(self) -> int:
        """Settle, then drop what an earlier test left behind (a reply waiting for a card that never came); the
        newest job id, from which on this test's dead letters count."""
        await self.settle()
        async with sql_database(self.observer).transaction() as cursor:
            await cursor.execute("UPDATE jobs SET state = 'done' WHERE state IN ('pending', 'leased')")
            await cursor.execute("SELECT MAX(id) AS newest FROM jobs")
            row = await cursor.fetchone()
        return int(row["newest"] or 0) if row else 0

    async def close(self) -> None:
        """Stop the live apps, then the killed ones (their databases work again for the shutdown)."""
        for instance in self.instances.values():
            await instance.runner.cleanup()
        self.dead_databases.clear()
        for instance in self.killed:
            with contextlib.suppress(Exception):
                await instance.runner.cleanup()


def guard_databases(monkeypatch: pytest.MonkeyPatch, cluster: Cluster) -> None:
    """Every statement of a killed app's database cancels its caller instead of running."""

    def guard_context(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def guarded(self: Database, *args: Any, **kwargs: Any) -> Any:
            return _Refused() if cluster.refused(self) else original(self, *args, **kwargs)

        return guarded

    def guard_write(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(original)
        async def guarded(self: Database, *args: Any, **kwargs: Any) -> Any:
            if cluster.refused(self):
                raise asyncio.CancelledError
            return await original(self, *args, **kwargs)

        return guarded

    for database in (SqliteDatabase, PostgresDatabase):
        monkeypatch.setattr(database, "transaction", guard_context(database.transaction))
        monkeypatch.setattr(database, "read", guard_context(database.read))
        monkeypatch.setattr(database, "write", guard_write(database.write))


def install(monkeypatch: pytest.MonkeyPatch, cluster: Cluster, point: CrashPoint) -> None:
    """Wrap the point's method so that reaching it asks the cluster whether to fail or die there."""
    original = getattr(point.owner, point.method)

    @functools.wraps(original)
    async def boundary(*args: Any, **kwargs: Any) -> Any:
        if not point.after:
            cluster.reached(point, args, kwargs)
        result = await original(*args, **kwargs)
        if point.after:
            cluster.reached(point, args, kwargs)
        return result

    monkeypatch.setattr(point.owner, point.method, boundary)


@contextlib.asynccontextmanager
async def running_cluster(
    identity: IdentityServer,
    tls: TlsMaterial,
    connector: ConnectorStandIn,
    tmp: Path,
    database_url: str,
    replicas: int,
) -> AsyncIterator[Cluster]:
    """``replicas`` apps on ``database_url`` against a fresh Graph stand-in with the pool mailbox, linked to the
    channel and quiet."""
    graph = GraphStandIn(token_validator=identity.stand_in.token_validator(GRAPH_AUDIENCE), mailboxes=[POOL_MAILBOX])
    graph.add_team(TEAM_GROUP_ID, connector.channel_messages)  # consent to look a card in doubt up in the channel
    await graph.start()
    settings = []
    for _ in range(replicas):
        port = free_port()
        settings.append(stack_settings(identity, tls, graph, tmp, port, database_url=database_url))
    observer = await open_store(database_url)
    cluster = Cluster(settings, observer)
    http = aiohttp.ClientSession()
    try:
        first = await cluster.start(0)
        url = f"http://127.0.0.1:{settings[0].port}"
        cluster.stack = BotStack(identity, graph, connector, settings[0], first.runner, first.app, http, url, tmp)
        for slot in range(1, replicas):
            await cluster.start(slot)
        async with asyncio.timeout(30):
            while not graph.subscriptions():
                await asyncio.sleep(0.05)
        await cluster.settle()
        await cluster.stack.link()
        await cluster.settle()
        yield cluster
    finally:
        await cluster.close()
        await cluster.stack.http.close()
        await observer.close()
        await graph.stop()
