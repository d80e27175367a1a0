"""The whole bot on its production code path against the stand-ins: Graph, Bot Connector and identity.

``bot_stack`` starts a Graph stand-in with one pool mailbox, a connector stand-in that validates every request
against the swagger and requires real tokens, and the bot itself (``bot.app.create_app``) on a free port with real
JWT validation. Helpers drive it the way Teams and Outlook would.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import SERVICES, Services, create_app
from bot.config import Settings
from bot.core.ports import JobState
from bot.tasks import running_tasks
from sandbox.connector import ConnectorStandIn
from sandbox.graph import GraphStandIn
from sandbox.identity import BOT_FRAMEWORK_AUDIENCE, GRAPH_AUDIENCE, IdentityServer
from sandbox.tls import TlsMaterial
from tests.support.teams_standins import BOT_APP, GRAPH_APP, TENANT

POOL_MAILBOX = "zentrale@praxis.example"
POOL_NUMBER = "+49301234500"
TEAM_ID = "19:team-praxis@thread.tacv2"
TEAM_GROUP_ID = "5c0ffee0-0000-4000-8000-00000000a001"
"""The team's Microsoft 365 group (``aadGroupId``), where the Graph stand-in lists the channel's messages."""
CHANNEL_ID = "19:channel-rueckrufe@thread.tacv2"
OTHER_CHANNEL_ID = "19:channel-allgemein@thread.tacv2"
ADMIN = {"id": "29:admin", "aadObjectId": "aad-admin", "name": "Ada Admin"}
CLIENT_STATE = "client-state-secret-0123456789"
STAND_IN_SERVICE_URLS = ["http://127.0.0.1:*/*", "https://127.0.0.1:*/*"]
TEARDOWN_GUARD_S = 150
"""A stack that has not stopped by then is stuck: fail with what still runs rather than wait for the test timeout."""
"""The connector stand-in's service URL (a free port on loopback) in TEAMS_SERVICE_URLS' pattern syntax."""


def user(n: int) -> dict[str, str]:
    names = ["Anna Schmidt", "Ben Weber", "Cem Yilmaz", "Dora Klein"]
    return {
        "id": f"29:user-{n}",
        "aadObjectId": f"aad-user-{n}",
        "name": names[n % len(names)] + ("" if n < 4 else f" {n}"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DRAIN_LIMIT_SECONDS = 60


@dataclass
class BotStack:
    identity: IdentityServer
    graph: GraphStandIn
    connector: ConnectorStandIn
    settings: Settings
    runner: web.AppRunner
    app: web.Application
    http: aiohttp.ClientSession
    bot_url: str
    tmp: Path
    _activity_counter: int = field(default=0)

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    # Teams side -------------------------------------------------------------------------------------------

    def _activity(self, kind: str, sender: dict[str, str], conversation_id: str, **extra: Any) -> dict[str, Any]:
        self._activity_counter += 1
        channel_id = conversation_id.split(";", 1)[0]
        in_channel = conversation_id.startswith("19:")
        activity: dict[str, Any] = {
            "type": kind,
            "id": f"activity-{self._activity_counter}",
            "channelId": "msteams",
            "serviceUrl": self.connector.service_url,
            "from": sender,
            "recipient": {"id": f"28:{BOT_APP.client_id}", "name": "Rufpool"},
            "conversation": {
                "id": conversation_id,
                "tenantId": TENANT,
                "conversationType": "channel" if in_channel else "personal",
                "isGroup": in_channel,
            },
            "channelData": {"tenant": {"id": TENANT}},
            "locale": "de-DE",
        }
        if in_channel:
            team = {"id": TEAM_ID, "aadGroupId": TEAM_GROUP_ID}
            activity["channelData"].update({"team": team, "channel": {"id": channel_id}})
        activity.update(extra)
        return activity

    async def post_activity(self, activity: dict[str, Any], token: str | None = None) -> aiohttp.ClientResponse:
        token = token or self.identity.stand_in.channel_token(BOT_APP.client_id, self.connector.service_url)
        response = await self.http.post(
            f"{self.bot_url}/api/messages", json=activity, headers={"Authorization": f"Bearer {token}"}
        )
        await response.read()
        return response

    async def install(self) -> None:
        activity = self._activity(
            "conversationUpdate",
            ADMIN,
            CHANNEL_ID,
            membersAdded=[{"id": f"28:{BOT_APP.client_id}"}],
            channelData={"tenant": {"id": TENANT}, "team": {"id": TEAM_ID}, "eventType": "teamMemberAdded"},
        )
        response = await self.post_activity(activity)
        assert response.status < 300, response.status

    async def message(self, text: str, sender: dict[str, str] = ADMIN, conversation_id: str = CHANNEL_ID) -> int:
        mention = {"type": "mention", "text": "<at>Rufpool</at>", "mentioned": {"id": f"28:{BOT_APP.client_id}"}}
        in_channel = conversation_id.startswith("19:")
        activity = self._activity(
            "message",
            sender,
            conversation_id,
            text=f"<at>Rufpool</at> {text}" if in_channel else text,
            entities=[mention] if in_channel else [],
        )
        response = await self.post_activity(activity)
        return response.status

    async def link(self) -> None:
        await self.install()
        assert await self.message("verbinden zentrale") < 300

    async def click(
        self, verb: str, data: dict[str, Any], sender: dict[str, str], conversation_id: str, reply_to: str
    ) -> dict[str, Any]:
        activity = self._activity(
            "invoke",
            sender,
            conversation_id,
            name="adaptiveCard/action",
            replyToId=reply_to,
            value={"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"},
        )
        response = await self.http.post(
            f"{self.bot_url}/api/messages",
            json=activity,
            headers={
                "Authorization": "Bearer "
                + self.identity.stand_in.channel_token(BOT_APP.client_id, self.connector.service_url)
            },
        )
        assert response.status == 200, await response.text()
        return dict(await response.json())

    # Outlook side -----------------------------------------------------------------------------------------

    def deliver_missed_call(self, caller: str, *, subject: str | None = None, body: str | None = None) -> str:
        message = self.graph.deliver_mail(
            POOL_MAILBOX,
            subject or f"Verpasster Anruf von '{caller}' auf '030 1234500'",
            "no-reply@placetel.de",
            body or f"Sie haben einen Anruf verpasst.\nVon: {caller}\nAn: 030 1234500\n",
        )
        return message.id

    # Waiting ----------------------------------------------------------------------------------------------

    async def settle(self, rounds: int = 3) -> None:
        """Wait until notifications are delivered and the outbox is empty, several times over."""
        async with asyncio.timeout(60):
            for _ in range(rounds):
                await self.graph.idle()
                await self.services.runner.run_until_idle()
                await asyncio.sleep(0.05)

    async def drain(self) -> None:
        """Settle until the outbox holds no pending or leased job (retries scheduled for later included) and Graph
        has delivered every notification those jobs caused."""
        async with asyncio.timeout(DRAIN_LIMIT_SECONDS):
            while True:
                await self.settle(rounds=1)
                depth = await self.services.store.jobs.depth()
                if depth[JobState.PENDING] == 0 and depth[JobState.LEASED] == 0:
                    await self.graph.idle()
                    depth = await self.services.store.jobs.depth()
                    if depth[JobState.PENDING] == 0 and depth[JobState.LEASED] == 0:
                        return
                await asyncio.sleep(0.02)

    # Reading what Teams shows -----------------------------------------------------------------------------

    def channel_cards(self, channel_id: str = CHANNEL_ID) -> list[Any]:
        """Root card activities posted as new threads in the channel."""
        return [
            record
            for conversation_id, records in self.connector.conversations.items()
            if conversation_id.startswith(channel_id + ";messageid=")
            for record in records
            if record.operation == "create"
        ]


def stack_settings(
    identity: IdentityServer, tls: TlsMaterial, graph: GraphStandIn, tmp: Path, port: int, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "app_id": BOT_APP.client_id,
        "app_password": BOT_APP.client_secret,
        "app_tenant_id": TENANT,
        "to_channel_from_bot_login_url": identity.authority(TENANT),
        "to_bot_from_channel_openid_metadata_url": identity.channel_openid_metadata_url,
        "to_bot_from_emulator_openid_metadata_url": identity.emulator_openid_metadata_url,
        "validate_authority": False,
        "bot_ca_bundle": tls.trust_bundle,
        "graph_tenant_id": TENANT,
        "graph_client_id": GRAPH_APP.client_id,
        "graph_client_secret": GRAPH_APP.client_secret,
        "graph_base_url": graph.base_url + "/v1.0",
        "graph_authority_host": identity.base_url,
        "graph_ca_bundle": tls.trust_bundle,
        "graph_client_state": CLIENT_STATE,
        "database_url": f"sqlite:///{tmp / 'rufpool.sqlite3'}",
        "public_base_url": f"http://127.0.0.1:{port}",
        "port": port,
        "pool_lines": [
            {"id": "zentrale", "mailbox": POOL_MAILBOX, "numbers": [POOL_NUMBER], "display_name": "Zentrale"}
        ],
        "link_admins": ["aad-admin"],
        "teams_service_urls": STAND_IN_SERVICE_URLS,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def start_bot(settings: Settings) -> tuple[web.AppRunner, web.Application]:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    return runner, app


@pytest.fixture
def bot_settings_overrides() -> dict[str, Any]:
    """Settings the bot of :func:`bot_stack` runs with besides :func:`stack_settings`; a test module overrides it."""
    return {}


@pytest.fixture
async def bot_stack(
    identity_server: IdentityServer,
    sandbox_tls: TlsMaterial,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    connector: ConnectorStandIn,
    bot_settings_overrides: dict[str, Any],
) -> AsyncIterator[BotStack]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox_tls.trust_bundle))
    graph = GraphStandIn(
        token_validator=identity_server.stand_in.token_validator(GRAPH_AUDIENCE), mailboxes=[POOL_MAILBOX]
    )
    graph.add_team(TEAM_GROUP_ID, connector.channel_messages)
    await graph.start()
    port = free_port()
    settings = stack_settings(identity_server, sandbox_tls, graph, tmp_path, port, **bot_settings_overrides)
    runner, app = await start_bot(settings)
    http = aiohttp.ClientSession()
    stack = BotStack(
        identity_server, graph, connector, settings, runner, app, http, f"http://127.0.0.1:{port}", tmp_path
    )
    try:
        async with asyncio.timeout(30):
            while not graph.subscriptions():
                await asyncio.sleep(0.05)
        await stack.settle()
        yield stack
    finally:
        try:
            async with asyncio.timeout(TEARDOWN_GUARD_S):
                await http.close()
                await runner.cleanup()
                await graph.stop()
        except TimeoutError:
            raise AssertionError(f"the bot stack did not stop; still running:\n{running_tasks()}") from None


__all__ = ["BOT_FRAMEWORK_AUDIENCE", "BotStack", "bot_settings_overrides", "bot_stack", "user"]
