"""The botbuilder 4.17 invoke-response bug, and our path around it.

Plain botbuilder: ``ActivityHandler`` serialises the ``AdaptiveCardInvokeResponse`` to a dict, then
``CloudAdapter.process`` serialises that dict again and fails with ``'dict' object has no attribute 'is_xml_model'``.
Both sides run on real JWTs from the identity stand-in.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue

from bot.core.actions import ActionResult
from bot.teams.auth import (
    BotAuthSettings,
    authenticated_messages_handler,
    build_bot_framework_authentication,
    invoke_response_json,
)
from bot.teams.bot import card_invoke_response
from sandbox.connector import ConnectorStandIn
from sandbox.identity import IdentityServer, start_site
from sandbox.tls import TlsMaterial
from tests.support.teams_standins import BOT_APP, STAND_IN_POLICY, TENANT

CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Erledigt – Anna"}]}
CARD_TYPE = "application/vnd.microsoft.card.adaptive"


class PlainCardBot(ActivityHandler):
    """What botbuilder's documentation suggests for Universal Actions."""

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        return AdaptiveCardInvokeResponse(status_code=200, type=CARD_TYPE, value=CARD)


@pytest.fixture
async def served(
    identity_server: IdentityServer, sandbox_tls: TlsMaterial, trust_sandbox_ca: None
) -> AsyncIterator[tuple[str, list[BaseException]]]:
    """The same bot behind botbuilder's ``CloudAdapter.process`` (/plain) and behind our handler (/ours)."""
    settings = BotAuthSettings(
        app_id=BOT_APP.client_id,
        app_password=BOT_APP.client_secret,
        tenant_id=TENANT,
        login_url=identity_server.authority(TENANT),
        channel_openid_metadata_url=identity_server.channel_openid_metadata_url,
        emulator_openid_metadata_url=identity_server.emulator_openid_metadata_url,
        validate_authority=False,
        ca_bundle=str(sandbox_tls.trust_bundle),
    )
    auth = build_bot_framework_authentication(settings)
    adapter, bot = CloudAdapter(auth), PlainCardBot()
    errors: list[BaseException] = []

    async def plain(request: web.Request) -> web.StreamResponse:
        try:
            return await adapter.process(request, bot)
        except Exception as error:
            errors.append(error)
            raise

    app = web.Application()
    app.router.add_post("/plain", plain)
    ours = authenticated_messages_handler(adapter, bot, auth, STAND_IN_POLICY, allow_unauthenticated=False)
    app.router.add_post("/ours", ours)
    runner, port = await start_site(app, None, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}", errors
    await runner.cleanup()


def _invoke(service_url: str) -> dict[str, Any]:
    return {
        "type": "invoke", "name": "adaptiveCard/action", "id": "f:1", "channelId": "msteams",
        "serviceUrl": service_url, "from": {"id": "29:anna", "aadObjectId": "aad-anna", "name": "Anna"},
        "recipient": {"id": f"28:{BOT_APP.client_id}"},
        "conversation": {"id": "19:c@thread.tacv2;messageid=1", "conversationType": "channel", "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}}, "replyToId": "1",
        "value": {"action": {"type": "Action.Execute", "verb": "done", "data": {}}, "trigger": "manual"},
    }  # fmt: skip


async def _post(url: str, body: dict[str, Any], token: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        return response.status, await response.text()


async def test_plain_botbuilder_fails_to_serialise_the_invoke_response(
    served: tuple[str, list[BaseException]], connector: ConnectorStandIn, identity_server: IdentityServer
) -> None:
    base, errors = served
    token = identity_server.stand_in.channel_token(BOT_APP.client_id, connector.service_url)

    status, _ = await _post(f"{base}/plain", _invoke(connector.service_url), token)

    assert status == 500
    assert len(errors) == 1 and "is_xml_model" in str(errors[0])


async def test_our_handler_returns_the_card_as_json(
    served: tuple[str, list[BaseException]], connector: ConnectorStandIn, identity_server: IdentityServer
) -> None:
    base, errors = served
    token = identity_server.stand_in.channel_token(BOT_APP.client_id, connector.service_url)

    status, text = await _post(f"{base}/ours", _invoke(connector.service_url), token)

    assert status == 200 and errors == []
    assert json.loads(text) == {"statusCode": 200, "type": CARD_TYPE, "value": CARD}


def test_card_invoke_response_is_plain_json_in_every_shape() -> None:
    card = card_invoke_response(ActionResult(200, card=CARD))
    expected = {"statusCode": 200, "type": CARD_TYPE, "value": CARD}
    assert (card.status, invoke_response_json(card.body)) == (200, expected)

    message = card_invoke_response(ActionResult(200, message="ok"))
    assert message.body == {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": "ok"}

    error = card_invoke_response(ActionResult(403, message="Diese Karte gehört zu einem anderen Kanal"))
    assert error.status == 200  # the HTTP status; the card action's status travels in the body
    assert error.body == {
        "statusCode": 403,
        "type": "application/vnd.microsoft.error",
        "value": {"code": "Forbidden", "message": "Diese Karte gehört zu einem anderen Kanal"},
    }
    assert invoke_response_json(AdaptiveCardInvokeResponse(status_code=200, type=CARD_TYPE, value=CARD)) == {
        "statusCode": 200, "type": CARD_TYPE, "value": CARD,
    }  # fmt: skip
