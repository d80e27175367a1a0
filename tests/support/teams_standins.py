"""Fixtures for the identity and Bot Connector stand-ins (import the ones a test module uses)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.config import is_allowed_service_url
from bot.teams.auth import InboundPolicy
from sandbox.connector import ConnectorStandIn
from sandbox.identity import (
    BOT_FRAMEWORK_AUDIENCE,
    IdentityServer,
    IdentityStandIn,
    RegisteredApp,
)
from sandbox.tls import TlsMaterial, ensure_tls

TENANT = "4f1b2c3d-0000-4000-8000-00000000a001"
BOT_APP = RegisteredApp("0b0b0b0b-1111-4111-8111-00000000b0b0", "bot-secret-value", TENANT)
GRAPH_APP = RegisteredApp(
    "0c0c0c0c-2222-4222-8222-00000000c0c0", "graph-secret-value", TENANT, ("Mail.ReadWrite", "GroupMember.Read.All")
)
STAND_IN_POLICY = InboundPolicy(
    allowed_tenants=frozenset({TENANT}),
    is_service_url_allowed=lambda url: is_allowed_service_url(url, ["http://127.0.0.1:*/*", "https://127.0.0.1:*/*"]),
)
"""The inbound checks for bots behind the connector stand-in: the test tenant, service URLs on loopback."""


@pytest.fixture(scope="session")
def sandbox_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return ensure_tls(Path(tmp_path_factory.mktemp("sandbox-tls")))


@pytest.fixture(scope="session")
def identity_server(sandbox_tls: TlsMaterial) -> Iterator[IdentityServer]:
    """The identity stand-in on its own thread: botbuilder fetches its metadata with blocking ``requests``."""
    with IdentityServer(IdentityStandIn([BOT_APP, GRAPH_APP]), sandbox_tls) as server:
        yield server


@pytest.fixture
def trust_sandbox_ca(monkeypatch: pytest.MonkeyPatch, sandbox_tls: TlsMaterial) -> None:
    """botbuilder's inbound metadata fetch is a bare ``requests.get``: it trusts what REQUESTS_CA_BUNDLE says."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox_tls.trust_bundle))


@pytest.fixture
async def connector(identity_server: IdentityServer) -> AsyncIterator[ConnectorStandIn]:
    """A connector stand-in; a test fails at teardown if any request broke the swagger contract."""
    stand_in = ConnectorStandIn(identity_server.stand_in.token_validator(BOT_FRAMEWORK_AUDIENCE))
    await stand_in.start()
    yield stand_in
    await stand_in.stop()
    assert not stand_in.violations, f"requests violated the Bot Connector contract: {stand_in.violations}"


def bot_access_token(identity_server: IdentityServer) -> str:
    return identity_server.stand_in.issue_access_token(BOT_APP, BOT_FRAMEWORK_AUDIENCE)
