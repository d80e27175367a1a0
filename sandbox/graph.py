"""Microsoft Graph stand-in: the mail, subscription and delta slice of Graph v1.0 the bot uses.

Serves `<base_url>/v1.0/...` for msgraph-sdk and a JSON control API under `<base_url>/_control/` for tests and the
demo. `docs/stand-ins-graph.md` lists the Microsoft behaviour copied and what is not modelled.
Run standalone with `python -m sandbox.graph --port N --mailbox pool@example.com`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import random
import re
import signal
import ssl
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import jwt
from aiohttp import web

from sandbox.graph_directory import DIRECTORY_KEY, PeopleDirectory, contacts_key
from sandbox.graph_model import (
    ATTACHMENT_PROPERTIES,
    MESSAGE_PROPERTIES,
    Attachment,
    GraphError,
    Mailbox,
    Message,
    SyncState,
    apply_message_changes,
    apply_select,
    authentication_results,
    parse_expand,
    parse_flag,
    parse_message_patch,
    parse_select,
    utcnow,
)
from sandbox.graph_subscriptions import (
    LIFECYCLE_EVENTS,
    Notifier,
    Subscription,
    change_notification,
    lifecycle_notification,
    parse_expiration,
    parse_subscription_request,
    resource_mailbox_key,
)

log = logging.getLogger(__name__)

TokenValidator = Callable[[str], bool]
FAULT_KINDS = ("429", "503", "403", "delay", "drop")
DEFAULT_PAGE_SIZE = 10  # Graph's default page size for message collections
MAX_PAGE_SIZE = 1000  # the largest odata.maxpagesize Graph honours for messages; larger asks get this
RECORDED_HEADERS = ("prefer", "client-request-id", "if-match", "content-type", "user-agent")
_SEGMENT_KEY = re.compile(r"^(?P<name>[^(]+)\('(?P<key>[^']*)'\)$")
_UNKNOWN_APP_ID = "00000000-0000-0000-0000-000000000000"
_APP_ID = web.RequestKey("app_id", str)


@dataclass
class FaultRule:
    """Answer matching requests (path regex, optional method) with a fault at `rate`; `count` limits uses."""

    kind: str
    rate: float = 1.0
    path: str = ".*"
    method: str | None = None
    retry_after: int = 1
    delay_ms: int = 0
    count: int | None = None
    after: int = 0
    """Let this many matching requests through first (a fault on the third delta page, say)."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    hits: int = 0
    """How many requests this rule has faulted so far."""

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        return (self.method is None or self.method.upper() == method) and re.search(self.path, path) is not None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int | None = None


def odata_error(status: int, code: str, message: str, request_id: str, client_request_id: str) -> web.Response:
    """Graph's error body: error{code, message, innerError{date, request-id, client-request-id}}."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": utcnow().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    return web.json_response(body, status=status)


def _segments(raw_path: str) -> list[str]:
    """Split an OData path; `name('key')` becomes two segments, `delta()` and `microsoft.graph.` are dropped."""
    parts: list[str] = []
    for raw in raw_path.strip("/").split("/"):
        segment = unquote(raw)
        match = _SEGMENT_KEY.match(segment)
        if match:
            parts.extend([match.group("name"), match.group("key")])
            continue
        segment = segment.removeprefix("microsoft.graph.").removesuffix("()")
        parts.append(segment)
    return parts


def _application_id(token: str) -> str:
    """The caller's app id from the token (display only; validation is the validator's job)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return _UNKNOWN_APP_ID
    return str(claims.get("appid") or claims.get("azp") or _UNKNOWN_APP_ID)


def _roles(token: str) -> set[str]:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return set()
    return {str(role) for role in claims.get("roles") or []}


ChannelMessages = Callable[[str], list[dict[str, Any]]]
"""A team's channel messages by channel id, in Graph's ``chatMessage`` shape."""

GROUP_READ_ROLES = frozenset({"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"})
"""Application permissions that allow reading a group's owners."""


def _preferences(request: web.Request) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for header in request.headers.getall("Prefer", []):
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            if name:
                prefs[name.strip().lower()] = value.strip().strip('"')
    return prefs


def _page_size(prefs: dict[str, str]) -> int:
    raw = prefs.get("odata.maxpagesize")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or int(raw) < 1:
        raise GraphError(400, "ErrorInvalidRequest", f"Invalid odata.maxpagesize preference '{raw}'.")
    return min(int(raw), MAX_PAGE_SIZE)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc


class _ConnectionDropped(Exception):
    """Fault injection: close the connection without answering."""


class GraphStandIn:
    """A local Graph v1.0 server for mail, subscriptions and delta (see module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        token_validator: TokenValidator | None = None,
        mailboxes: Iterable[str] = (),
        *,
        seed: int = 0,
        tenant_id: str = "f00dfeed-0000-4000-8000-000000000001",
        max_concurrency: int = 4,
        throttle_retry_after: int = 1,
        max_subscription_minutes: int = 10080,
        notification_retry_delays: Sequence[float] = (0.5, 1.0, 2.0),
        notification_timeout_s: float = 3.0,
        notification_ssl_context: ssl.SSLContext | None = None,
        expiry_check_interval_s: float = 0.5,
        latency_s: float = 0.0,
    ) -> None:
        """``latency_s`` delays every Graph API answer, standing in for a real network round trip."""
        self.host = host
        self.latency_s = latency_s
        self.port = port
        self._ssl_context = ssl_context
        self._token_validator = token_validator
        self.tenant_id = tenant_id
        self._max_concurrency = max_concurrency
        self._throttle_retry_after = throttle_retry_after
        self._max_subscription_minutes = max_subscription_minutes
        self._expiry_check_interval_s = expiry_check_interval_s
        self._random = random.Random(seed)
        self._notifier = Notifier(notification_ssl_context, tuple(notification_retry_delays), notification_timeout_s)
        self._mailboxes: dict[str, Mailbox] = {}
        self._group_owners_by_id: dict[str, list[str]] = {}
        self._teams: dict[str, ChannelMessages] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._sync_states: dict[str, SyncState] = {}
        self.people = PeopleDirectory()
        self._faults: list[FaultRule] = []
        self._requests: list[RecordedRequest] = []
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # notification deliveries in flight
        self._expiry_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        for address in mailboxes:
            self.add_mailbox(address)

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """Scheme, host and bound port; msgraph-sdk's request adapter wants `base_url + "/v1.0"`."""
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._notifier.start()
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/v1.0/{tail:.*}", self._graph_entry)
        self._add_control_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._expiry_task = asyncio.create_task(self._expire_subscriptions_forever())
        log.info("Graph stand-in listening on %s", self.base_url)

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._expiry_task] if self._expiry_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._notifier.close()

    async def idle(self) -> None:
        """Wait until every notification delivery started so far has finished (for tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run in the background on the stand-in's loop, also when called from another thread."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("Graph stand-in is not started")

        def create() -> None:
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            create()
        else:
            loop.call_soon_threadsafe(create)

    async def _expire_subscriptions_forever(self) -> None:
        while True:
            await asyncio.sleep(self._expiry_check_interval_s)
            self._drop_expired_subscriptions()

    def _drop_expired_subscriptions(self) -> None:
        now = utcnow()
        for sub_id in [s.id for s in self._subscriptions.values() if s.expiration <= now]:
            log.info("subscription %s expired", sub_id)
            del self._subscriptions[sub_id]

    # ---------------------------------------------------------------- Python control API

    def add_mailbox(self, address: str, display_name: str | None = None) -> Mailbox:
        existing = self._find_mailbox(address)
        if existing is not None:
            return existing
        mailbox = Mailbox(address=address, display_name=display_name or address.split("@")[0])
        self._mailboxes[mailbox.user_id] = mailbox
        return mailbox

    @property
    def mailboxes(self) -> list[Mailbox]:
        return list(self._mailboxes.values())

    def mailbox(self, key: str) -> Mailbox:
        found = self._find_mailbox(key)
        if found is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        return found

    def deliver_mail(
        self,
        mailbox: str,
        subject: str,
        sender: str,
        body: str,
        *,
        body_type: str = "text",
        sender_name: str | None = None,
        attachments: Sequence[Attachment] = (),
        received: datetime | None = None,
        authentication: str | None = "pass",
        headers: Sequence[tuple[str, str]] = (),
        message_class: str = "IPM.Note",
    ) -> Message:
        """A new mail arrives in the Inbox; subscribers get a `created` notification.

        Like Exchange Online, the stand-in stamps its sender-authentication verdict (``authentication``: pass,
        fail, none) on top of the mail; ``headers`` are the sender's own headers below it (forged ones included).
        ``authentication=None`` stamps nothing, as for mail sent inside the organisation.
        """
        if body_type not in ("text", "html"):
            raise GraphError(400, "ErrorInvalidRequest", f"bodyType must be text or html, not '{body_type}'.")
        stamp = [authentication_results(sender, authentication)] if authentication is not None else []
        stamped = [*stamp, *((str(n), str(v)) for n, v in headers)]
        box = self.mailbox(mailbox)
        message = box.add(
            Message(
                subject=subject,
                sender_name=sender_name or sender,
                sender_address=sender,
                body=body,
                body_type=body_type,
                received=received or utcnow(),
                recipient_address=box.address,
                folder_id=box.inbox_id,
                attachments=list(attachments),
                headers=stamped,
                message_class=message_class,
            )
        )
        self._notify(box, message, "created")
        return message

    def upsert_contact(self, mailbox: str, contact: dict[str, Any]) -> dict[str, Any]:
        """Add or change an Outlook contact of ``mailbox`` (Graph contact properties; ``id`` picks the contact)."""
        return self.people.collection(contacts_key(self.mailbox(mailbox).user_id)).upsert(contact)

    def remove_contact(self, mailbox: str, contact_id: str) -> None:
        self.people.collection(contacts_key(self.mailbox(mailbox).user_id)).remove(contact_id)

    def upsert_user(self, user: dict[str, Any]) -> dict[str, Any]:
        """Add or change a user of the directory (Graph user properties)."""
        return self.people.collection(DIRECTORY_KEY).upsert(user)

    def remove_user(self, user_id: str) -> None:
        self.people.collection(DIRECTORY_KEY).remove(user_id)

    def set_flag(self, mailbox: str, message_id: str, flag: dict[str, Any]) -> Message:
        """A user sets or clears the flag in Outlook: same change and notification as a Graph PATCH."""
        return self._user_change(mailbox, message_id, {"flag": parse_flag(flag)})

    def set_read(self, mailbox: str, message_id: str, is_read: bool) -> Message:
        """A user opens the mail in Outlook, or marks it read or unread."""
        return self._user_change(mailbox, message_id, {"isRead": is_read})

    def _user_change(self, mailbox: str, message_id: str, changes: dict[str, Any]) -> Message:
        box = self.mailbox(mailbox)
        message = box.message(message_id)
        apply_message_changes(message, changes, box.next_sequence())
        self._notify(box, message, "updated")
        return message

    def delete_message(self, mailbox: str, message_id: str) -> None:
        box = self.mailbox(mailbox)
        message = box.message(message_id)
        box.delete(message_id)
        self._notify(box, message, "deleted")

    def fire_lifecycle(
        self, event: str, *, subscription_id: str | None = None, mailbox: str | None = None
    ) -> list[str]:
        """Post a lifecycle event to the subscriptions' lifecycleNotificationUrl; returns the subscription ids."""
        if event not in LIFECYCLE_EVENTS:
            raise GraphError(400, "InvalidRequest", f"Unknown lifecycle event '{event}'.")
        if subscription_id is not None:
            targets = [self._subscription(subscription_id)]
        elif mailbox is not None:
            user_id = self.mailbox(mailbox).user_id
            targets = [s for s in self._subscriptions.values() if s.mailbox_id == user_id]
        else:
            targets = list(self._subscriptions.values())
        for sub in targets:
            if sub.lifecycle_url:
                payload = {"value": [lifecycle_notification(sub, event, self.tenant_id)]}
                self._spawn(self._notifier.deliver(sub.lifecycle_url, payload))
            if event == "subscriptionRemoved":
                del self._subscriptions[sub.id]
        return [sub.id for sub in targets]

    def add_fault(
        self,
        kind: str,
        *,
        rate: float = 1.0,
        path: str = ".*",
        method: str | None = None,
        retry_after: int = 1,
        delay_ms: int = 0,
        count: int | None = None,
        after: int = 0,
    ) -> FaultRule:
        """Inject a fault ('429', '503', '403', 'delay', 'drop') for Graph requests whose path matches the regex,
        from the ``after + 1``-th such request on."""
        if kind not in FAULT_KINDS or not 0.0 <= rate <= 1.0:
            raise GraphError(400, "InvalidRequest", f"fault kind must be one of {FAULT_KINDS}, rate in [0, 1].")
        re.compile(path)
        rule = FaultRule(kind, rate, path, method, retry_after, delay_ms, count, after)
        self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._requests)

    def clear_requests(self) -> None:
        self._requests.clear()

    @property
    def deliveries(self) -> list[Any]:
        """Notifications and lifecycle events sent (url, payload, attempts, status, delivered)."""
        return list(self._notifier.deliveries)

    def subscriptions(self) -> list[dict[str, Any]]:
        self._drop_expired_subscriptions()
        return [s.to_graph() for s in self._subscriptions.values()]

    def expire_delta_tokens(self) -> None:
        """Forget all sync states: the next deltaLink call gets 410 and the client must resync."""
        self._sync_states.clear()
        self.people.expire_tokens()

    def reset(self) -> None:
        """Empty every mailbox and forget subscriptions, faults, tokens, requests and deliveries."""
        self._mailboxes = {
            box.user_id: Mailbox(address=box.address, display_name=box.display_name, user_id=box.user_id)
            for box in self._mailboxes.values()
        }
        self._subscriptions.clear()
        self._sync_states.clear()
        self.people.reset()
        self._faults.clear()
        self._requests.clear()
        self._notifier.deliveries.clear()

    # ---------------------------------------------------------------- helpers

    def _find_mailbox(self, key: str) -> Mailbox | None:
        lowered = key.lower()
        for box in self._mailboxes.values():
            if lowered in (box.user_id, box.address.lower()):
                return box
        return None

    def _subscription(self, sub_id: str) -> Subscription:
        self._drop_expired_subscriptions()
        sub = self._subscriptions.get(sub_id)
        if sub is None:
            raise GraphError(404, "ResourceNotFound", "The object was not found.")
        return sub

    def _notify(self, box: Mailbox, message: Message, change: str) -> None:
        if self._loop is None:
            return
        self._drop_expired_subscriptions()
        for sub in self._subscriptions.values():
            if sub.mailbox_id == box.user_id and change in sub.change_types:
                payload = {"value": [change_notification(sub, box, message, change, self.tenant_id)]}
                self._spawn(self._notifier.deliver(sub.notification_url, payload))

    # ---------------------------------------------------------------- Graph entry point

    async def _graph_entry(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id", request_id)
        body = await request.read()
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k: request.headers[k] for k in RECORDED_HEADERS if k in request.headers},
            body=self._loggable_body(body),
        )
        if "Authorization" in request.headers:
            record.headers["authorization"] = "Bearer <redacted>"
        self._requests.append(record)
        mailbox_key: str | None = None
        try:
            await self._authenticate(request)
            segments = _segments(request.rel_url.raw_path.removeprefix("/v1.0"))
            box = None
            if len(segments) >= 2 and segments[0].lower() == "users" and segments[1:] != ["delta"]:
                box = self.mailbox(segments[1])
                self._acquire_slot(box.user_id)
                mailbox_key = box.user_id
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            response = await self._faulted(request, lambda: self._dispatch(request, segments, box))
        except GraphError as error:
            response = odata_error(error.status, error.code, error.message, request_id, client_request_id)
            response.headers.update(error.headers)
        except _ConnectionDropped:
            # Close the socket without any response; aiohttp then discards the placeholder returned here.
            if request.transport is not None:
                request.transport.abort()
            record.status = 0
            return web.Response()
        finally:
            if mailbox_key is not None and mailbox_key in self._in_flight:
                self._in_flight[mailbox_key] -= 1
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id
        record.status = response.status
        return response

    @staticmethod
    def _loggable_body(body: bytes) -> Any:
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return body.decode("utf-8", "replace")

    async def _authenticate(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized("Access token is empty.")
        if self._token_validator is not None:
            # Validators may fetch a JWKS with blocking I/O: keep them off the event loop.
            valid = await asyncio.to_thread(self._token_validator, token.strip())
            if not valid:
                raise self._unauthorized("Access token validation failure. Invalid audience.")
        request[_APP_ID] = _application_id(token.strip())

    @staticmethod
    def _unauthorized(message: str) -> GraphError:
        return GraphError(
            401,
            "InvalidAuthenticationToken",
            message,
            {
                "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
            },
        )

    def _acquire_slot(self, user_id: str) -> None:
        """Outlook's MailboxConcurrency limit: at most `max_concurrency` requests in flight per mailbox."""
        if self._in_flight.get(user_id, 0) >= self._max_concurrency:
            raise GraphError(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
                {"Retry-After": str(self._throttle_retry_after)},
            )
        self._in_flight[user_id] = self._in_flight.get(user_id, 0) + 1

    async def _faulted(
        self, request: web.Request, handler: Callable[[], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        for rule in self._faults:
            if not rule.matches(request.method, request.path) or self._random.random() >= rule.rate:
                continue
            if rule.after > 0:
                rule.after -= 1
                continue
            if rule.count is not None:
                rule.count -= 1
            rule.hits += 1
            if rule.kind == "delay":
                await asyncio.sleep(rule.delay_ms / 1000)
            elif rule.kind == "429":
                raise GraphError(
                    429,
                    "TooManyRequests",
                    "Too many requests. Please retry after some time.",
                    {"Retry-After": str(rule.retry_after)},
                )
            elif rule.kind == "403":
                # What Exchange answers when the app's permission does not cover the mailbox (RBAC scope).
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            elif rule.kind == "503":
                raise GraphError(
                    503,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Please retry.",
                    {"Retry-After": str(rule.retry_after)},
                )
            else:
                raise _ConnectionDropped
        return await handler()

    async def _dispatch(self, request: web.Request, segs: list[str], box: Mailbox | None) -> web.StreamResponse:
        method = request.method
        if segs and segs[0].lower() == "subscriptions":
            return await self._subscriptions_route(request, segs[1:])
        if len(segs) == 3 and segs[0].lower() == "groups" and segs[2].lower() == "owners" and method == "GET":
            return self._group_owners(request, segs[1])
        if len(segs) == 5 and [segs[0].lower(), segs[2].lower(), segs[4].lower()] == ["teams", "channels", "messages"]:
            if method != "GET":
                raise self._method_not_allowed()
            return self._channel_messages(request, segs[1], unquote(segs[3]))
        if box is None and [seg.lower() for seg in segs] == ["users", "delta"] and method == "GET":
            return self._people_delta(request, DIRECTORY_KEY, "users/delta")
        if box is None:
            raise GraphError(400, "BadRequest", f"Resource '{'/'.join(segs)}' is not served by the stand-in.")
        rest = segs[2:]
        if rest and rest[0].lower() == "contacts" and method == "GET":
            return self._contacts(request, box, rest[1:])
        in_folder = False
        if len(rest) >= 2 and rest[0].lower() == "mailfolders":
            if not box.folder_matches(rest[1]):
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            rest, in_folder = rest[2:], True
        if not rest or rest[0].lower() != "messages":
            raise GraphError(400, "BadRequest", f"Resource '{'/'.join(segs)}' is not served by the stand-in.")
        rest = rest[1:]
        if not rest and method == "GET":
            return self._list_messages(request, box)
        if rest == ["delta"] and in_folder and method == "GET":
            return self._delta(request, box, segs)
        if not rest:
            raise self._method_not_allowed()
        message = box.message(rest[0])
        if len(rest) == 1 and method == "GET":
            select, expand = self._select(request, MESSAGE_PROPERTIES), parse_expand(request.query.get("$expand"))
            return self._json(request, apply_select(message.to_graph(), select, expand))
        if len(rest) == 1 and method == "PATCH":
            return await self._patch_message(request, box, message)
        if len(rest) >= 2 and rest[1].lower() == "attachments" and method == "GET":
            return self._attachments(request, message, rest[2:])
        raise self._method_not_allowed()

    def add_team(self, group_id: str, channel_messages: ChannelMessages) -> None:
        """A team the app is installed in with resource-specific consent (``ChannelMessage.Read.Group``): Graph
        lists its channels' messages from ``channel_messages(channel_id)`` (the connector stand-in's posts)."""
        self._teams[group_id.lower()] = channel_messages

    def _channel_messages(self, request: web.Request, group_id: str, channel_id: str) -> web.Response:
        """``GET /teams/{id}/channels/{id}/messages``: root messages, newest first, ``$top`` (at most 50) a page."""
        source = self._teams.get(group_id.lower())
        if source is None:
            # No consent for this team (the app is not installed there, or RSC was not granted).
            raise GraphError(403, "Forbidden", "Missing role permissions on the request.")
        try:
            top = min(int(request.query.get("$top", "20")), 50)
            skip = int(request.query.get("$skiptoken", "0"))
        except ValueError as error:
            raise GraphError(400, "BadRequest", "Invalid $top or $skiptoken.") from error
        messages = source(channel_id)
        body: dict[str, Any] = {"@odata.context": "teams/channels/messages", "value": messages[skip : skip + top]}
        if skip + top < len(messages):
            body["@odata.nextLink"] = str(request.url.update_query({"$skiptoken": str(skip + top)}))
        return self._json(request, body)

    def set_group_owners(self, group_id: str, owner_ids: Sequence[str]) -> None:
        """A Microsoft 365 group (a team's aadGroupId) and the object ids of its owners."""
        self._group_owners_by_id[group_id.lower()] = list(owner_ids)

    def _group_owners(self, request: web.Request, group_id: str) -> web.Response:
        token = request.headers.get("Authorization", "").partition(" ")[2]
        if not _roles(token.strip()) & GROUP_READ_ROLES:
            raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        owners = self._group_owners_by_id.get(group_id.lower())
        if owners is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist.")
        values = [{"@odata.type": "#microsoft.graph.user", "id": owner} for owner in owners]
        return self._json(request, {"@odata.context": "groups/owners", "value": values})

    @staticmethod
    def _method_not_allowed() -> GraphError:
        return GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")

    @staticmethod
    def _select(request: web.Request, allowed: Sequence[str]) -> tuple[str, ...] | None:
        type_name = "microsoft.graph.message" if allowed is MESSAGE_PROPERTIES else "microsoft.graph.attachment"
        return parse_select(request.query.get("$select"), allowed, type_name)

    @staticmethod
    def _json(request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
        response = web.json_response(body, status=status)
        prefs = _preferences(request)
        applied = [f"odata.maxpagesize={prefs['odata.maxpagesize']}"] if "odata.maxpagesize" in prefs else []
        if prefs.get("idtype", "").lower() == "immutableid":
            applied.append('IdType="ImmutableId"')
        if applied:
            response.headers["Preference-Applied"] = ", ".join(applied)
        return response

    def _list_messages(self, request: web.Request, box: Mailbox) -> web.Response:
        unsupported = {"$filter", "$search", "$expand"} & set(request.query)
        if unsupported:
            raise GraphError(
                400, "BadRequest", f"Query option {sorted(unsupported)[0]} is not modelled by the stand-in."
            )
        select = self._select(request, MESSAGE_PROPERTIES)
        try:
            top = int(request.query.get("$top", "0")) or _page_size(_preferences(request))
            skip = int(request.query.get("$skip", "0"))
        except ValueError as exc:
            raise GraphError(400, "BadRequest", "Invalid $top or $skip value.") from exc
        ordered = box.newest_first()
        page = ordered[skip : skip + top]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/v1.0/$metadata#users('{box.address}')/messages",
            "value": [apply_select(m.to_graph(), select) for m in page],
        }
        if skip + top < len(ordered):
            query = dict(request.query)
            query.update({"$top": str(top), "$skip": str(skip + top)})
            body["@odata.nextLink"] = str(request.url.with_query(query))
        return self._json(request, body)

    async def _patch_message(self, request: web.Request, box: Mailbox, message: Message) -> web.Response:
        changes = parse_message_patch(await _json_body(request))
        if_match = request.headers.get("If-Match")
        if if_match not in (None, "*", message.etag, message.change_key):
            raise GraphError(
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the "
                "request does not match the current change key for the item.",
            )
        apply_message_changes(message, changes, box.next_sequence())
        self._notify(box, message, "updated")
        return self._json(request, message.to_graph())

    def _attachments(self, request: web.Request, message: Message, rest: list[str]) -> web.StreamResponse:
        if not rest:
            select = self._select(request, ATTACHMENT_PROPERTIES)
            return self._json(request, {"value": [apply_select(a.to_graph(), select) for a in message.attachments]})
        attachment = next((a for a in message.attachments if a.id == rest[0]), None)
        if attachment is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if len(rest) == 1:
            return self._json(
                request, apply_select(attachment.to_graph(), self._select(request, ATTACHMENT_PROPERTIES))
            )
        if rest[1:] == ["$value"]:
            return web.Response(body=attachment.content, content_type=attachment.content_type)
        raise self._method_not_allowed()

    def _delta(self, request: web.Request, box: Mailbox, segs: list[str]) -> web.Response:
        query = request.query
        token = query.get("$deltatoken") or query.get("$skiptoken")
        if token is not None:
            known = self._sync_states.get(token)
            if known is None or known.mailbox_id != box.user_id:
                raise GraphError(
                    410,
                    "SyncStateNotFound",
                    "The sync state generation is not found. The delta token is expired and data must be "
                    "synchronized again.",
                )
            # A copy: Graph's links can be followed again (a client resuming after a failed page).
            state = replace(known, pending_ids=list(known.pending_ids), pending_removed=list(known.pending_removed))
            if "$deltatoken" in query:
                changed, removed = box.changed_since(state.watermark)
                state = SyncState(box.user_id, box.sequence, state.select, changed, removed, state.expand)
        else:
            select, expand = self._select(request, MESSAGE_PROPERTIES), parse_expand(request.query.get("$expand"))
            state = SyncState(box.user_id, box.sequence, select, [m.id for m in box.newest_first()], [], expand)
        page_size = _page_size(_preferences(request))
        values: list[dict[str, Any]] = []
        while state.pending_ids and len(values) < page_size:
            message = box.messages.get(state.pending_ids.pop(0))
            if message is not None:
                values.append(apply_select(message.to_graph(), state.select, state.expand))
        while state.pending_removed and len(values) < page_size:
            values.append(
                {
                    "@odata.type": "#microsoft.graph.message",
                    "id": state.pending_removed.pop(0),
                    "@removed": {"reason": "deleted"},
                }
            )
        link_base = f"{request.scheme}://{request.host}/v1.0/users/{box.user_id}/mailFolders/{segs[3]}/messages/delta"
        next_token = uuid.uuid4().hex + uuid.uuid4().hex
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/v1.0/$metadata#Collection(message)",
            "value": values,
        }
        if state.pending_ids or state.pending_removed:
            self._sync_states[next_token] = state
            body["@odata.nextLink"] = f"{link_base}?$skiptoken={next_token}"
        else:
            self._sync_states[next_token] = SyncState(box.user_id, state.watermark, state.select, expand=state.expand)
            body["@odata.deltaLink"] = f"{link_base}?$deltatoken={next_token}"
        return self._json(request, body)

    def _contacts(self, request: web.Request, box: Mailbox, rest: list[str]) -> web.Response:
        key = contacts_key(box.user_id)
        if rest == ["delta"]:
            return self._people_delta(request, key, f"users/{box.user_id}/contacts/delta")
        if rest:
            raise self._method_not_allowed()
        select = self.people.select(key, request.query.get("$select"))
        return self._json(request, {"value": self.people.list(key, select)})

    def _people_delta(self, request: web.Request, key: str, path: str) -> web.Response:
        select = None
        if "$deltatoken" not in request.query and "$skiptoken" not in request.query:
            select = self.people.select(key, request.query.get("$select"))
        link_base = f"{request.scheme}://{request.host}/v1.0/{path}"
        page_size = _page_size(_preferences(request))
        body = self.people.delta(key, dict(request.query), select, page_size, link_base)
        return self._json(request, {"@odata.context": f"{self.base_url}/v1.0/$metadata#Collection", **body})

    # ---------------------------------------------------------------- subscriptions

    async def _subscriptions_route(self, request: web.Request, rest: list[str]) -> web.Response:
        method = request.method
        if not rest and method == "POST":
            return await self._create_subscription(request)
        if not rest and method == "GET":
            return self._json(request, {"value": self.subscriptions()})
        if not rest:
            raise self._method_not_allowed()
        sub = self._subscription(rest[0])
        if rest[1:] == ["reauthorize"] and method == "POST":
            return web.Response(status=204)
        if rest[1:]:
            raise self._method_not_allowed()
        if method == "GET":
            return self._json(request, sub.to_graph())
        if method == "DELETE":
            del self._subscriptions[sub.id]
            return web.Response(status=204)
        if method == "PATCH":
            body = await _json_body(request)
            if not isinstance(body, dict) or set(body) - {"expirationDateTime", "notificationUrl", "@odata.type"}:
                raise GraphError(400, "InvalidRequest", "Only expirationDateTime and notificationUrl can be updated.")
            if "expirationDateTime" in body:
                sub.expiration = parse_expiration(body["expirationDateTime"], self._max_subscription_minutes)
            if "notificationUrl" in body:
                await self._notifier.handshake(body["notificationUrl"])
                sub.notification_url = body["notificationUrl"]
            return self._json(request, sub.to_graph())
        raise self._method_not_allowed()

    async def _create_subscription(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        resource = body.get("resource") if isinstance(body, dict) else None
        box = self._find_mailbox(resource_mailbox_key(resource)) if isinstance(resource, str) and resource else None
        sub = parse_subscription_request(body, box, self._max_subscription_minutes, request[_APP_ID])
        urls = [sub.notification_url] + ([sub.lifecycle_url] if sub.lifecycle_url else [])
        await asyncio.gather(*(self._notifier.handshake(url) for url in urls))
        self._subscriptions[sub.id] = sub
        payload = {"@odata.context": f"{self.base_url}/v1.0/$metadata#subscriptions/$entity", **sub.to_graph()}
        return self._json(request, payload, status=201)

    # ---------------------------------------------------------------- control API (HTTP)

    def _add_control_routes(self, app: web.Application) -> None:
        routes = [
            ("POST", "/_control/mailboxes", self._c_add_mailbox),
            ("POST", "/_control/mailboxes/{mailbox}/messages", self._c_deliver),
            ("DELETE", "/_control/mailboxes/{mailbox}/messages/{message}", self._c_delete),
            ("POST", "/_control/mailboxes/{mailbox}/messages/{message}/flag", self._c_flag),
            ("POST", "/_control/mailboxes/{mailbox}/messages/{message}/read", self._c_read),
            ("POST", "/_control/mailboxes/{mailbox}/contacts", self._c_upsert_contact),
            ("DELETE", "/_control/mailboxes/{mailbox}/contacts/{contact}", self._c_remove_contact),
            ("POST", "/_control/users", self._c_upsert_user),
            ("DELETE", "/_control/users/{user}", self._c_remove_user),
            ("POST", "/_control/lifecycle", self._c_lifecycle),
            ("POST", "/_control/faults", self._c_add_fault),
            ("DELETE", "/_control/faults", self._c_clear_faults),
            ("GET", "/_control/requests", self._c_requests),
            ("DELETE", "/_control/requests", self._c_clear_requests),
            ("GET", "/_control/deliveries", self._c_deliveries),
            ("GET", "/_control/subscriptions", self._c_subscriptions),
            ("POST", "/_control/delta-tokens/expire", self._c_expire_tokens),
            ("POST", "/_control/reset", self._c_reset),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, self._control(handler))

    @staticmethod
    def _control(
        handler: Callable[[web.Request, dict[str, Any]], Awaitable[Any]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                body = await _json_body(request) or {}
                if not isinstance(body, dict):
                    raise GraphError(400, "BadRequest", "A JSON object is expected.")
                result = await handler(request, body)
            except GraphError as error:
                return odata_error(error.status, error.code, error.message, "control", "control")
            except (KeyError, TypeError, ValueError) as exc:
                return odata_error(400, "BadRequest", f"Invalid control request: {exc!r}", "control", "control")
            return web.json_response(result)

        return wrapped

    async def _c_add_mailbox(self, _request: web.Request, body: dict[str, Any]) -> Any:
        box = self.add_mailbox(body["address"], body.get("displayName"))
        return {"id": box.user_id, "address": box.address, "inboxId": box.inbox_id}

    async def _c_deliver(self, request: web.Request, body: dict[str, Any]) -> Any:
        attachments = [
            Attachment(
                name=spec["name"],
                content_type=spec.get("contentType", "application/octet-stream"),
                content=base64.b64decode(spec["contentBytes"])
                if "contentBytes" in spec
                else bytes(self._random.getrandbits(8) for _ in range(int(spec.get("size", 1024)))),
                is_inline=bool(spec.get("isInline", False)),
            )
            for spec in body.get("attachments", [])
        ]
        received = body.get("receivedDateTime")
        message = self.deliver_mail(
            request.match_info["mailbox"],
            body["subject"],
            body["from"],
            body.get("body", ""),
            body_type=body.get("bodyType", "text"),
            sender_name=body.get("fromName"),
            attachments=attachments,
            received=datetime.fromisoformat(received.replace("Z", "+00:00")) if received else None,
            authentication=body.get("authentication", "pass"),
            headers=[(h["name"], h["value"]) for h in body.get("internetMessageHeaders", [])],
            message_class=body.get("messageClass", "IPM.Note"),
        )
        return {"id": message.id, "internetMessageId": message.internet_message_id}

    async def _c_delete(self, request: web.Request, _body: dict[str, Any]) -> Any:
        self.delete_message(request.match_info["mailbox"], request.match_info["message"])
        return {}

    async def _c_flag(self, request: web.Request, body: dict[str, Any]) -> Any:
        message = self.set_flag(request.match_info["mailbox"], request.match_info["message"], body)
        return message.to_graph()["flag"]

    async def _c_read(self, request: web.Request, body: dict[str, Any]) -> Any:
        if not isinstance(body.get("isRead"), bool):
            raise GraphError(400, "RequestBodyRead", "Expected {\"isRead\": true|false}.")
        message = self.set_read(request.match_info["mailbox"], request.match_info["message"], body["isRead"])
        return {"isRead": message.is_read}

    async def _c_upsert_contact(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.upsert_contact(request.match_info["mailbox"], body)

    async def _c_remove_contact(self, request: web.Request, _body: dict[str, Any]) -> Any:
        self.remove_contact(request.match_info["mailbox"], request.match_info["contact"])
        return {}

    async def _c_upsert_user(self, _request: web.Request, body: dict[str, Any]) -> Any:
        return self.upsert_user(body)

    async def _c_remove_user(self, request: web.Request, _body: dict[str, Any]) -> Any:
        self.remove_user(request.match_info["user"])
        return {}

    async def _c_lifecycle(self, _request: web.Request, body: dict[str, Any]) -> Any:
        ids = self.fire_lifecycle(
            body["event"], subscription_id=body.get("subscriptionId"), mailbox=body.get("mailbox")
        )
        return {"subscriptionIds": ids}

    async def _c_add_fault(self, _request: web.Request, body: dict[str, Any]) -> Any:
        rule = self.add_fault(
            str(body["kind"]),
            rate=float(body.get("rate", 1.0)),
            path=body.get("path", ".*"),
            method=body.get("method"),
            retry_after=int(body.get("retryAfter", 1)),
            delay_ms=int(body.get("delayMs", 0)),
            count=body.get("count"),
            after=int(body.get("after", 0)),
        )
        return asdict(rule)

    async def _c_clear_faults(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.clear_faults()
        return {}

    async def _c_requests(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return [asdict(r) for r in self._requests]

    async def _c_clear_requests(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.clear_requests()
        return {}

    async def _c_deliveries(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return [asdict(d) for d in self._notifier.deliveries]

    async def _c_subscriptions(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return self.subscriptions()

    async def _c_expire_tokens(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.expire_delta_tokens()
        return {}

    async def _c_reset(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.reset()
        return {}


def _verifies(token: str, key: Any, audience: str | None, issuer: str | None) -> bool:
    try:
        jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            options={"verify_aud": audience is not None, "verify_iss": issuer is not None},
        )
    except jwt.PyJWTError:
        return False
    return True


def rs256_token_validator(
    public_key_pem: bytes, audience: str | None = None, issuer: str | None = None
) -> TokenValidator:
    """A validator for tokens signed by the identity stand-in's key (signature, expiry, optional aud/iss)."""
    return lambda token: _verifies(token, public_key_pem, audience, issuer)


def jwks_token_validator(
    jwks_url: str, audience: str | None = None, issuer: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> TokenValidator:
    """Like `rs256_token_validator`, with the key looked up by `kid` in a JWKS (blocking fetch, cached)."""
    client = jwt.PyJWKClient(jwks_url, ssl_context=ssl_context)

    def validate(token: str) -> bool:
        try:
            key = client.get_signing_key_from_jwt(token).key
        except jwt.PyJWTError:
            return False
        return _verifies(token, key, audience, issuer)

    return validate


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mailbox", action="append", default=[], help="mailbox address (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed for fault injection")
    parser.add_argument("--tls-cert", help="PEM certificate to serve https")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument("--notification-ca", help="CA bundle to trust for https notification URLs")
    parser.add_argument("--token-jwks-url", help="validate bearer tokens against this JWKS")
    parser.add_argument("--token-jwks-ca", help="CA bundle to trust for an https --token-jwks-url")
    parser.add_argument("--token-public-key", help="validate bearer tokens with this RS256 public key (PEM)")
    parser.add_argument("--token-audience", help="required aud claim")
    parser.add_argument("--token-issuer", help="required iss claim")
    return parser.parse_args(argv)


def _validator_from_args(args: argparse.Namespace) -> TokenValidator | None:
    if args.token_jwks_url:
        ca = ssl.create_default_context(cafile=args.token_jwks_ca) if args.token_jwks_ca else None
        return jwks_token_validator(args.token_jwks_url, args.token_audience, args.token_issuer, ca)
    if args.token_public_key:
        with open(args.token_public_key, "rb") as pem:
            return rs256_token_validator(pem.read(), args.token_audience, args.token_issuer)
    return None


async def _serve(args: argparse.Namespace) -> None:
    server_ssl = None
    if args.tls_cert:
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ssl.load_cert_chain(args.tls_cert, args.tls_key)
    notification_ssl = ssl.create_default_context(cafile=args.notification_ca) if args.notification_ca else None
    stand_in = GraphStandIn(
        args.host,
        args.port,
        server_ssl,
        _validator_from_args(args),
        args.mailbox,
        seed=args.seed,
        notification_ssl_context=notification_ssl,
    )
    await stand_in.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"GRAPH_STAND_IN_READY {stand_in.base_url}", flush=True)
    for box in stand_in.mailboxes:
        print(f"MAILBOX {box.address} {box.user_id}", flush=True)
    await stop.wait()
    await stand_in.stop()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
