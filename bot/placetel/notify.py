"""Placetel's Notify API (call webhooks): the signature, the payload and the endpoint that queues it.

Placetel POSTs every call event of the numbers it notifies for (``IncomingCall``, ``OutgoingCall``, ``CallAccepted``,
``HungUp``) form-encoded; integrations subscribed through the REST API receive JSON: both are accepted. Each request
carries ``X-PLACETEL-SIGNATURE``, the hex HMAC-SHA256 of the raw body with the shared secret (Settings → External
APIs), checked in constant time against the global secret and each line's own. The endpoint only verifies,
validates and persists the event as a job, then answers; the work happens in the job runner
(:mod:`bot.core.live_calls`). Unsigned or badly signed requests get 401, malformed ones 400, oversized ones 413, and
none of them changes anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from bot import metrics
from bot.clock import Clock, system_clock
from bot.core.ports import JobQueue
from bot.core.values import NotifyEvent
from bot.http_body import read_body

log = logging.getLogger(__name__)

NOTIFY_PATH = "/api/placetel/notify"
NOTIFY_JOB = "placetel.notify"
SIGNATURE_HEADER = "X-PLACETEL-SIGNATURE"
MAX_BODY_BYTES = 16 * 1024
"""A call event is a few hundred bytes; anything near this is not one."""
MAX_FIELDS = 40


def signature(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` with ``secret``, as Placetel computes ``X-PLACETEL-SIGNATURE``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verified_scopes(body: bytes, header: str, secrets: Mapping[str, str]) -> set[str]:
    """The scopes (line ids, or :data:`GLOBAL_SCOPE`) whose secret signed ``body``; each compared in constant time."""
    given = header.strip().lower().encode("ascii", "replace")
    return {
        scope
        for scope, secret in secrets.items()
        if secret and hmac.compare_digest(signature(secret, body).encode("ascii"), given)
    }


def _fields(raw: bytes, content_type: str) -> dict[str, Any] | str:
    """The body's fields, or the reason it has none."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if content_type == "application/json" or (not content_type and decoded.lstrip().startswith("{")):
        try:
            value = json.loads(decoded)
        except json.JSONDecodeError as exc:
            return f"body is not JSON: {exc.msg}"
        except RecursionError:
            return "body is not JSON: nested too deeply"
        if not isinstance(value, dict) or len(value) > MAX_FIELDS:
            return "a JSON object with the call event's fields is expected"
        return value
    if content_type not in ("", "application/x-www-form-urlencoded"):
        return f"unsupported content type {content_type!r}: form-encoded or JSON"
    try:
        pairs = urllib.parse.parse_qsl(decoded, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        return f"body is not form-encoded: {exc}"
    return dict(pairs)


def parse_event(raw: bytes, content_type: str) -> NotifyEvent | str:
    """The validated event, or the reason the body is not one."""
    fields = _fields(raw, content_type)
    if isinstance(fields, str):
        return fields
    try:
        return NotifyEvent.model_validate(fields)
    except ValidationError as exc:
        reason = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        return f"not a Placetel call event: {reason}"


def job_payload(event: NotifyEvent, scopes: set[str], received_at: datetime) -> dict[str, Any]:
    """What the job runner gets: the event, when it arrived (the webhook carries no time) and whom it may concern."""
    return {
        "event": event.model_dump(mode="json", by_alias=True),
        "received_at": received_at.isoformat(),
        "scopes": sorted(scopes),
    }


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def notify_handler(
    queue: JobQueue, secrets: Mapping[str, str], on_enqueued: Callable[[], None], clock: Clock = system_clock
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``POST /api/placetel/notify`` handler. ``secrets`` maps a scope (a line id or :data:`GLOBAL_SCOPE`) to
    its shared secret. A call arrives at the bot's ``clock`` (the sandbox's clock may be moved forward: a call
    stamped with the system's time instead came hours before the mail that reports it)."""
    configured = {scope: secret for scope, secret in secrets.items() if secret}

    def refuse(status: int, outcome: str, reason: str) -> web.Response:
        metrics.PLACETEL_WEBHOOKS.labels(outcome).inc()
        return _error(status, reason)

    async def handle(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return refuse(413, "too_large", f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            raw = await read_body(request, MAX_BODY_BYTES)
        except (ConnectionError, ValueError) as exc:
            return refuse(400, "malformed", f"unreadable body: {exc}")
        if raw is None:
            return refuse(413, "too_large", f"body larger than {MAX_BODY_BYTES} bytes")
        if not configured:
            return refuse(401, "not_configured", "the Placetel Notify secret is not configured")
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            return refuse(401, "unsigned", f"missing {SIGNATURE_HEADER}")
        scopes = verified_scopes(raw, header, configured)
        if not scopes:
            log.warning("refused a Placetel call event with a wrong signature")
            return refuse(401, "bad_signature", f"{SIGNATURE_HEADER} does not match the body")
        event = parse_event(raw, request.content_type if request.headers.get("Content-Type") else "")
        if isinstance(event, str):
            return refuse(400, "malformed", event)
        try:
            await queue.enqueue(NOTIFY_JOB, job_payload(event, scopes, clock()), dedupe_key=event.dedupe_key)
        except Exception:
            log.exception("could not persist a Placetel call event")
            return refuse(503, "not_persisted", "could not persist the call event")
        metrics.PLACETEL_WEBHOOKS.labels("accepted").inc()
        on_enqueued()
        return web.json_response({"status": "accepted"}, status=200)

    return handle
