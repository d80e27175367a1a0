"""The Graph webhook: handshake, clientState, validation, size limit, durable before 202, never waiting on Graph."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.core.ports import Job
from bot.graph.subscriptions import LIFECYCLE_PATH, NOTIFICATION_PATH
from bot.graph.webhooks import MAX_BODY_BYTES, NOTIFICATION_JOB, notification_handler
from bot.placetel.notify import NOTIFY_PATH
from bot.storage.sql_store import SqlStore
from tests.support.bot_stack import CLIENT_STATE, BotStack
from tests.support.ingest import change_notifications, events_per_mail, notifications_lost, post_webhook

HOSTILE_TOKEN = "Validation: <script>alert('x')</script> &amp; a+b=c?d%20 ü"


def notification(subscription: str = "sub-1", message_id: str = "msg-1", **changes: Any) -> dict[str, Any]:
    item = {
        "subscriptionId": subscription,
        "changeType": "created",
        "resource": f"Users/u/Messages/{message_id}",
        "clientState": CLIENT_STATE,
        "tenantId": "tenant",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": message_id},
    }
    return item | changes


async def pending_jobs(store: SqlStore) -> list[Job]:
    return await store.jobs.lease("test", [NOTIFICATION_JOB], timedelta(minutes=1), limit=2000)


async def in_pieces(body: bytes, size: int = 16384) -> AsyncIterator[bytes]:
    """A chunked upload (no Content-Length) that arrives piece by piece."""
    for start in range(0, len(body), size):
        yield body[start : start + size]
        await asyncio.sleep(0.001)


@pytest.fixture
async def webhook(store: SqlStore) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """Just the webhook handler on the real store."""
    app = web.Application()
    app.router.add_post("/hook", notification_handler(store.jobs, CLIENT_STATE, lambda: None))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_validation_token_is_echoed_as_plain_text_only(
    webhook: TestClient[web.Request, web.Application],
) -> None:
    response = await webhook.post("/hook", params={"validationToken": HOSTILE_TOKEN})
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert await response.text() == HOSTILE_TOKEN


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b'{"value": ' + b"[" * 100_000, "not JSON: nested too deeply"),
        (b"[]", "not a Graph notification collection"),
        (b'{"value": []}', "value"),
        (b'{"value": [{"changeType": "created"}]}', "subscriptionId"),
        (b'{"value": [{"subscriptionId": "s", "lifecycleEvent": "exploded"}]}', "lifecycleEvent"),
    ],
    ids=["broken", "not-utf8", "nested-too-deeply", "list", "empty", "no-subscription", "unknown-lifecycle"],
)
async def test_malformed_body_gets_400_with_a_reason(
    webhook: TestClient[web.Request, web.Application], store: SqlStore, body: bytes, reason: str
) -> None:
    response = await webhook.post("/hook", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert reason in (await response.json())["error"]
    assert await pending_jobs(store) == []


async def test_oversized_body_gets_413_with_or_without_content_length(
    webhook: TestClient[web.Request, web.Application], store: SqlStore
) -> None:
    oversized = b"x" * (MAX_BODY_BYTES + 1)
    declared = await webhook.post("/hook", data=oversized)
    streamed = await webhook.post("/hook", data=in_pieces(oversized))
    assert (declared.status, streamed.status) == (413, 413)
    assert "1 MiB" in (await streamed.json())["error"]
    assert await pending_jobs(store) == []


async def test_large_valid_body_is_read_whole_and_persisted_before_202(
    webhook: TestClient[web.Request, web.Application], store: SqlStore
) -> None:
    padding = "p" * 900
    items = [notification(message_id=f"msg-{n}", resource=f"Users/u/Messages/msg-{n}/{padding}") for n in range(150)]
    body = json.dumps({"value": items}).encode()
    assert 100_000 < len(body) < MAX_BODY_BYTES

    response = await webhook.post("/hook", data=in_pieces(body), headers={"Content-Type": "application/json"})
    assert response.status == 202
    jobs = await pending_jobs(store)
    assert sorted(job.payload["resourceData"]["id"] for job in jobs) == sorted(f"msg-{n}" for n in range(150))
    assert all("clientState" not in job.payload for job in jobs), "the secret is not stored"


async def test_wrong_client_state_is_ignored_but_answered_202(
    webhook: TestClient[web.Request, web.Application], store: SqlStore
) -> None:
    batch = {"value": [notification(message_id="good"), notification(message_id="bad", clientState="guess")]}
    missing = {"value": [{k: v for k, v in notification(message_id="none").items() if k != "clientState"}]}

    assert (await webhook.post("/hook", json=batch)).status == 202
    assert (await webhook.post("/hook", json=missing)).status == 202
    assert [job.payload["resourceData"]["id"] for job in await pending_jobs(store)] == ["good"]


async def test_duplicate_pending_notifications_collapse(
    webhook: TestClient[web.Request, web.Application], store: SqlStore
) -> None:
    for _ in range(3):
        assert (await webhook.post("/hook", json={"value": [notification()]})).status == 202
    assert len(await pending_jobs(store)) == 1


async def test_unpersistable_notification_gets_503(
    webhook: TestClient[web.Request, web.Application], store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def database_down(*_args: Any, **_kwargs: Any) -> int:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(store.jobs, "enqueue", database_down)
    response = await webhook.post("/hook", json={"value": [notification()]})
    assert response.status == 503, "Graph must deliver it again"


# End to end, on the bot's real URLs --------------------------------------------------------------------------


@pytest.mark.parametrize("path", [NOTIFICATION_PATH, LIFECYCLE_PATH])
async def test_bot_echoes_a_script_token_as_plain_text(bot_stack: BotStack, path: str) -> None:
    response = await post_webhook(bot_stack, b"", path, params={"validationToken": HOSTILE_TOKEN})
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert await response.text() == HOSTILE_TOKEN


async def test_bot_ignores_a_wrong_client_state(bot_stack: BotStack) -> None:
    with notifications_lost(bot_stack):
        message_id = bot_stack.deliver_missed_call("0171 2345678")
        await bot_stack.graph.idle()
    (payload,) = change_notifications(bot_stack, message_id)
    forged = json.loads(json.dumps(payload))
    forged["value"][0]["clientState"] = "not-the-secret"

    assert (await post_webhook(bot_stack, forged)).status == 202
    await bot_stack.settle()
    assert await events_per_mail(bot_stack) == {}

    assert (await post_webhook(bot_stack, payload)).status == 202
    await bot_stack.settle()
    assert await events_per_mail(bot_stack) == {message_id: 1}


async def test_bot_answers_without_waiting_for_graph(bot_stack: BotStack) -> None:
    """With every mailbox request held for 3 s, the webhook still answers at once; the worker catches up later."""
    with notifications_lost(bot_stack):
        message_id = bot_stack.deliver_missed_call("0171 2345678")
        await bot_stack.graph.idle()
    (payload,) = change_notifications(bot_stack, message_id)
    graph_delay = 3.0
    bot_stack.graph.add_fault("delay", path="/users/", delay_ms=int(graph_delay * 1000))

    started = time.perf_counter()
    response = await post_webhook(bot_stack, payload)
    answered_after = time.perf_counter() - started
    print(f"webhook answered in {answered_after * 1000:.1f} ms while Graph took {graph_delay:.0f} s per request")

    assert response.status == 202
    assert answered_after < graph_delay
    assert await events_per_mail(bot_stack) == {}, "the mail is read after the answer, not before"
    bot_stack.graph.clear_faults()
    await bot_stack.settle()
    assert await events_per_mail(bot_stack) == {message_id: 1}


async def test_bot_answers_while_notifications_pour_in(bot_stack: BotStack) -> None:
    """Fifty notifications at once are all persisted and answered 202; every mail becomes one event."""
    with notifications_lost(bot_stack):
        message_ids = [bot_stack.deliver_missed_call(f"0171 23456{n:02d}") for n in range(50)]
        await bot_stack.graph.idle()
    payloads = [payload for message_id in message_ids for payload in change_notifications(bot_stack, message_id)]

    responses = await asyncio.gather(*(post_webhook(bot_stack, payload) for payload in payloads))
    assert {response.status for response in responses} == {202}
    await bot_stack.settle()
    assert await events_per_mail(bot_stack) == dict.fromkeys(message_ids, 1)


async def test_requests_someone_waits_on_are_counted_while_answered(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graph's notifications, Teams' activities and Placetel's calls: under a burst of them the workers step back."""
    ingress = bot_stack.services.ingress
    answering = ingress.answering
    counted: list[int] = []

    @contextlib.contextmanager
    def recording() -> Iterator[None]:
        with answering():
            counted.append(ingress.answering_now)
            yield

    monkeypatch.setattr(ingress, "answering", recording)
    assert (await post_webhook(bot_stack, {"value": [notification()]})).status == 202
    await bot_stack.message("hilfe")
    async with bot_stack.http.post(bot_stack.bot_url + NOTIFY_PATH, data=b"{}") as response:
        assert response.status < 500
    assert counted == [1, 1, 1]
    assert ingress.answering_now == 0
