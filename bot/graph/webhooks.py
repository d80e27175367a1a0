"""Webhook endpoints for Graph change and lifecycle notifications.

Graph wants an answer within 3 s and retries, then drops slow endpoints: the handler only checks the clientState,
persists the notification as a job and answers 202. All Graph and Teams work happens later in the job runner.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from bot import metrics
from bot.graph.notifications import NotificationCollection
from bot.storage.interface import JobQueue

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
NOTIFICATION_JOB = "graph.notification"


def _validation_response(request: web.Request) -> web.Response | None:
    token = request.query.get("validationToken")
    if token is None:
        return None
    # text/plain, never HTML: the token is attacker-controlled and must not be interpreted by anything.
    return web.Response(
        status=200, text=token, content_type="text/plain", headers={"X-Content-Type-Options": "nosniff"}
    )


def notification_handler(
    queue: JobQueue, client_state: str, on_enqueued: Callable[[], None]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler for both the change and the lifecycle notification URL."""
    expected = client_state.encode()

    async def handle(request: web.Request) -> web.Response:
        validation = _validation_response(request)
        if validation is not None:
            return validation
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return web.json_response({"error": "body larger than 1 MiB"}, status=413)
        try:
            raw = await request.content.read(MAX_BODY_BYTES + 1)
        except (ConnectionError, ValueError) as exc:
            return web.json_response({"error": f"unreadable body: {exc}"}, status=400)
        if len(raw) > MAX_BODY_BYTES:
            return web.json_response({"error": "body larger than 1 MiB"}, status=413)
        try:
            payload = NotificationCollection.model_validate(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            metrics.NOTIFICATIONS.labels("malformed").inc()
            return web.json_response({"error": f"body is not JSON: {exc}"}, status=400)
        except ValidationError as exc:
            metrics.NOTIFICATIONS.labels("malformed").inc()
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            return web.json_response({"error": f"not a Graph notification collection: {reason}"}, status=400)

        accepted = 0
        for notification in payload.value:
            given = (notification.clientState or "").encode()
            if not hmac.compare_digest(given, expected):
                metrics.NOTIFICATIONS.labels("bad_client_state").inc()
                log.warning(
                    "ignored a notification with a wrong clientState (subscription %s)", notification.subscriptionId
                )
                continue
            try:
                await queue.enqueue(
                    NOTIFICATION_JOB,
                    notification.model_dump(mode="json", by_alias=True, exclude_none=True),
                    dedupe_key=notification.dedupe_key(),
                )
            except Exception:
                # 5xx only when the notification could not be persisted: Graph will redeliver it.
                log.exception("could not persist a notification")
                return web.json_response({"error": "could not persist the notification"}, status=503)
            accepted += 1
            metrics.NOTIFICATIONS.labels("accepted").inc()
        if accepted:
            on_enqueued()
        return web.Response(status=202)

    return handle
