"""Webhook endpoints for Graph change and lifecycle notifications.

Graph wants an answer within 3 s and retries, then drops slow endpoints: the handler only checks the clientState,
persists the notification as a job and answers 202. All Graph and Teams work happens later in the job runner, so
the answer never waits on either.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from bot import metrics
from bot.core.ports import JobQueue
from bot.graph.notifications import Notification, NotificationCollection
from bot.http_body import read_body

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
NOTIFICATION_JOB = "graph.notification"
_TOO_LARGE = "body larger than 1 MiB"


def _validation_response(token: str) -> web.Response:
    # text/plain with nosniff, never HTML: the token is attacker-controlled and must not be interpreted by anything.
    return web.Response(
        status=200, text=token, content_type="text/plain", headers={"X-Content-Type-Options": "nosniff"}
    )


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _parse(raw: bytes) -> NotificationCollection | str:
    """The validated collection, or the reason it is not one. pydantic parses the JSON itself (in one pass, half the
    cost of ``json.loads`` and validating the objects), nesting limited."""
    try:
        return NotificationCollection.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            detail = errors[0]["msg"].removeprefix("Invalid JSON: ")
            return f"body is not JSON: {'nested too deeply' if 'recursion limit' in detail else detail}"
        reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return f"not a Graph notification collection: {reason}"


def _client_state_matches(notification: Notification, expected: bytes) -> bool:
    return hmac.compare_digest((notification.clientState or "").encode(), expected)


def notification_handler(
    queue: JobQueue, client_state: str, on_enqueued: Callable[[], None]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler for both the change and the lifecycle notification URL."""
    expected = client_state.encode()

    async def handle(request: web.Request) -> web.Response:
        token = request.query.get("validationToken")
        if token is not None:
            return _validation_response(token)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _error(413, _TOO_LARGE)
        try:
            raw = await read_body(request, MAX_BODY_BYTES)
        except (ConnectionError, ValueError) as exc:
            return _error(400, f"unreadable body: {exc}")
        if raw is None:
            return _error(413, _TOO_LARGE)
        parsed = _parse(raw)
        if isinstance(parsed, str):
            metrics.NOTIFICATIONS.labels("malformed").inc()
            return _error(400, parsed)

        accepted = 0
        for notification in parsed.value:
            if not _client_state_matches(notification, expected):
                # Answered 202 all the same: a non-2xx answer would only make Graph send it again.
                metrics.NOTIFICATIONS.labels("bad_client_state").inc()
                log.warning(
                    "ignored a notification with a wrong clientState (subscription %r)", notification.subscriptionId
                )
                continue
            try:
                await queue.enqueue(
                    NOTIFICATION_JOB,
                    # The clientState is a secret and has served its purpose: it is not stored.
                    notification.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"clientState"}),
                    dedupe_key=notification.dedupe_key(),
                )
            except Exception:
                # 5xx only when the notification could not be persisted: Graph will redeliver it.
                log.exception("could not persist a notification")
                return _error(503, "could not persist the notification")
            accepted += 1
            metrics.NOTIFICATIONS.labels("accepted").inc()
        if accepted:
            on_enqueued()
        return web.Response(status=202)

    return handle
