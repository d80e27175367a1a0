"""The bot as its own process (``python -m bot``, exactly as deployed) against stand-ins in the benchmark process.

The stand-ins are the project's own: identity (https, Graph tokens through azure-identity), Graph (mail,
subscriptions, delta; ``latency_s`` per answer) and the Bot Connector (swagger-checked, Teams' per-thread rate limits
with 429s; ``latency_s`` per answer). The bot runs in SANDBOX_MODE without an app id, so inbound activities carry
no JWT and outbound calls no token: the benchmark measures the bot, not the stand-ins' token minting.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bot.config import PoolLine
from bot.core.ports import ChannelLink
from bot.storage.factory import open_store
from sandbox.connector import ConnectorStandIn
from sandbox.graph import GraphStandIn
from sandbox.graph_model import Message
from sandbox.identity import GRAPH_AUDIENCE, IdentityServer, IdentityStandIn, RegisteredApp
from sandbox.tls import ensure_tls

REPOSITORY = Path(__file__).resolve().parent.parent
TENANT = "7e4a1f00-0000-4000-8000-00000000b001"
TEAM_ID = "19:bench-team@thread.tacv2"
TEAM_GROUP_ID = "7e4a1f00-0000-4000-8000-00000000b003"
"""The team's Microsoft 365 group: with consent there, the bot looks a card in doubt up in its channel."""
LINES = tuple(
    PoolLine(id=f"linie-{n}", mailbox=f"linie{n}@praxis.example", numbers=[f"+49 30 123450{n}"],
             display_name=f"Linie {n}")
    for n in range(3)
)
CHANNELS = {line.id: f"19:bench-channel-{n}@thread.tacv2" for n, line in enumerate(LINES)}
START_TIMEOUT_S = 60.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missed_call_mail(line: PoolLine, caller: str) -> tuple[str, str]:
    """Subject and body of a Placetel missed-call mail (the built-in profile's wording)."""
    number = line.numbers[0]
    return (f"Verpasster Anruf von '{caller}' auf '{number}'",
            f"Sie haben einen Anruf verpasst.\nVon: {caller}\nAn: {number}\n")


@dataclass
class StandIns:
    identity: IdentityServer
    graph: GraphStandIn
    connector: ConnectorStandIn
    graph_app: RegisteredApp
    trust_bundle: Path

    @classmethod
    async def start(cls, folder: Path, graph_latency_s: float, teams_latency_s: float) -> StandIns:
        graph_app = RegisteredApp(
            "7e4a1f00-0000-4000-8000-0000000000b2", secrets.token_urlsafe(24), TENANT, ("Mail.ReadWrite",)
        )
        tls = ensure_tls(folder / "tls")
        identity = IdentityServer(IdentityStandIn([graph_app]), tls).start()
        graph = GraphStandIn(token_validator=identity.stand_in.token_validator(GRAPH_AUDIENCE), tenant_id=TENANT,
                             latency_s=graph_latency_s, notification_timeout_s=10.0)
        for line in LINES:
            graph.add_mailbox(line.mailbox, line.display_name)
        await graph.start()
        connector = ConnectorStandIn(None, latency_s=teams_latency_s)
        await connector.start()
        graph.add_team(TEAM_GROUP_ID, connector.channel_messages)
        return cls(identity, graph, connector, graph_app, tls.trust_bundle)

    async def stop(self) -> None:
        await self.connector.stop()
        await self.graph.stop()
        self.identity.stop()

    def deliver(self, line: PoolLine, caller: str, *, notify: bool = True) -> Message:
        """A missed-call mail arrives; ``notify=False`` leaves it for the catch-up (the bot was down)."""
        subject, body = missed_call_mail(line, caller)
        if notify:
            return self.graph.deliver_mail(line.mailbox, subject, "no-reply@placetel.de", body)
        box = self.graph.mailbox(line.mailbox)
        return box.add(Message(subject=subject, sender_name="Placetel", sender_address="no-reply@placetel.de",
                               body=body, body_type="text", received=datetime.now(UTC),
                               recipient_address=box.address, folder_id=box.inbox_id))

    def cards_posted(self) -> int:
        """Card threads created in the linked channels."""
        return sum(1 for record in self.connector.requests if record.path == "/v3/conversations"
                   and record.method == "POST" and record.status < 300)

    def card_threads(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(thread conversation id, root activity as last updated) of every card thread."""
        for conversation_id, records in self.connector.conversations.items():
            if ";messageid=" in conversation_id and records:
                yield conversation_id, records[0].current


@dataclass
class BotProcess:
    """``python -m bot`` configured by environment variables, in a temporary working folder."""

    environment: dict[str, str]
    folder: Path
    port: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    ready_after_s: float = 0.0
    log_path: Path = field(init=False)
    command: tuple[str, ...] = ("-m", "bot")

    def __post_init__(self) -> None:
        self.log_path = self.folder / "bot.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def configure(cls, stand_ins: StandIns, folder: Path, database_url: str, **extra: str) -> BotProcess:
        port = free_port()
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(REPOSITORY),
            "HOME": str(folder),
            "SANDBOX_MODE": "true",
            "MicrosoftAppId": "",
            "GRAPH_TENANT_ID": TENANT,
            "GRAPH_CLIENT_ID": stand_ins.graph_app.client_id,
            "GRAPH_CLIENT_SECRET": stand_ins.graph_app.client_secret,
            "GRAPH_BASE_URL": stand_ins.graph.base_url + "/v1.0",
            "GRAPH_AUTHORITY_HOST": stand_ins.identity.base_url,
            "GRAPH_CA_BUNDLE": str(stand_ins.trust_bundle),
            "GRAPH_CLIENT_STATE": BENCH_CLIENT_STATE,
            "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "PORT": str(port),
            "POOL_LINES": json.dumps([line.model_dump() for line in LINES]),
            "TEAMS_SERVICE_URLS": stand_ins.connector.service_url + "*",  # the connector stand-in on loopback
            "ALLOWED_TENANT_IDS": TENANT,
            "LOG_LEVEL": "INFO",
            **extra,
        }
        return cls(environment, folder, port)

    async def start(self, http: aiohttp.ClientSession) -> float:
        """Start the process and wait for ``/healthz``; returns seconds from exec to the first 200."""
        log = self.log_path.open("ab")
        self.started_at = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, *self.command, cwd=self.folder, env=self.environment, stdout=log, stderr=log
        )
        log.close()
        deadline = self.started_at + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"the bot exited with {self.process.returncode}; see {self.log_path}")
            try:
                async with http.get(self.url + "/healthz") as response:
                    if response.status == 200:
                        self.ready_after_s = time.perf_counter() - self.started_at
                        return self.ready_after_s
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)
        raise RuntimeError(f"the bot did not answer /healthz within {START_TIMEOUT_S} s; see {self.log_path}")

    def rss_mb(self) -> float:
        """Resident set size of the bot process now."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


BENCH_CLIENT_STATE = "bench-client-state-0123456789abcdef"


async def link_channels(database_url: str, service_url: str) -> None:
    """Link every line to its channel directly in the store (the admin's ``verbinden`` is not what is measured)."""
    store = await open_store(database_url)
    try:
        for line in LINES:
            await store.links.link_channel(
                ChannelLink(line.id, TENANT, TEAM_ID, CHANNELS[line.id], service_url, "bench", datetime.now(UTC),
                            group_id=TEAM_GROUP_ID)
            )
    finally:
        await store.close()


async def wait_until(condition: Any, timeout_s: float, poll_s: float = 0.01) -> bool:
    """Poll ``condition()`` (sync or async) until true; False on timeout."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        await asyncio.sleep(poll_s)
    return False
