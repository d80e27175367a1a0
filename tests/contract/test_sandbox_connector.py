"""Bot Connector stand-in: swagger validation, recording, auth, Teams rate limits and injected faults."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botbuilder.schema import Activity, Attachment, ConversationAccount, ConversationParameters
from botframework.connector.aio import ConnectorClient
from botframework.connector.models import ErrorResponseException

from bot.teams.auth import BotAuthSettings, MsalClientSecretCredentials
from sandbox.connector import ConnectorStandIn, FaultRule, ThreadRateLimiter, conversation_url
from sandbox.identity import BOT_FRAMEWORK_AUDIENCE, GRAPH_AUDIENCE, IdentityServer
from sandbox.tls import TlsMaterial
from tests.support.teams_standins import BOT_APP, TENANT, bot_access_token

REPO_ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "19:4a1f2b3c4d5e6f@thread.tacv2"
CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Missed call"}]}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(
    connector: ConnectorStandIn, identity_server: IdentityServer, sandbox_tls: TlsMaterial
) -> AsyncIterator[ConnectorClient]:
    """botbuilder's own connector client, authenticated through the identity stand-in."""
    settings = BotAuthSettings(
        app_id=BOT_APP.client_id, app_password=BOT_APP.client_secret, tenant_id=TENANT,
        login_url=identity_server.authority(TENANT), validate_authority=False,
        ca_bundle=str(sandbox_tls.trust_bundle),
    )
    credentials = MsalClientSecretCredentials(
        settings, BOT_FRAMEWORK_AUDIENCE, identity_server.authority(TENANT), validate_authority=False
    )
    async with ConnectorClient(credentials, base_url=connector.service_url) as connector_client:
        yield connector_client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _card_activity() -> Activity:
    return Activity(
        type="message",
        attachments=[Attachment(content_type="application/vnd.microsoft.card.adaptive", content=CARD)],
        conversation=ConversationAccount(id=CHANNEL, tenant_id=TENANT),
    )


def _url(connector: ConnectorStandIn, conversation_id: str) -> str:
    return conversation_url(connector.service_url, conversation_id) + "/activities"


async def _post(
    http: aiohttp.ClientSession, url: str, body: Any, token: str | None, method: str = "POST"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None), dict(response.headers)


async def _create_thread(client: ConnectorClient) -> tuple[str, str]:
    created = await client.conversations.create_conversation(
        ConversationParameters(
            is_group=True, channel_data={"channel": {"id": CHANNEL}}, activity=_card_activity(), tenant_id=TENANT
        )
    )
    return created.id, created.activity_id


async def test_create_thread_reply_and_update_are_recorded(
    client: ConnectorClient, connector: ConnectorStandIn
) -> None:
    thread_id, root_id = await _create_thread(client)
    reply = await client.conversations.reply_to_activity(
        thread_id, root_id, Activity(type="message", text="claimed by Anna")
    )
    updated_card = {**CARD, "body": [{"type": "TextBlock", "text": "Claimed"}]}
    await client.conversations.update_activity(
        thread_id, root_id,
        Activity(id=root_id, type="message", attachments=[
            Attachment(content_type="application/vnd.microsoft.card.adaptive", content=updated_card)]),
    )

    assert thread_id == f"{CHANNEL};messageid={root_id}"
    root, answer = connector.activities(thread_id)
    assert (root.operation, answer.operation, answer.reply_to_id) == ("create", "reply", root_id)
    assert answer.activity_id == reply.id and answer.current["text"] == "claimed by Anna"
    assert [v["attachments"][0]["content"]["body"][0]["text"] for v in root.versions] == ["Missed call", "Claimed"]
    assert root.app_id == BOT_APP.client_id
    assert int(answer.activity_id) > int(root_id)


async def test_botbuilder_tenant_id_spelling_binds_case_insensitively(
    client: ConnectorClient, connector: ConnectorStandIn
) -> None:
    thread_id, _root = await _create_thread(client)

    assert "$.activity.conversation.tenantID -> tenantId" in connector.case_folded
    assert connector.find(_root).current["conversation"]["tenantId"] == TENANT
    assert thread_id in connector.conversations


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"type": "message", "text": 5}, "$.text: 5 is not of type 'string'"),
        ({"type": "message", "attachments": {"contentType": "x"}}, "$.attachments"),
        ({"type": "message", "conversation": {"tenantID": 7}}, "$.conversation.tenantId"),
        ({"text": "no type"}, "$.type"),
    ],
    ids=["text-not-string", "attachments-not-array", "case-folded-name-still-typed", "missing-type"],
)
async def test_wrong_shapes_are_rejected_and_recorded(
    http: aiohttp.ClientSession, connector: ConnectorStandIn, identity_server: IdentityServer,
    body: dict[str, Any], fragment: str,
) -> None:
    status, error, _ = await _post(http, _url(connector, CHANNEL), body, bot_access_token(identity_server))

    assert status == 400
    assert error["error"]["code"] == "BadArgument" and fragment in error["error"]["message"]
    assert [(v.definition, v.method) for v in connector.violations] == [("Activity", "POST")]
    assert any(fragment in e for e in connector.violations[0].errors)
    assert connector.conversations == {}
    connector.violations.clear()  # provoked on purpose; the fixture fails the test on any other


async def test_create_conversation_body_is_validated(
    http: aiohttp.ClientSession, connector: ConnectorStandIn, identity_server: IdentityServer
) -> None:
    status, _, _ = await _post(http, f"{connector.service_url}v3/conversations",
                               {"isGroup": "yes", "activity": {"type": "message"}}, bot_access_token(identity_server))

    assert status == 400
    assert connector.violations[0].definition == "ConversationParameters"
    connector.violations.clear()


@pytest.mark.parametrize("audience", [None, GRAPH_AUDIENCE], ids=["no-token", "graph-token"])
async def test_requires_a_bot_framework_token(
    http: aiohttp.ClientSession, connector: ConnectorStandIn, identity_server: IdentityServer, audience: str | None
) -> None:
    token = identity_server.stand_in.issue_access_token(BOT_APP, audience) if audience else None
    status, body, _ = await _post(http, _url(connector, CHANNEL), {"type": "message", "text": "hi"}, token)

    assert status == 401
    assert body == {"message": "Authorization has been denied for this request."}
    assert connector.conversations == {}


async def test_teams_thread_rate_limit_answers_429_with_retry_after(
    http: aiohttp.ClientSession, identity_server: IdentityServer
) -> None:
    clock = FakeClock()
    stand_in = ConnectorStandIn(identity_server.stand_in.token_validator(BOT_FRAMEWORK_AUDIENCE),
                                limiter=ThreadRateLimiter(clock=clock))
    await stand_in.start()
    token = bot_access_token(identity_server)
    try:
        statuses = [(await _post(http, _url(stand_in, CHANNEL), {"type": "message"}, token))[0] for _ in range(7)]
        throttled = await _post(http, _url(stand_in, CHANNEL), {"type": "message"}, token)
        other_thread = await _post(http, _url(stand_in, CHANNEL + ";messageid=1"), {"type": "message"}, token)
        clock.now += 1.01
        after_a_second = await _post(http, _url(stand_in, CHANNEL), {"type": "message"}, token)
    finally:
        await stand_in.stop()

    assert statuses == [201] * 7
    assert throttled[0] == 429 and throttled[2]["Retry-After"] == "1"
    assert throttled[1]["error"]["code"] == "TooManyRequests"
    assert other_thread[0] == 201
    assert after_a_second[0] == 201
    assert len(stand_in.activities(CHANNEL)) == 8


def test_rate_limiter_enforces_the_longer_windows() -> None:
    clock = FakeClock()
    limiter = ThreadRateLimiter(clock=clock)
    allowed = 0
    while limiter.acquire("thread") is None:
        allowed += 1
        clock.now += 0.3  # 3.3/s: under the 1 s and 2 s limits, over 60 per 30 s
    assert allowed == 60
    wait = limiter.acquire("thread")
    assert wait is not None and 0 < wait <= 30


async def test_injected_faults_fire_in_order_then_clear(
    http: aiohttp.ClientSession, connector: ConnectorStandIn, identity_server: IdentityServer
) -> None:
    connector.inject(FaultRule(429, count=1, retry_after=7))
    connector.inject(FaultRule(502, count=1))
    token = bot_access_token(identity_server)

    results = [await _post(http, _url(connector, f"{CHANNEL};messageid={n}"), {"type": "message"}, token)
               for n in range(3)]

    assert [r[0] for r in results] == [429, 502, 201]
    assert results[0][2]["Retry-After"] == "7"
    assert results[1][1]["error"]["code"] == "BadGateway"
    assert connector.faults == []


async def test_botbuilder_does_not_retry_injected_faults(client: ConnectorClient, connector: ConnectorStandIn) -> None:
    connector.inject(FaultRule(412, count=1))

    with pytest.raises(ErrorResponseException) as raised:
        await client.conversations.send_to_conversation(CHANNEL, Activity(type="message", text="x"))

    assert raised.value.response.status_code == 412
    assert [r.status for r in connector.requests] == [412]


async def test_fault_rate_is_deterministic_per_seed(
    http: aiohttp.ClientSession, identity_server: IdentityServer
) -> None:
    token = bot_access_token(identity_server)
    runs = []
    for _ in range(2):
        stand_in = ConnectorStandIn(identity_server.stand_in.token_validator(BOT_FRAMEWORK_AUDIENCE), seed=42)
        stand_in.inject(FaultRule(412, rate=0.5))
        await stand_in.start()
        try:
            runs.append([(await _post(http, _url(stand_in, f"{CHANNEL};messageid={n}"), {"type": "message"},
                                      token))[0] for n in range(20)])
        finally:
            await stand_in.stop()

    assert runs[0] == runs[1]
    assert set(runs[0]) == {201, 412}


async def test_control_api_lists_injects_and_resets(
    http: aiohttp.ClientSession, client: ConnectorClient, connector: ConnectorStandIn
) -> None:
    thread_id, root_id = await _create_thread(client)
    async with http.get(f"{connector.service_url}_control/conversations") as response:
        listed = await response.json()
    async with http.post(f"{connector.service_url}_control/faults", json={"status": 502, "count": 1}) as response:
        assert response.status == 201
    async with http.post(f"{connector.service_url}_control/faults", json={"status": 500, "count": 1}) as response:
        assert response.status == 400
    async with http.post(f"{connector.service_url}_control/reset") as response:
        assert response.status == 200

    assert listed[thread_id][0]["activity_id"] == root_id
    assert listed[thread_id][0]["versions"][0]["attachments"][0]["content"] == CARD
    assert connector.conversations == {} and connector.faults == []


async def test_update_of_unknown_activity_is_404(client: ConnectorClient) -> None:
    with pytest.raises(ErrorResponseException) as raised:
        await client.conversations.update_activity(CHANNEL, "123", Activity(id="123", type="message", text="x"))
    assert raised.value.response.status_code == 404


async def test_members_and_paged_members(client: ConnectorClient, connector: ConnectorStandIn) -> None:
    people = [{"id": f"29:user{n}", "name": f"User {n}", "aadObjectId": f"0000000{n}"} for n in range(3)]
    connector.set_members(CHANNEL, people)

    members = await client.conversations.get_conversation_members(f"{CHANNEL};messageid=1")
    first = await client.conversations.get_conversation_paged_members(CHANNEL, page_size=2)
    second = await client.conversations.get_conversation_paged_members(
        CHANNEL, page_size=2, continuation_token=first.continuation_token
    )

    assert [m.id for m in members] == ["29:user0", "29:user1", "29:user2"]
    assert [m.id for m in first.members] == ["29:user0", "29:user1"]
    assert [m.name for m in second.members] == ["User 2"] and second.continuation_token is None


async def test_oversized_activity_is_413(
    http: aiohttp.ClientSession, connector: ConnectorStandIn, identity_server: IdentityServer
) -> None:
    body = {"type": "message", "text": "x" * 110_000}
    status, error, _ = await _post(http, _url(connector, CHANNEL), body, bot_access_token(identity_server))
    assert (status, error["error"]["code"]) == (413, "MessageSizeTooBig")


async def test_runs_as_a_standalone_process(
    http: aiohttp.ClientSession, identity_server: IdentityServer, sandbox_tls: TlsMaterial
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox.connector", "--port", "0", "--identity-url", identity_server.base_url,
        "--trust-bundle", str(sandbox_tls.trust_bundle),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        service_url = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))["service_url"]
        url = conversation_url(service_url, CHANNEL) + "/activities"
        sent = await _post(http, url, {"type": "message", "text": "hi"}, bot_access_token(identity_server))
        refused = await _post(http, url, {"type": "message", "text": "hi"}, None)
        async with http.get(f"{service_url}_control/conversations") as response:
            listed = await response.json()
    finally:
        process.terminate()
        await process.wait()

    assert (sent[0], refused[0]) == (201, 401)
    assert listed[CHANNEL][0]["versions"][0]["text"] == "hi"
