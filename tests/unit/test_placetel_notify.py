"""Placetel's Notify webhook: the signature (Placetel's published example), form and JSON bodies, refusals that
change nothing, durable queueing and de-duplication per call and event."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.ports import Job
from bot.core.values import GLOBAL_SCOPE, HangUpType, NotifyEventName
from bot.placetel.notify import (
    MAX_BODY_BYTES,
    NOTIFY_JOB,
    SIGNATURE_HEADER,
    notify_handler,
    parse_event,
    signature,
    verified_scopes,
)
from bot.storage.sql_store import SqlStore

# The example of Placetel's call-control-notify-api README: this body signed with this secret gives this digest.
PUBLISHED_SECRET = "12345"
PUBLISHED_BODY = (
    b"call_id=4a4cbb39578170aed9a2761a7bec8c7e704a541f52291ef603d6f5f152980c3c"
    b"&event=CallAccepted&from=0123456789&to=0987654321"
)
PUBLISHED_SIGNATURE = "c4f823c5b8806432fe2b83b1fc2ee714422e0cdfb4b5129152a7d0bbcd7792d0"

SECRET = "global-notify-secret"
LINE_SECRET = "nord-notify-secret"
FORM = "application/x-www-form-urlencoded"
CALL_ID = "4a4cbb39578170aed9a2761a7bec8c7e704a541f52291ef603d6f5f152980c3c"


def form_body(**fields: str | int) -> bytes:
    return urllib.parse.urlencode({key.rstrip("_"): str(value) for key, value in fields.items()}).encode()


HUNG_UP = form_body(event="HungUp", call_id=CALL_ID, from_="01712345678", to="0301234500", type="missed", duration=0)


def test_placetels_published_example_verifies() -> None:
    assert signature(PUBLISHED_SECRET, PUBLISHED_BODY) == PUBLISHED_SIGNATURE
    assert verified_scopes(PUBLISHED_BODY, PUBLISHED_SIGNATURE, {GLOBAL_SCOPE: PUBLISHED_SECRET}) == {GLOBAL_SCOPE}
    assert verified_scopes(PUBLISHED_BODY, PUBLISHED_SIGNATURE.upper(), {GLOBAL_SCOPE: PUBLISHED_SECRET}) == {
        GLOBAL_SCOPE
    }


@pytest.mark.parametrize("position", range(len(PUBLISHED_BODY)))
def test_changing_any_byte_of_the_body_fails(position: int) -> None:
    changed = bytearray(PUBLISHED_BODY)
    changed[position] ^= 0x01
    assert verified_scopes(bytes(changed), PUBLISHED_SIGNATURE, {GLOBAL_SCOPE: PUBLISHED_SECRET}) == set()


@pytest.mark.parametrize("position", range(len(PUBLISHED_SIGNATURE)))
def test_changing_any_character_of_the_signature_fails(position: int) -> None:
    digit = PUBLISHED_SIGNATURE[position]
    other = "0" if digit != "0" else "1"
    changed = PUBLISHED_SIGNATURE[:position] + other + PUBLISHED_SIGNATURE[position + 1 :]
    assert verified_scopes(PUBLISHED_BODY, changed, {GLOBAL_SCOPE: PUBLISHED_SECRET}) == set()


def test_another_secret_or_an_empty_one_does_not_verify() -> None:
    assert verified_scopes(PUBLISHED_BODY, PUBLISHED_SIGNATURE, {GLOBAL_SCOPE: "12346", "nord": ""}) == set()
    assert verified_scopes(PUBLISHED_BODY, signature("", PUBLISHED_BODY), {GLOBAL_SCOPE: ""}) == set()


def test_a_line_secret_speaks_for_its_line_only() -> None:
    secrets = {GLOBAL_SCOPE: SECRET, "nord": LINE_SECRET}
    assert verified_scopes(HUNG_UP, signature(LINE_SECRET, HUNG_UP), secrets) == {"nord"}
    assert verified_scopes(HUNG_UP, signature(SECRET, HUNG_UP), secrets) == {GLOBAL_SCOPE}


def test_form_and_json_bodies_give_the_same_event() -> None:
    fields = {"event": "HungUp", "call_id": CALL_ID, "from": "anonymous", "to": "0301234500", "type": "cancelled"}
    from_form = parse_event(urllib.parse.urlencode(fields | {"duration": "0"}).encode(), FORM)
    from_json = parse_event(json.dumps(fields | {"duration": 0}).encode(), "application/json")
    assert from_form == from_json
    assert not isinstance(from_form, str)
    assert (from_form.event, from_form.from_, from_form.type) == (
        NotifyEventName.HUNG_UP,
        "anonymous",
        HangUpType.CANCELED,
    )


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"event=HungUp", FORM, "call_id"),
        (form_body(event="Exploded", call_id=CALL_ID), FORM, "event"),
        (form_body(event="HungUp", call_id="a b;drop"), FORM, "call_id"),
        (form_body(event="HungUp", call_id=CALL_ID, duration=-3), FORM, "duration"),
        (form_body(event="HungUp", call_id=CALL_ID, type="exploded"), FORM, "type"),
        (b"\xff\xfe", FORM, "UTF-8"),
        (b"{not json", "application/json", "not JSON"),
        (b"[1, 2]", "application/json", "JSON object"),
        (b"a=1&&b", FORM, "form-encoded"),
        (b"<xml/>", "text/xml", "content type"),
        (b"[" * 5000 + b"]" * 5000, "application/json", "nested too deeply"),
    ],
    ids=[
        "no-call-id",
        "unknown-event",
        "odd-call-id",
        "negative-duration",
        "unknown-type",
        "not-utf8",
        "broken-json",
        "json-list",
        "broken-form",
        "xml",
        "deep-json",
    ],
)
def test_malformed_bodies_say_why(body: bytes, content_type: str, reason: str) -> None:
    parsed = parse_event(body, content_type)
    assert isinstance(parsed, str) and reason in parsed


# The endpoint --------------------------------------------------------------------------------------------------


async def queued(store: SqlStore) -> list[Job]:
    return await store.jobs.lease("test", [NOTIFY_JOB], timedelta(minutes=1), limit=100)


@pytest.fixture
async def endpoint(store: SqlStore) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    app.router.add_post("/notify", notify_handler_for(store))
    async with TestClient(TestServer(app)) as client:
        yield client


def notify_handler_for(
    store: SqlStore, secrets: dict[str, str] | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    scoped = secrets if secrets is not None else {GLOBAL_SCOPE: SECRET, "nord": LINE_SECRET}
    return notify_handler(store.jobs, scoped, lambda: None)


async def test_a_signed_form_event_is_queued_with_its_arrival_and_scope(
    endpoint: TestClient[web.Request, web.Application], store: SqlStore
) -> None:
    response = await endpoint.post(
        "/notify", data=HUNG_UP, headers={"Content-Type": FORM, SIGNATURE_HEADER: signature(SECRET, HUNG_UP)}
    )
    assert response.status == 200, await response.text()
    (job,) = await queued(store)
    assert job.payload["event"]["from"] == "01712345678" and job.payload["event"]["type"] == "missed"
    assert job.payload["scopes"] == [GLOBAL_SCOPE]
    assert job.payload["received_at"].endswith("+00:00")
    assert job.dedupe_key == f"placetel:{CALL_ID}:HungUp"


async def test_a_signed_json_event_is_queued(
    endpoint: TestClient[web.Request, web.Application], store: SqlStore
) -> None:
    body = json.dumps(
        {
            "event": "OutgoingCall",
            "call_id": CALL_ID,
            "from": "0301234500",
            "to": "01712345678",
            "peer": "7777abcdefg@fpbx.de",
        }
    ).encode()
    response = await endpoint.post(
        "/notify",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature(LINE_SECRET, body)},
    )
    assert response.status == 200, await response.text()
    (job,) = await queued(store)
    assert (job.payload["event"]["peer"], job.payload["scopes"]) == ("7777abcdefg@fpbx.de", ["nord"])


async def test_a_redelivered_event_is_queued_once(
    endpoint: TestClient[web.Request, web.Application], store: SqlStore
) -> None:
    headers = {"Content-Type": FORM, SIGNATURE_HEADER: signature(SECRET, HUNG_UP)}
    for _ in range(3):
        assert (await endpoint.post("/notify", data=HUNG_UP, headers=headers)).status == 200
    other_event = form_body(event="IncomingCall", call_id=CALL_ID, from_="01712345678", to="0301234500")
    headers = {"Content-Type": FORM, SIGNATURE_HEADER: signature(SECRET, other_event)}
    assert (await endpoint.post("/notify", data=other_event, headers=headers)).status == 200
    assert sorted(job.dedupe_key or "" for job in await queued(store)) == [
        f"placetel:{CALL_ID}:HungUp",
        f"placetel:{CALL_ID}:IncomingCall",
    ]


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (HUNG_UP, {"Content-Type": FORM}, 401, SIGNATURE_HEADER),
        (HUNG_UP, {"Content-Type": FORM, SIGNATURE_HEADER: "0" * 64}, 401, "does not match"),
        (HUNG_UP, {"Content-Type": FORM, SIGNATURE_HEADER: signature("guessed", HUNG_UP)}, 401, "does not match"),
        (HUNG_UP + b"&x=1", {"Content-Type": FORM, SIGNATURE_HEADER: signature(SECRET, HUNG_UP)}, 401, "match"),
        (b"event=HungUp", {"Content-Type": FORM, SIGNATURE_HEADER: signature(SECRET, b"event=HungUp")}, 400, "call_id"),
        (b"x" * (MAX_BODY_BYTES + 1), {"Content-Type": FORM}, 413, "larger"),
    ],
    ids=["unsigned", "zero-signature", "wrong-secret", "body-changed", "malformed", "oversized"],
)
async def test_refused_requests_get_a_reason_and_change_nothing(
    endpoint: TestClient[web.Request, web.Application],
    store: SqlStore,
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    response = await endpoint.post("/notify", data=body, headers=headers)
    assert response.status == status
    assert reason in (await response.json())["error"]
    assert await queued(store) == []
    assert (await store.jobs.depth())["pending"] == 0


async def test_an_oversized_chunked_body_gets_413(
    endpoint: TestClient[web.Request, web.Application], store: SqlStore
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b"x" * 1024

    response = await endpoint.post("/notify", data=chunks(), headers={"Content-Type": FORM})
    assert response.status == 413
    assert await queued(store) == []


async def test_without_any_secret_everything_is_refused(store: SqlStore) -> None:
    app = web.Application()
    app.router.add_post("/notify", notify_handler_for(store, {GLOBAL_SCOPE: ""}))
    async with TestClient(TestServer(app)) as client:
        response = await client.post(
            "/notify", data=HUNG_UP, headers={"Content-Type": FORM, SIGNATURE_HEADER: signature("", HUNG_UP)}
        )
        assert response.status == 401
        assert "not configured" in (await response.json())["error"]
    assert await queued(store) == []


# Anything at all ------------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELD_VALUES = st.one_of(st.text(max_size=300), st.integers(), st.none(), st.lists(st.integers(), max_size=3))
FIELDS = st.dictionaries(
    st.sampled_from(["event", "call_id", "from", "to", "direction", "peer", "type", "duration", "x"]), FIELD_VALUES
)


@FUZZ
@given(body=st.binary(max_size=2000), content_type=st.sampled_from([FORM, "application/json", "", "text/plain"]))
def test_any_bytes_parse_to_an_event_or_a_reason(body: bytes, content_type: str) -> None:
    parsed = parse_event(body, content_type)
    assert isinstance(parsed, str) or parsed.call_id


@FUZZ
@given(fields=FIELDS, as_json=st.booleans())
def test_any_fields_parse_to_an_event_or_a_reason(fields: dict[str, object], as_json: bool) -> None:
    if as_json:
        body, content_type = json.dumps(fields).encode(), "application/json"
    else:
        body, content_type = urllib.parse.urlencode({k: str(v) for k, v in fields.items()}).encode(), FORM
    parsed = parse_event(body, content_type)
    if not isinstance(parsed, str):
        assert parsed.event.value == fields["event"] and parsed.duration >= 0
