"""Bot Connector stand-in: the Teams flavour of the Bot Framework REST API v3 the bot posts to.

Routes (the swagger's templates, conversation ids URL-encoded since Teams ids hold ``:``, ``@`` and ``;``):
  POST /v3/conversations                                   create (new channel thread or 1:1 chat)
  POST /v3/conversations/{conversationId}/activities       send
  POST /v3/conversations/{conversationId}/activities/{id}  reply
  PUT  /v3/conversations/{conversationId}/activities/{id}  update
  GET  /v3/conversations/{conversationId}/members | /members/{memberId} | /pagedmembers
Every body is validated against the swagger (``sandbox.swagger``); a wrong shape answers 400 and is recorded
in ``violations``, which the test fixture asserts empty. Requests need a bearer token from the identity stand-in
for ``https://api.botframework.com``. Writes are rate-limited per bot per thread like Teams, and faults can be
injected. ``/_control/`` is a JSON API for the demo and for tests in other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import ssl
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from sandbox.identity import BOT_FRAMEWORK_AUDIENCE, AccessTokenValidator, start_site
from sandbox.swagger import DEFAULT_SWAGGER_PATH, SwaggerContract
from sandbox.tls import TlsMaterial

log = logging.getLogger(__name__)

# Teams per-bot-per-thread limits: (requests, window seconds).
TEAMS_THREAD_LIMITS: tuple[tuple[int, float], ...] = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
MAX_ACTIVITY_BYTES = 100 * 1024
_CONVERSATION = "/v3/conversations/{conversationId:[^/]+}"
_FAULT_CODES = {429: "TooManyRequests", 412: "PreconditionFailed", 502: "BadGateway"}


@dataclass
class RecordedActivity:
    """One activity the bot created; ``versions`` holds every body it was sent or updated with, newest last."""

    conversation_id: str
    activity_id: str
    operation: str  # "create" | "send" | "reply"
    reply_to_id: str | None
    app_id: str | None
    versions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current(self) -> dict[str, Any]:
        return self.versions[-1]


@dataclass(frozen=True)
class ContractViolation:
    method: str
    path: str
    definition: str
    errors: list[str]


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int


@dataclass
class FaultRule:
    """Answer ``status`` to the next ``count`` API requests, or to each with probability ``rate``."""

    status: int
    count: int | None = None
    rate: float | None = None
    retry_after: int = 1
    hits: int = 0
    """How many requests this rule has faulted so far."""

    def __post_init__(self) -> None:
        if self.status not in _FAULT_CODES:
            raise ValueError(f"unsupported fault status {self.status}")
        if (self.count is None) == (self.rate is None):
            raise ValueError("give exactly one of count and rate")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")


class ThreadRateLimiter:
    """Sliding-window limits per key; ``acquire`` returns None when allowed, else seconds to wait."""

    def __init__(
        self, limits: Iterable[tuple[int, float]] = TEAMS_THREAD_LIMITS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = tuple(limits)
        self._clock = clock
        self._longest = max(window for _, window in self.limits)
        self._history: dict[Any, deque[float]] = defaultdict(deque)

    def acquire(self, key: Any) -> float | None:
        now = self._clock()
        history = self._history[key]
        while history and history[0] <= now - self._longest:
            history.popleft()
        waits = []
        for limit, window in self.limits:
            in_window = [t for t in history if t > now - window]
            if len(in_window) >= limit:
                waits.append(in_window[-limit] + window - now)
        if waits:
            return max(waits)
        history.append(now)
        return None

    def reset(self) -> None:
        self._history.clear()


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An ``ErrorResponse`` as the swagger defines it."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


Handler = Callable[[web.Request, dict[str, Any], str | None], Awaitable[web.Response]]


class ConnectorStandIn:
    def __init__(
        self,
        token_validator: AccessTokenValidator | None,
        *,
        swagger: SwaggerContract | None = None,
        limiter: ThreadRateLimiter | None = None,
        seed: int = 0,
        latency_s: float = 0.0,
    ) -> None:
        """``token_validator=None`` turns bearer checks off (only for a sandbox bot running without auth);
        ``latency_s`` delays every API answer, standing in for a real network round trip."""
        self.token_validator = token_validator
        self.latency_s = latency_s
        self.swagger = swagger or SwaggerContract.load(DEFAULT_SWAGGER_PATH)
        self.limiter = limiter or ThreadRateLimiter()
        self._random = random.Random(seed)
        self.conversations: dict[str, list[RecordedActivity]] = defaultdict(list)
        self.members: dict[str, list[dict[str, Any]]] = {}
        self.violations: list[ContractViolation] = []
        self.case_folded: list[str] = []
        self.requests: list[RequestRecord] = []
        self.faults: list[FaultRule] = []
        self._last_message_id = 0
        self._runner: web.AppRunner | None = None
        self.service_url = ""

    # --- Python accessors -------------------------------------------------------------------------------

    def activities(self, conversation_id: str) -> list[RecordedActivity]:
        return list(self.conversations.get(conversation_id, []))

    def find(self, activity_id: str) -> RecordedActivity:
        for records in self.conversations.values():
            for record in records:
                if record.activity_id == activity_id:
                    return record
        raise KeyError(activity_id)

    def inject(self, rule: FaultRule) -> None:
        self.faults.append(rule)

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """The channel's root messages as Graph lists them (``chatMessage``, newest first): what the Graph stand-in
        serves at ``/teams/{id}/channels/{id}/messages``. Attachments carry their content as a JSON string."""
        roots = [
            record
            for conversation_id, records in self.conversations.items()
            if conversation_id.startswith(f"{channel_id};messageid=")
            for record in records
            if record.operation == "create"
        ]
        return [_graph_message(record) for record in sorted(roots, key=lambda r: int(r.activity_id), reverse=True)]

    def set_members(self, conversation_id: str, members: list[dict[str, Any]]) -> None:
        """Members of a conversation (a channel's members serve all its threads)."""
        self.members[_base(conversation_id)] = members

    def reset(self) -> None:
        self.conversations.clear()
        self.members.clear()
        self.violations.clear()
        self.case_folded.clear()
        self.requests.clear()
        self.faults.clear()
        self.limiter.reset()

    # --- server -----------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_request], client_max_size=4 * MAX_ACTIVITY_BYTES)
        api = (
            ("POST", "/v3/conversations", self._create),
            ("POST", f"{_CONVERSATION}/activities", self._send),
            ("POST", f"{_CONVERSATION}/activities/{{activityId}}", self._reply),
            ("PUT", f"{_CONVERSATION}/activities/{{activityId}}", self._update),
            ("GET", f"{_CONVERSATION}/members", self._members),
            ("GET", f"{_CONVERSATION}/members/{{memberId}}", self._member),
            ("GET", f"{_CONVERSATION}/pagedmembers", self._paged_members),
        )
        for method, route, handler in api:
            app.router.add_route(method, route, self._api(method, route, handler))
        app.router.add_get("/_control/conversations", self._control_conversations)
        app.router.add_get("/_control/violations", self._control_violations)
        app.router.add_get("/_control/requests", self._control_requests)
        app.router.add_post("/_control/reset", self._control_reset)
        app.router.add_post("/_control/faults", self._control_add_fault)
        app.router.add_delete("/_control/faults", self._control_clear_faults)
        app.router.add_put("/_control/members/{conversationId}", self._control_members)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, tls: TlsMaterial | None = None) -> str:
        """Serve on ``host:port``; returns the serviceUrl to put into activities."""
        self._runner, bound = await start_site(self.app(), tls, host, port)
        self.service_url = f"{'https' if tls else 'http'}://{host}:{bound}/"
        return self.service_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record_request(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if request.path.startswith("/v3/"):
            self.requests.append(RequestRecord(request.method, request.path, response.status))
        return response

    def _api(self, method: str, route: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Auth, swagger validation, size limit, faults and rate limits around an API handler."""
        template = route.replace(":[^/]+", "")
        definition = self.swagger.body_definition(template, method)

        async def guarded(request: web.Request) -> web.Response:
            app_id: str | None = None
            if self.token_validator is not None:
                scheme, _, token = request.headers.get("Authorization", "").partition(" ")
                claims = self.token_validator.claims(token) if scheme.lower() == "bearer" else None
                if claims is None:
                    return web.json_response({"message": "Authorization has been denied for this request."}, status=401)
                app_id = claims.get("appid")
            body: dict[str, Any] = {}
            if definition is not None:
                raw = await request.read()
                try:
                    sent = json.loads(raw)
                except ValueError:
                    return self._violation(request, definition, ["body is not JSON"])
                result = self.swagger.validate(definition, sent)
                self.case_folded.extend(result.case_folded)
                errors = result.errors + _service_rules(definition, result.body)
                if errors:
                    return self._violation(request, definition, errors)
                body = result.body
                if len(raw) > MAX_ACTIVITY_BYTES:
                    return _error(413, "MessageSizeTooBig", "Activity body too large")
            fault = self._next_fault()
            if fault is not None:
                return _error(
                    fault.status,
                    _FAULT_CODES[fault.status],
                    "Injected fault",
                    {"Retry-After": str(fault.retry_after)} if fault.status == 429 else None,
                )
            if method != "GET":
                thread = request.match_info.get("conversationId") or _thread_of_create(body)
                wait = self.limiter.acquire((app_id, thread))
                if wait is not None:
                    return _error(
                        429,
                        "TooManyRequests",
                        "Too many requests for this thread",
                        {"Retry-After": str(max(1, math.ceil(wait)))},
                    )
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            return await handler(request, body, app_id)

        return guarded

    def _violation(self, request: web.Request, definition: str, errors: list[str]) -> web.Response:
        self.violations.append(ContractViolation(request.method, request.path, definition, errors))
        log.warning("connector contract violation on %s %s: %s", request.method, request.path, errors)
        return _error(400, "BadArgument", "; ".join(errors))

    def _next_fault(self) -> FaultRule | None:
        for rule in self.faults:
            if rule.count is not None:
                rule.count -= 1
                if rule.count == 0:
                    self.faults.remove(rule)
            elif rule.rate is None or self._random.random() >= rule.rate:
                continue
            rule.hits += 1
            return rule
        return None

    def _new_message_id(self) -> str:
        """Teams channel message ids are epoch milliseconds; keep them unique and increasing."""
        self._last_message_id = max(self._last_message_id + 1, int(time.time() * 1000))
        return str(self._last_message_id)

    def _record(
        self, conversation_id: str, body: dict[str, Any], operation: str, reply_to: str | None, app_id: str | None
    ) -> RecordedActivity:
        activity_id = self._new_message_id()
        stored = {**body, "id": activity_id}
        record = RecordedActivity(conversation_id, activity_id, operation, reply_to, app_id, [stored])
        self.conversations[conversation_id].append(record)
        return record

    # --- API handlers ---------------------------------------------------------------------------------

    async def _create(self, request: web.Request, body: dict[str, Any], app_id: str | None) -> web.Response:
        channel_id = (body.get("channelData") or {}).get("channel", {}).get("id")
        activity = body.get("activity")
        if channel_id:
            if not body.get("isGroup") or activity is None:
                return _error(400, "BadArgument", "A channel thread needs isGroup=true and an activity")
            activity_id = self._new_message_id()
            conversation_id = f"{channel_id};messageid={activity_id}"
            record = RecordedActivity(
                conversation_id, activity_id, "create", None, app_id, [{**activity, "id": activity_id}]
            )
            self.conversations[conversation_id].append(record)
            return web.json_response(
                {"id": conversation_id, "activityId": activity_id, "serviceUrl": self.service_url}, status=201
            )
        members = body.get("members") or []
        if body.get("isGroup") or len(members) != 1:
            return _error(400, "BadArgument", "Incorrect conversation creation parameters")
        conversation_id = "a:" + uuid.uuid5(uuid.NAMESPACE_URL, f"{app_id}/{members[0].get('id')}").hex
        self.conversations.setdefault(conversation_id, [])
        response: dict[str, Any] = {"id": conversation_id, "serviceUrl": self.service_url}
        if activity is not None:
            response["activityId"] = self._record(conversation_id, activity, "create", None, app_id).activity_id
        return web.json_response(response, status=201)

    async def _send(self, request: web.Request, body: dict[str, Any], app_id: str | None) -> web.Response:
        conversation_id = request.match_info["conversationId"]
        reply_to = conversation_id.partition(";messageid=")[2] or None
        record = self._record(conversation_id, body, "send", reply_to, app_id)
        return web.json_response({"id": record.activity_id}, status=201)

    async def _reply(self, request: web.Request, body: dict[str, Any], app_id: str | None) -> web.Response:
        conversation_id = request.match_info["conversationId"]
        record = self._record(conversation_id, body, "reply", request.match_info["activityId"], app_id)
        return web.json_response({"id": record.activity_id}, status=201)

    async def _update(self, request: web.Request, body: dict[str, Any], _app_id: str | None) -> web.Response:
        conversation_id, activity_id = request.match_info["conversationId"], request.match_info["activityId"]
        for cid, records in self.conversations.items():
            if _base(cid) != _base(conversation_id):
                continue
            for record in records:
                if record.activity_id == activity_id:
                    record.versions.append({**body, "id": activity_id})
                    return web.json_response({"id": activity_id}, status=200)
        return _error(404, "NotFound", "The activity to update was not found")

    async def _members(self, request: web.Request, _body: dict[str, Any], _app_id: str | None) -> web.Response:
        return web.json_response(self.members.get(_base(request.match_info["conversationId"]), []))

    async def _member(self, request: web.Request, _body: dict[str, Any], _app_id: str | None) -> web.Response:
        """One member by id or AAD object id (Teams accepts either); a team's id serves as its conversation id."""
        wanted = request.match_info["memberId"]
        for member in self.members.get(_base(request.match_info["conversationId"]), []):
            if wanted in (member.get("id"), member.get("aadObjectId")):
                return web.json_response(member)
        return _error(404, "MemberNotFoundInConversation", "The member was not found in the conversation")

    async def _paged_members(self, request: web.Request, _body: dict[str, Any], _app_id: str | None) -> web.Response:
        members = self.members.get(_base(request.match_info["conversationId"]), [])
        size = max(1, min(int(request.query.get("pageSize", "200")), 500))
        start = int(request.query.get("continuationToken") or 0)
        page: dict[str, Any] = {"members": members[start : start + size]}
        if start + size < len(members):
            page["continuationToken"] = str(start + size)
        return web.json_response(page)

    # --- control API ------------------------------------------------------------------------------------

    async def _control_conversations(self, _request: web.Request) -> web.Response:
        return web.json_response({cid: [asdict(r) for r in records] for cid, records in self.conversations.items()})

    async def _control_violations(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(v) for v in self.violations])

    async def _control_requests(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in self.requests])

    async def _control_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({})

    async def _control_add_fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            rule = FaultRule(int(body["status"]), body.get("count"), body.get("rate"), int(body.get("retryAfter", 1)))
        except (KeyError, ValueError, TypeError) as error:
            return _error(400, "BadArgument", str(error))
        self.inject(rule)
        return web.json_response(asdict(rule), status=201)

    async def _control_clear_faults(self, _request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({})

    async def _control_members(self, request: web.Request) -> web.Response:
        self.set_members(request.match_info["conversationId"], await request.json())
        return web.json_response({})


def _graph_message(record: RecordedActivity) -> dict[str, Any]:
    current = record.current
    created = datetime.fromtimestamp(int(record.activity_id) / 1000, UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": record.activity_id,
        "messageType": "message",
        "createdDateTime": created,
        "deletedDateTime": None,
        "from": {"application": {"id": record.app_id, "applicationIdentityType": "bot"}},
        "body": {"contentType": "html", "content": str(current.get("text") or "")},
        "attachments": [
            {
                "id": str(index),
                "contentType": attachment.get("contentType"),
                "content": json.dumps(attachment.get("content")),
            }
            for index, attachment in enumerate(current.get("attachments") or [])
        ],
    }


def _base(conversation_id: str) -> str:
    """The channel (or chat) a conversation id belongs to: Teams thread ids are ``<channel>;messageid=<root>``."""
    return conversation_id.partition(";")[0]


def _thread_of_create(body: dict[str, Any]) -> str:
    return str((body.get("channelData") or {}).get("channel", {}).get("id") or "new-conversation")


def _service_rules(definition: str, body: Any) -> list[str]:
    """Rules the service enforces beyond the swagger (which marks nothing as required)."""
    if definition == "Activity" and isinstance(body, dict) and not body.get("type"):
        return ["$.type: an activity needs a type"]
    return []


def conversation_url(service_url: str, conversation_id: str) -> str:
    """The URL of a conversation resource, with the id encoded as botbuilder's client encodes it."""
    return f"{service_url.rstrip('/')}/v3/conversations/{quote(conversation_id, safe='')}"


async def _fetch_validator(identity_url: str, trust_bundle: Path | None) -> AccessTokenValidator:
    ssl_context = ssl.create_default_context(cafile=str(trust_bundle)) if trust_bundle else True
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{identity_url.rstrip('/')}/common/discovery/v2.0/keys", ssl=ssl_context) as response,
    ):
        response.raise_for_status()
        return AccessTokenValidator(await response.json(), BOT_FRAMEWORK_AUDIENCE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--identity-url", help="base URL of the identity stand-in (its JWKS verifies tokens)")
    parser.add_argument("--trust-bundle", type=Path, help="CA bundle that trusts the identity stand-in")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a token (sandbox only)")
    parser.add_argument("--swagger", type=Path, default=DEFAULT_SWAGGER_PATH)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.no_auth and not args.identity_url:
        parser.error("--identity-url is required unless --no-auth is given")
    logging.basicConfig(level=logging.INFO)

    async def serve() -> None:
        validator = None if args.no_auth else await _fetch_validator(args.identity_url, args.trust_bundle)
        stand_in = ConnectorStandIn(validator, swagger=SwaggerContract.load(args.swagger), seed=args.seed)
        service_url = await stand_in.start(args.host, args.port)
        print(json.dumps({"service_url": service_url}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
