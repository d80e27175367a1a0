"""``MicrosoftAppType=UserAssignedMSI``: the bot's outbound tokens come from the host's managed identity endpoint.

Azure Container Apps (and App Service) expose the endpoint as ``IDENTITY_ENDPOINT`` with the secret header value in
``IDENTITY_HEADER``; MSAL's managed identity client finds them there. A local endpoint stands in for Azure's.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from botframework.connector.auth import AuthenticationConstants

from bot.config import load_serving_settings
from bot.teams.adapter import auth_settings
from bot.teams.auth import BotAuthSettings, MsalCredentialFactory

IDENTITY_CLIENT_ID = "5a1b2c3d-0000-4000-8000-00000000f001"
TENANT = "5a1b2c3d-0000-4000-8000-00000000f002"
HEADER_SECRET = "identity-header-secret"


class ManagedIdentityEndpoint(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        query = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
        type(self).requests.append({"query": query, "header": self.headers.get("X-IDENTITY-HEADER")})
        if self.headers.get("X-IDENTITY-HEADER") != HEADER_SECRET:
            self.send_response(401)
            self.end_headers()
            return
        body = {
            "access_token": f"msi-token-for-{query.get('client_id')}",
            "expires_on": str(int(time.time()) + 3600),
            "resource": query.get("resource"),
            "token_type": "Bearer",
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def identity_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    ManagedIdentityEndpoint.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ManagedIdentityEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", HEADER_SECRET)
    yield ManagedIdentityEndpoint.requests
    server.shutdown()
    server.server_close()


async def test_a_managed_identity_bot_gets_its_token_from_the_identity_endpoint(
    identity_endpoint: list[dict[str, Any]],
) -> None:
    settings = BotAuthSettings(IDENTITY_CLIENT_ID, "", TENANT, app_type="UserAssignedMSI")
    scope = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE

    credentials = await MsalCredentialFactory(settings).create_credentials(
        IDENTITY_CLIENT_ID, scope, settings.authority, True
    )
    token = await asyncio.to_thread(credentials.get_access_token)

    assert token == f"msi-token-for-{IDENTITY_CLIENT_ID}"
    [request] = identity_endpoint
    assert request["query"]["client_id"] == IDENTITY_CLIENT_ID
    assert request["query"]["resource"].rstrip("/") == scope
    assert request["header"] == HEADER_SECRET


def test_the_settings_reach_the_adapter_with_their_app_type(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_serving_settings(
        app_id=IDENTITY_CLIENT_ID,
        app_type="UserAssignedMSI",
        app_tenant_id=TENANT,
        graph_tenant_id=TENANT,
        graph_client_id=IDENTITY_CLIENT_ID,
        graph_client_secret="graph-secret",
        graph_client_state="state",
        pool_lines=[{"id": "zentrale", "mailbox": "z@example.com", "numbers": ["+4930123456"], "display_name": "Z"}],
    )
    bot_auth = auth_settings(settings)
    assert bot_auth.uses_managed_identity and bot_auth.app_password == ""


def test_a_secret_bot_without_a_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="app_password"):
        BotAuthSettings(IDENTITY_CLIENT_ID, "", TENANT)
    with pytest.raises(ValueError, match="app_type"):
        BotAuthSettings(IDENTITY_CLIENT_ID, "secret", TENANT, app_type="MultiTenant")
