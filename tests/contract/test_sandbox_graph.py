"""Contract tests of the Graph stand-in, driven through msgraph-sdk itself (and raw HTTP for wire details)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import httpx
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.followup_flag import FollowupFlag
from msgraph.generated.models.followup_flag_status import FollowupFlagStatus
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.mail_folders.item.messages.item.message_item_request_builder import (
    MessageItemRequestBuilder as InboxItemRequestBuilder,
)
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph.generated.users.item.messages.item.attachments.attachments_request_builder import (
    AttachmentsRequestBuilder,
)
from msgraph.generated.users.item.messages.item.message_item_request_builder import MessageItemRequestBuilder

from bot.graph.mailbox import GraphMailboxes
from sandbox.graph import GraphStandIn, jwks_token_validator, rs256_token_validator
from sandbox.graph_model import Attachment
from tests.support.graph import TOKEN, graph_client

POOL = "pool@example.com"
NEEDED = ["subject", "from", "body", "receivedDateTime", "flag", "categories", "webLink", "internetMessageId",
          "changeKey", "hasAttachments"]  # fmt: skip


@dataclass
class Receiver:
    """The bot's side of webhooks: answers the handshake and records notifications."""

    handshake_mode: str = "ok"  # ok | wrong-token | html | error
    failures_before_success: int = 0
    answer_delay_s: float = 0.0
    validations: list[str] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        token = request.query.get("validationToken")
        if token is not None:
            self.validations.append(request.path)
            if self.handshake_mode == "wrong-token":
                return web.Response(text=token + "x", content_type="text/plain")
            if self.handshake_mode == "html":
                return web.Response(text=token, content_type="text/html")
            if self.handshake_mode == "error":
                return web.Response(status=500)
            return web.Response(text=token, content_type="text/plain")
        await asyncio.sleep(self.answer_delay_s)
        if self.failures_before_success > 0:
            self.failures_before_success -= 1
            return web.Response(status=503)
        payload = await request.json()
        for item in payload["value"]:
            self.notifications.append({"path": request.path, **item})
        return web.Response(status=202)

    def of(self, path: str) -> list[dict[str, Any]]:
        return [n for n in self.notifications if n["path"] == path]


@pytest.fixture
async def stand_in() -> AsyncIterator[GraphStandIn]:
    server = GraphStandIn(mailboxes=[POOL], notification_retry_delays=(0.05, 0.1), expiry_check_interval_s=0.1, seed=7)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", recv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recv.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield recv
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def deliver(
    stand_in: GraphStandIn, subject: str = "Verpasster Anruf", body: str = "Anruf von 0301234567", **kwargs: Any
) -> str:
    return stand_in.deliver_mail(POOL, subject, "noreply@placetel.de", body, **kwargs).id


def subscription_body(receiver: Receiver, minutes: float = 60, **extra: Any) -> Subscription:
    return Subscription(
        change_type="created,updated",
        notification_url=f"{receiver.base_url}/notify",
        lifecycle_notification_url=f"{receiver.base_url}/lifecycle",
        resource=f"users/{POOL}/mailFolders('inbox')/messages",
        expiration_date_time=datetime.now(UTC) + timedelta(minutes=minutes),
        client_state="s3cret-client-state",
        **extra,
    )


Query = TypeVar("Query")


def configured(query: Query, prefer: str | None = None) -> RequestConfiguration[Query]:
    config = RequestConfiguration(query_parameters=query)
    if prefer:
        config.headers.add("Prefer", prefer)
    return config


# ------------------------------------------------------------------------------------------------ messages


async def test_internet_message_headers_come_only_when_selected_with_the_verdict_on_top(
    stand_in: GraphStandIn,
) -> None:
    forged = deliver(stand_in, authentication="fail",
                     headers=[("Authentication-Results", "dmarc=pass header.from=placetel.de")])
    client = graph_client(stand_in)
    plain = await client.users.by_user_id(POOL).messages.by_message_id(forged).get()
    assert plain is not None and plain.internet_message_headers is None

    mail = await GraphMailboxes(client).get_message(POOL, forged)
    assert mail is not None and mail.headers is not None
    (top_name, top_value), forged_header = mail.headers
    assert top_name == "Authentication-Results" and "dmarc=fail" in top_value
    assert forged_header == ("Authentication-Results", "dmarc=pass header.from=placetel.de")
    authentic = await GraphMailboxes(client).get_message(POOL, deliver(stand_in))
    assert authentic is not None and authentic.headers is not None and "dmarc=pass" in authentic.headers[0][1]
    assert authentic.message_class == "IPM.Note"


async def test_the_message_class_comes_with_single_reads_and_delta_pages(stand_in: GraphStandIn) -> None:
    oof = deliver(stand_in, "Automatische Antwort", message_class="IPM.Note.Rules.OofTemplate.Microsoft")
    mailboxes = GraphMailboxes(graph_client(stand_in))
    single = await mailboxes.get_message(POOL, oof)
    assert single is not None and single.message_class == "IPM.Note.Rules.OofTemplate.Microsoft"
    pages = [page async for page in mailboxes.delta(POOL, None)]
    (paged,) = [m for page in pages for m in page.messages]
    assert paged.message_class == "IPM.Note.Rules.OofTemplate.Microsoft" and paged.headers is not None


async def test_list_and_get_messages_deserialise_with_the_fields_we_need(stand_in: GraphStandIn) -> None:
    message_id = deliver(
        stand_in,
        body="<p>Voicemail von <b>0301234567</b></p>",
        body_type="html",
        sender_name="Placetel",
        attachments=[Attachment("voicemail.wav", "audio/wav", b"RIFF....WAVE")],
    )
    client = graph_client(stand_in)
    inbox = client.users.by_user_id(POOL).mail_folders.by_mail_folder_id("inbox").messages
    listed = await inbox.get(
        configured(MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(select=NEEDED, top=5))
    )
    assert listed is not None and listed.value is not None
    [message] = listed.value
    assert message.id == message_id
    assert message.subject == "Verpasster Anruf"
    assert message.from_ is not None and message.from_.email_address is not None
    assert message.from_.email_address.address == "noreply@placetel.de"
    assert message.from_.email_address.name == "Placetel"
    assert message.body is not None and message.body.content_type == BodyType.Html
    assert message.body.content == "<p>Voicemail von <b>0301234567</b></p>"
    assert message.received_date_time is not None and message.received_date_time.tzinfo is not None
    assert message.flag is not None and message.flag.flag_status == FollowupFlagStatus.NotFlagged
    assert message.categories == []
    assert message.web_link is not None and message.web_link.startswith("https://outlook.office365.com/owa/")
    assert message.internet_message_id and message.change_key and message.has_attachments is True
    assert message.is_read is None  # not selected

    immutable = 'IdType="ImmutableId"'
    direct = await (
        client.users.by_user_id(POOL)
        .messages.by_message_id(message_id)
        .get(
            configured(MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(select=NEEDED), immutable)
        )
    )
    in_inbox = await inbox.by_message_id(message_id).get(
        configured(InboxItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(select=NEEDED), immutable)
    )
    for fetched in (direct, in_inbox):
        assert fetched is not None and fetched.id == message_id and fetched.change_key == message.change_key
        assert fetched.parent_folder_id is None
    assert stand_in.requests[-1].query["$select"] == ",".join(NEEDED)
    assert stand_in.requests[-1].headers["prefer"] == 'IdType="ImmutableId"'


async def test_attachments_with_and_without_content_bytes_and_raw_value(stand_in: GraphStandIn) -> None:
    payload = bytes(range(256)) * 4
    message_id = deliver(stand_in, attachments=[Attachment("vm.wav", "audio/wav", payload)])
    client = graph_client(stand_in)
    attachments = client.users.by_user_id(POOL).messages.by_message_id(message_id).attachments
    full = await attachments.get()
    assert full is not None and full.value is not None
    [attachment] = full.value
    assert isinstance(attachment, FileAttachment)
    assert attachment.content_bytes == payload and attachment.size == len(payload)
    assert (attachment.name, attachment.content_type, attachment.is_inline) == ("vm.wav", "audio/wav", False)

    slim_select = ["id", "name", "size", "contentType"]
    slim = await attachments.get(
        configured(AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters(select=slim_select))
    )
    assert slim is not None and slim.value is not None
    assert isinstance(slim.value[0], FileAttachment) and slim.value[0].content_bytes is None

    info = RequestInformation(Method.GET)
    info.url = f"{stand_in.base_url}/v1.0/users/{POOL}/messages/{message_id}/attachments/{attachment.id}/$value"
    raw: bytes | None = await client.request_adapter.send_primitive_async(info, "bytes", {})
    assert raw == payload


async def test_patch_flag_states_and_categories(stand_in: GraphStandIn) -> None:
    message_id = deliver(stand_in)
    item = graph_client(stand_in).users.by_user_id(POOL).messages.by_message_id(message_id)
    change_keys = {stand_in.mailbox(POOL).message(message_id).change_key}

    flagged = await item.patch(Message(flag=FollowupFlag(flag_status=FollowupFlagStatus.Flagged)))
    assert flagged is not None and flagged.flag is not None and flagged.flag.flag_status == FollowupFlagStatus.Flagged
    change_keys.add(str(flagged.change_key))

    done_at = DateTimeTimeZone(date_time="2025-03-04T10:15:00", time_zone="UTC")
    completed = await item.patch(
        Message(flag=FollowupFlag(flag_status=FollowupFlagStatus.Complete, completed_date_time=done_at))
    )
    assert completed is not None and completed.flag is not None
    assert completed.flag.flag_status == FollowupFlagStatus.Complete
    assert completed.flag.completed_date_time is not None
    assert completed.flag.completed_date_time.date_time == "2025-03-04T10:15:00"
    change_keys.add(str(completed.change_key))

    cleared = await item.patch(Message(flag=FollowupFlag(flag_status=FollowupFlagStatus.NotFlagged)))
    assert cleared is not None and cleared.flag is not None
    assert cleared.flag.flag_status == FollowupFlagStatus.NotFlagged and cleared.flag.completed_date_time is None
    change_keys.add(str(cleared.change_key))

    categorised = await item.patch(Message(categories=["Rufpool: erledigt"], is_read=True))
    assert categorised is not None and categorised.categories == ["Rufpool: erledigt"] and categorised.is_read
    change_keys.add(str(categorised.change_key))
    assert len(change_keys) == 5  # a new changeKey on every modification


async def test_patch_rejects_bad_bodies_and_unknown_messages(
    stand_in: GraphStandIn, http: aiohttp.ClientSession
) -> None:
    message_id = deliver(stand_in)
    url = f"{stand_in.base_url}/v1.0/users/{POOL}/messages/{message_id}"
    for body, needle in [
        ({"subject": "x"}, "'subject'"),
        ({"flag": {"flagStatus": "done"}}, "followupFlagStatus"),
        ({"categories": "a"}, "categories"),
        ({"isRead": "yes"}, "Edm.Boolean"),
    ]:
        async with http.patch(url, json=body, headers=AUTH) as response:
            error = (await response.json())["error"]
            assert response.status == 400 and error["code"] == "RequestBodyRead" and needle in error["message"]
    async with http.patch(url, json={"isRead": True}, headers={**AUTH, "If-Match": 'W/"stale"'}) as response:
        assert response.status == 412

    client = graph_client(stand_in)
    with pytest.raises(ODataError) as raised:
        await client.users.by_user_id(POOL).messages.by_message_id("AAkALgAAunknown=").get()
    assert raised.value.response_status_code == 404
    assert raised.value.error is not None and raised.value.error.code == "ErrorItemNotFound"


# ------------------------------------------------------------------------------------------------ wire details


async def test_odata_error_shape_and_request_ids(stand_in: GraphStandIn, http: aiohttp.ClientSession) -> None:
    url = f"{stand_in.base_url}/v1.0/users/{POOL}/messages"
    async with http.get(url, headers={"client-request-id": "abc-123"}) as response:
        body = await response.json()
        assert response.status == 401
        assert response.headers["client-request-id"] == "abc-123"
        request_id = response.headers["request-id"]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "innerError"}
    assert body["error"]["code"] == "InvalidAuthenticationToken"
    inner = body["error"]["innerError"]
    assert inner["request-id"] == request_id and inner["client-request-id"] == "abc-123"
    datetime.strptime(inner["date"], "%Y-%m-%dT%H:%M:%S")
    assert stand_in.requests[-1].status == 401

    async with http.get(url, headers={**AUTH, "Prefer": 'IdType="ImmutableId"'}) as response:
        assert response.status == 200 and response.headers["Preference-Applied"] == 'IdType="ImmutableId"'
        assert stand_in.requests[-1].headers["authorization"] == "Bearer <redacted>"
    async with http.get(url, params={"$select": "subject,nonsense"}, headers=AUTH) as response:
        assert response.status == 400 and "nonsense" in (await response.json())["error"]["message"]


async def test_token_validator_decides() -> None:
    server = GraphStandIn(mailboxes=[POOL], token_validator=lambda token: token == "good")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"{server.base_url}/v1.0/users/{POOL}/messages"
            async with session.get(url, headers={"Authorization": "Bearer bad"}) as response:
                assert response.status == 401
                assert (await response.json())["error"]["code"] == "InvalidAuthenticationToken"
            async with session.get(url, headers={"Authorization": "Bearer good"}) as response:
                assert response.status == 200
    finally:
        await server.stop()


async def test_rs256_and_jwks_validators_check_signature_and_audience(http: aiohttp.ClientSession) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"aud": "https://graph.microsoft.com", "exp": int(time.time()) + 600, "appid": "app-1"}
    good = jwt.encode(claims, key, "RS256", headers={"kid": "k1"})
    forged = jwt.encode(claims, other, "RS256", headers={"kid": "k1"})
    wrong_audience = jwt.encode({**claims, "aud": "api://other"}, key, "RS256", headers={"kid": "k1"})
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    by_key = rs256_token_validator(pem, audience="https://graph.microsoft.com")
    assert [by_key(t) for t in (good, forged, wrong_audience, "garbage")] == [True, False, False, False]

    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "use": "sig"}

    async def serve_jwks(_request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    jwks_app = web.Application()
    jwks_app.router.add_get("/keys", serve_jwks)
    runner = web.AppRunner(jwks_app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    jwks_url = f"http://127.0.0.1:{runner.addresses[0][1]}/keys"
    # The stand-in runs validators in a worker thread, so a JWKS served on the same loop cannot deadlock it.
    server = GraphStandIn(
        mailboxes=[POOL], token_validator=jwks_token_validator(jwks_url, "https://graph.microsoft.com")
    )
    await server.start()
    try:
        url = f"{server.base_url}/v1.0/users/{POOL}/messages"
        for token, status in ((good, 200), (forged, 401), (wrong_audience, 401)):
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == status
    finally:
        await server.stop()
        await runner.cleanup()


async def test_more_than_four_concurrent_requests_per_mailbox_get_429(
    stand_in: GraphStandIn, http: aiohttp.ClientSession
) -> None:
    stand_in.add_fault("delay", delay_ms=300, path="/messages$")
    url = f"{stand_in.base_url}/v1.0/users/{POOL}/messages"

    async def fetch() -> tuple[int, str | None, dict[str, Any]]:
        async with http.get(url, headers=AUTH) as response:
            return response.status, response.headers.get("Retry-After"), await response.json()

    results = await asyncio.gather(*(fetch() for _ in range(6)))
    throttled = [r for r in results if r[0] == 429]
    assert len(throttled) == 2 and sum(r[0] == 200 for r in results) == 4
    for _status, retry_after, body in throttled:
        assert retry_after == "1" and body["error"]["code"] == "ApplicationThrottled"
        assert body["error"]["message"] == "Application is over its MailboxConcurrency limit."

    # msgraph's RetryHandler honours Retry-After and gets through; the request log shows the 429s first.
    stand_in.clear_requests()
    client = graph_client(stand_in)
    pages = await asyncio.gather(*(client.users.by_user_id(POOL).messages.get() for _ in range(5)))
    assert all(page is not None for page in pages)
    statuses = [r.status for r in stand_in.requests]
    assert statuses.count(429) >= 1 and statuses.count(200) == 5


async def test_fault_injection_kinds(stand_in: GraphStandIn) -> None:
    message_id = deliver(stand_in)
    plain = graph_client(stand_in, retries=False)
    item = plain.users.by_user_id(POOL).messages.by_message_id(message_id)

    stand_in.add_fault("503", path="/messages/", count=1, retry_after=2)
    with pytest.raises(ODataError) as raised:
        await item.get()
    assert raised.value.response_status_code == 503
    assert await item.get() is not None  # count exhausted

    stand_in.add_fault("429", path="/messages/", count=1, method="PATCH", retry_after=1)
    retrying = graph_client(stand_in).users.by_user_id(POOL).messages.by_message_id(message_id)
    patched = await retrying.patch(Message(is_read=True))
    assert patched is not None and patched.is_read is True
    assert [r.status for r in stand_in.requests if r.method == "PATCH"] == [429, 200]

    stand_in.add_fault("drop", path="/messages/", count=1)
    with pytest.raises(httpx.TransportError):
        await item.get()

    stand_in.add_fault("delay", path="/messages/", delay_ms=250, count=1)
    started = time.monotonic()
    assert await item.get() is not None
    assert time.monotonic() - started >= 0.25


async def test_fault_rate_is_deterministic_for_a_seed(http: aiohttp.ClientSession) -> None:
    async def statuses(seed: int) -> list[int]:
        server = GraphStandIn(mailboxes=[POOL], seed=seed)
        await server.start()
        try:
            server.add_fault("503", rate=0.5)
            url = f"{server.base_url}/v1.0/users/{POOL}/messages"
            result = []
            for _ in range(20):
                async with http.get(url, headers=AUTH) as response:
                    result.append(response.status)
            return result
        finally:
            await server.stop()

    first = await statuses(42)
    assert first == await statuses(42)
    assert 0 < first.count(503) < 20


# ------------------------------------------------------------------------------------------------ subscriptions


async def test_subscription_create_notify_renew_reauthorize_delete(stand_in: GraphStandIn, receiver: Receiver) -> None:
    client = graph_client(stand_in)
    created = await client.subscriptions.post(subscription_body(receiver, minutes=30))
    assert created is not None and created.id is not None and created.expiration_date_time is not None
    assert sorted(receiver.validations) == ["/lifecycle", "/notify"]
    assert created.client_state == "s3cret-client-state" and created.application_id == "app-1"

    message_id = deliver(stand_in)
    await stand_in.idle()
    assert len(receiver.of("/notify")) == 1
    [note] = receiver.of("/notify")
    mailbox = stand_in.mailbox(POOL)
    assert note["changeType"] == "created" and note["clientState"] == "s3cret-client-state"
    assert note["subscriptionId"] == created.id and note["tenantId"] == stand_in.tenant_id
    assert note["resource"] == f"Users/{mailbox.user_id}/Messages/{message_id}"
    assert note["resourceData"]["id"] == message_id
    assert note["resourceData"]["@odata.type"] == "#Microsoft.Graph.Message"
    assert note["resourceData"]["@odata.etag"] == mailbox.message(message_id).etag

    # the bot's own PATCH echoes back as "updated", and so does a flag set in Outlook
    await (
        client.users.by_user_id(POOL)
        .messages.by_message_id(message_id)
        .patch(Message(flag=FollowupFlag(flag_status=FollowupFlagStatus.Flagged)))
    )
    stand_in.set_flag(POOL, message_id, {"flagStatus": "complete"})
    await stand_in.idle()
    assert len(receiver.of("/notify")) == 3
    assert [n["changeType"] for n in receiver.of("/notify")[1:]] == ["updated", "updated"]

    later = datetime.now(UTC) + timedelta(days=2)
    renewed = await client.subscriptions.by_subscription_id(created.id).patch(Subscription(expiration_date_time=later))
    assert renewed is not None and renewed.expiration_date_time is not None
    assert abs((renewed.expiration_date_time - later).total_seconds()) < 1
    await client.subscriptions.by_subscription_id(created.id).reauthorize.post()
    listed = await client.subscriptions.get()
    assert listed is not None and [s.id for s in listed.value or []] == [created.id]

    await client.subscriptions.by_subscription_id(created.id).delete()
    deliver(stand_in)
    await stand_in.idle()
    assert len(receiver.of("/notify")) == 3
    with pytest.raises(ODataError) as raised:
        await client.subscriptions.by_subscription_id(created.id).get()
    assert raised.value.response_status_code == 404


@pytest.mark.parametrize("mode", ["wrong-token", "html", "error"])
async def test_failed_validation_handshake_rejects_the_subscription(
    stand_in: GraphStandIn, receiver: Receiver, mode: str
) -> None:
    receiver.handshake_mode = mode
    with pytest.raises(ODataError) as raised:
        await graph_client(stand_in).subscriptions.post(subscription_body(receiver))
    assert raised.value.response_status_code == 400
    assert raised.value.error is not None and raised.value.error.code == "InvalidRequest"
    assert "Subscription validation request failed" in str(raised.value.error.message)
    assert stand_in.subscriptions() == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"expirationDateTime": "2999-01-01T00:00:00Z"}, "10080 minutes"),
        ({"clientState": "x" * 129}, "clientState"),
        ({"changeType": None}, "changeType"),
        ({"changeType": "created,exploded"}, "changeType"),
        ({"resource": f"users/{POOL}/events"}, "not supported"),
    ],
)
async def test_subscription_request_validation(
    stand_in: GraphStandIn, receiver: Receiver, http: aiohttp.ClientSession, change: dict[str, Any], needle: str
) -> None:
    body = {
        "changeType": "created",
        "notificationUrl": f"{receiver.base_url}/notify",
        "resource": f"/users/{POOL}/mailFolders/inbox/messages",
        "expirationDateTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        **change,
    }
    async with http.post(f"{stand_in.base_url}/v1.0/subscriptions", json=body, headers=AUTH) as response:
        error = (await response.json())["error"]
    assert response.status == 400 and needle in error["message"]
    assert receiver.validations == []


async def test_expired_subscription_stops_notifications(stand_in: GraphStandIn, receiver: Receiver) -> None:
    client = graph_client(stand_in)
    created = await client.subscriptions.post(subscription_body(receiver, minutes=1.5 / 60))
    assert created is not None and created.id is not None
    deliver(stand_in)
    await stand_in.idle()
    assert len(receiver.of("/notify")) == 1
    await asyncio.sleep(1.7)
    deliver(stand_in)
    await stand_in.idle()
    assert len(receiver.of("/notify")) == 1
    with pytest.raises(ODataError) as raised:
        await client.subscriptions.by_subscription_id(created.id).get()
    assert raised.value.response_status_code == 404


async def test_lifecycle_events_are_posted_and_removal_removes(stand_in: GraphStandIn, receiver: Receiver) -> None:
    created = await graph_client(stand_in).subscriptions.post(subscription_body(receiver))
    assert created is not None
    stand_in.fire_lifecycle("reauthorizationRequired", subscription_id=created.id)
    stand_in.fire_lifecycle("missed", mailbox=POOL)
    assert stand_in.fire_lifecycle("subscriptionRemoved", subscription_id=created.id) == [created.id]
    await stand_in.idle()
    events = receiver.of("/lifecycle")
    assert [e["lifecycleEvent"] for e in events] == ["reauthorizationRequired", "missed", "subscriptionRemoved"]
    assert all(e["subscriptionId"] == created.id and e["clientState"] == "s3cret-client-state" for e in events)
    assert stand_in.subscriptions() == []


async def test_notifications_are_retried_and_do_not_block_the_request(
    stand_in: GraphStandIn, receiver: Receiver
) -> None:
    client = graph_client(stand_in)
    await client.subscriptions.post(subscription_body(receiver))
    receiver.failures_before_success = 2
    message_id = deliver(stand_in)
    await stand_in.idle()
    [delivery] = stand_in.deliveries
    assert delivery.attempts == 3 and delivery.delivered and len(receiver.of("/notify")) == 1

    receiver.answer_delay_s = 1.0
    started = time.monotonic()
    await client.users.by_user_id(POOL).messages.by_message_id(message_id).patch(Message(is_read=True))
    assert time.monotonic() - started < 0.5  # the PATCH does not wait for the slow webhook
    await stand_in.idle()
    assert [n["changeType"] for n in receiver.of("/notify")] == ["created", "updated"]


# ------------------------------------------------------------------------------------------------ delta


async def test_delta_pages_then_returns_only_changes(stand_in: GraphStandIn) -> None:
    ids = [deliver(stand_in, subject=f"Anruf {n}") for n in range(5)]
    delta = graph_client(stand_in).users.by_user_id(POOL).mail_folders.by_mail_folder_id("inbox").messages.delta
    config = configured(
        DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=["subject", "flag"]), "odata.maxpagesize=2"
    )

    async def sync(first: DeltaRequestBuilder) -> tuple[list[Message], str]:
        seen: list[Message] = []
        page = await first.get(config)
        while True:
            assert page is not None and page.value is not None and len(page.value) <= 2
            seen.extend(page.value)
            if page.odata_delta_link:
                return seen, page.odata_delta_link
            assert page.odata_next_link
            page = await delta.with_url(page.odata_next_link).get(config)

    seen, delta_link = await sync(delta)
    assert sorted(str(m.id) for m in seen) == sorted(ids)
    assert all(m.subject and m.flag and m.body is None for m in seen)

    stand_in.set_flag(POOL, ids[0], {"flagStatus": "flagged"})
    new_id = deliver(stand_in, subject="Neu")
    stand_in.delete_message(POOL, ids[1])
    changes, next_delta = await sync(delta.with_url(delta_link))
    by_id = {str(m.id): m for m in changes}
    assert set(by_id) == {ids[0], new_id, ids[1]}
    flag = by_id[ids[0]].flag
    assert flag is not None and flag.flag_status == FollowupFlagStatus.Flagged
    assert by_id[ids[1]].additional_data["@removed"] == {"reason": "deleted"}
    assert next_delta != delta_link

    nothing, _ = await sync(delta.with_url(next_delta))
    assert nothing == []


async def test_unknown_delta_token_is_410_sync_state_not_found(stand_in: GraphStandIn) -> None:
    delta = graph_client(stand_in).users.by_user_id(POOL).mail_folders.by_mail_folder_id("inbox").messages.delta
    first = await delta.get()
    assert first is not None and first.odata_delta_link
    stand_in.expire_delta_tokens()
    with pytest.raises(ODataError) as raised:
        await delta.with_url(first.odata_delta_link).get()
    assert raised.value.response_status_code == 410
    assert raised.value.error is not None and raised.value.error.code == "SyncStateNotFound"


# ------------------------------------------------------------------------------------------------ control API


async def test_control_api_over_http(stand_in: GraphStandIn, http: aiohttp.ClientSession) -> None:
    control = f"{stand_in.base_url}/_control"
    wav = base64.b64encode(b"RIFFdata").decode()
    mail = {
        "subject": "Voicemail",
        "from": "noreply@placetel.de",
        "body": "<p>hi</p>",
        "bodyType": "html",
        "receivedDateTime": "2025-03-04T09:00:00Z",
        "attachments": [{"name": "a.wav", "contentType": "audio/wav", "contentBytes": wav}, {"name": "b", "size": 10}],
    }
    async with http.post(f"{control}/mailboxes/{POOL}/messages", json=mail) as response:
        message_id = (await response.json())["id"]
    message = stand_in.mailbox(POOL).message(message_id)
    assert [len(a.content) for a in message.attachments] == [8, 10] and message.received.year == 2025
    async with http.post(f"{control}/mailboxes/{POOL}/messages/{message_id}/flag", json={"flagStatus": "flagged"}) as r:
        assert (await r.json()) == {"flagStatus": "flagged"}
    async with http.post(f"{control}/faults", json={"kind": "bogus"}) as response:
        assert response.status == 400
    async with http.get(f"{stand_in.base_url}/v1.0/users/{POOL}/messages/{message_id}", headers=AUTH) as response:
        assert response.status == 200
    async with http.get(f"{control}/requests") as response:
        [recorded] = await response.json()
        assert recorded["method"] == "GET" and recorded["status"] == 200
    async with http.post(f"{control}/reset") as response:
        assert response.status == 200
    assert stand_in.mailbox(POOL).messages == {} and stand_in.requests == []


@pytest.fixture
def standalone_process() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.graph", "--port", "0", "--mailbox", POOL],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],  # `sandbox` is not installed: it runs from the checkout
    )
    yield process
    process.terminate()
    process.wait(timeout=10)


async def test_standalone_main(standalone_process: subprocess.Popen[str], http: aiohttp.ClientSession) -> None:
    assert standalone_process.stdout is not None
    ready = await asyncio.to_thread(standalone_process.stdout.readline)
    assert ready.startswith("GRAPH_STAND_IN_READY http://127.0.0.1:")
    base = ready.split()[1]
    mail = {"subject": "Hallo", "from": "a@b.de"}
    async with http.post(f"{base}/_control/mailboxes/{POOL}/messages", json=mail) as response:
        assert response.status == 200
    async with http.get(f"{base}/v1.0/users/{POOL}/messages", headers=AUTH) as response:
        assert json.loads(await response.text())["value"][0]["subject"] == "Hallo"
