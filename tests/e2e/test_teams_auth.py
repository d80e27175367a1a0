"""Inbound JWT validation (401, never 500) and outbound tokens through botbuilder's real connector client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter

from bot.teams.auth import BotAuthSettings, authenticated_messages_handler, build_bot_framework_authentication
from sandbox.connector import ConnectorStandIn
from sandbox.identity import BadChannelToken, IdentityServer, start_site
from sandbox.tls import TlsMaterial
from tests.support.teams_standins import BOT_APP, STAND_IN_POLICY, TENANT

THREAD = "19:4a1f2b3c4d5e6f@thread.tacv2;messageid=1700000000000"


class EchoBot(ActivityHandler):
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        await turn_context.send_activity(f"echo: {turn_context.activity.text}")


def _settings(identity: IdentityServer, tls: TlsMaterial) -> BotAuthSettings:
    return BotAuthSettings(
        app_id=BOT_APP.client_id, app_password=BOT_APP.client_secret, tenant_id=TENANT,
        login_url=identity.authority(TENANT),
        channel_openid_metadata_url=identity.channel_openid_metadata_url,
        emulator_openid_metadata_url=identity.emulator_openid_metadata_url,
        validate_authority=False, ca_bundle=str(tls.trust_bundle),
    )


async def _serve_bot(settings: BotAuthSettings) -> tuple[web.AppRunner, str]:
    auth = build_bot_framework_authentication(settings)
    app = web.Application()
    app.router.add_post("/api/messages", authenticated_messages_handler(
        CloudAdapter(auth), EchoBot(), auth, STAND_IN_POLICY, allow_unauthenticated=settings.allow_unauthenticated))
    runner, port = await start_site(app, None, "127.0.0.1", 0)
    return runner, f"http://127.0.0.1:{port}/api/messages"


@pytest.fixture
async def bot_url(
    identity_server: IdentityServer, sandbox_tls: TlsMaterial, trust_sandbox_ca: None
) -> AsyncIterator[str]:
    runner, url = await _serve_bot(_settings(identity_server, sandbox_tls))
    yield url
    await runner.cleanup()


def _activity(service_url: str) -> dict[str, Any]:
    return {
        "type": "message", "id": "1700000000123", "channelId": "msteams", "serviceUrl": service_url,
        "text": "hello", "from": {"id": "29:user-anna", "name": "Anna", "aadObjectId": "a-1"},
        "recipient": {"id": f"28:{BOT_APP.client_id}", "name": "Rufpool"},
        "conversation": {"id": THREAD, "conversationType": "channel", "isGroup": True, "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}, "channel": {"id": THREAD.split(";")[0]}},
    }


async def _post(url: str, body: dict[str, Any], authorization: str | None) -> tuple[int, str]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as response:
        return response.status, await response.text()


async def test_valid_token_reaches_the_bot_and_the_reply_reaches_the_connector(
    bot_url: str, connector: ConnectorStandIn, identity_server: IdentityServer
) -> None:
    token = identity_server.stand_in.channel_token(BOT_APP.client_id, connector.service_url)

    status, _ = await _post(bot_url, _activity(connector.service_url), f"Bearer {token}")

    assert status == 201  # CloudAdapter's answer for a non-invoke activity
    (reply,) = connector.activities(THREAD)
    assert (reply.operation, reply.reply_to_id, reply.current["text"]) == ("reply", "1700000000123", "echo: hello")
    assert reply.app_id == BOT_APP.client_id  # the connector saw a token the identity stand-in issued to the bot


@pytest.mark.parametrize("kind", list(BadChannelToken), ids=[k.value for k in BadChannelToken])
async def test_every_bad_token_is_401(
    bot_url: str, connector: ConnectorStandIn, identity_server: IdentityServer, kind: BadChannelToken
) -> None:
    token = identity_server.stand_in.bad_channel_token(kind, BOT_APP.client_id, connector.service_url)

    status, body = await _post(bot_url, _activity(connector.service_url), f"Bearer {token}")

    assert status == 401, body
    assert '"code": "Unauthorized"' in body
    assert connector.conversations == {}


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [(None, "missing Authorization header"), ("", "missing Authorization header"),
     ("Basic dXNlcjpwYXNz", "malformed Authorization header"), ("Bearer", "malformed Authorization header")],
    ids=["absent", "empty", "basic", "bearer-without-token"],
)
async def test_missing_or_malformed_header_is_401(
    bot_url: str, connector: ConnectorStandIn, authorization: str | None, reason: str
) -> None:
    status, body = await _post(bot_url, _activity(connector.service_url), authorization)

    assert (status, reason in body) == (401, True)
    assert connector.conversations == {}


async def test_reasons_name_the_failure(
    bot_url: str, connector: ConnectorStandIn, identity_server: IdentityServer
) -> None:
    reasons = {}
    for kind in (BadChannelToken.EXPIRED, BadChannelToken.NOT_YET_VALID, BadChannelToken.FORGED,
                 BadChannelToken.UNKNOWN_KEY_ID, BadChannelToken.WRONG_SERVICE_URL):
        token = identity_server.stand_in.bad_channel_token(kind, BOT_APP.client_id, connector.service_url)
        reasons[kind] = (await _post(bot_url, _activity(connector.service_url), f"Bearer {token}"))[1]

    assert "token expired" in reasons[BadChannelToken.EXPIRED]
    assert "token not yet valid" in reasons[BadChannelToken.NOT_YET_VALID]
    assert "invalid token signature" in reasons[BadChannelToken.FORGED]
    assert "unknown signing key" in reasons[BadChannelToken.UNKNOWN_KEY_ID]
    assert "serviceurl" in reasons[BadChannelToken.WRONG_SERVICE_URL]


async def test_auth_off_only_when_explicitly_configured() -> None:
    stand_in = ConnectorStandIn(None)  # a sandbox bot without credentials sends no token
    service_url = await stand_in.start()
    settings = BotAuthSettings(app_id="", app_password="", tenant_id="", allow_unauthenticated=True)
    runner, url = await _serve_bot(settings)
    try:
        status, _ = await _post(url, _activity(service_url), None)
    finally:
        await runner.cleanup()
        await stand_in.stop()

    assert status == 201
    assert stand_in.activities(THREAD)[0].current["text"] == "echo: hello"
    assert not stand_in.violations


def test_settings_refuse_silent_auth_off() -> None:
    with pytest.raises(ValueError, match="required"):
        BotAuthSettings(app_id="", app_password="", tenant_id="")
    with pytest.raises(ValueError, match="empty app_id"):
        BotAuthSettings(app_id=BOT_APP.client_id, app_password="x", tenant_id=TENANT, allow_unauthenticated=True)
    assert "bot-secret-value" not in repr(BotAuthSettings(BOT_APP.client_id, BOT_APP.client_secret, TENANT))
