"""The Graph stand-in's HTTP side: the Graph v1.0 routes msgraph-sdk calls (mail, delta, subscriptions, contacts,
users, group owners, channel messages) with authentication and Outlook's mailbox concurrency limit, and the JSON
control API under ``/_control/`` for tests and the demo."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import jwt
from aiohttp import web

from sandbox.graph_directory import DIRECTORY_KEY, contacts_key
from sandbox.graph_faults import ConnectionDropped
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
    parse_expand,
    parse_message_patch,
    parse_select,
    utcnow,
)
from sandbox.graph_subscriptions import parse_expiration, parse_subscription_request, resource_mailbox_key

if TYPE_CHECKING:
    from sandbox.graph import GraphStandIn, TokenValidator

DEFAULT_PAGE_SIZE = 10  # Graph's default page size for message collections
MAX_PAGE_SIZE = 1000  # the largest odata.maxpagesize Graph honours for messages; larger asks get this
RECORDED_HEADERS = ("prefer", "client-request-id", "if-match", "content-type", "user-agent")
_SEGMENT_KEY = re.compile(r"^(?P<name>[^(]+)\('(?P<key>[^']*)'\)$")
_UNKNOWN_APP_ID = "00000000-0000-0000-0000-000000000000"
_APP_ID = web.RequestKey("app_id", str)


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


class GraphRoutes:
    """The HTTP handlers of one :class:`~sandbox.graph.GraphStandIn`: Graph v1.0 and the control API."""

    def __init__(
        self,
        graph: GraphStandIn,
        token_validator: TokenValidator | None,
        max_concurrency: int,
        throttle_retry_after: int,
    ) -> None:
        self.graph = graph
        self._token_validator = token_validator
        self._max_concurrency = max_concurrency
        self._throttle_retry_after = throttle_retry_after
        self._in_flight: dict[str, int] = {}

    async def graph_entry(self, request: web.Request) -> web.StreamResponse:
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
        self.graph.request_log.append(record)
        mailbox_key: str | None = None
        try:
            await self._authenticate(request)
            segments = _segments(request.rel_url.raw_path.removeprefix("/v1.0"))
            box = None
            if len(segments) >= 2 and segments[0].lower() == "users" and segments[1:] != ["delta"]:
                box = self.graph.mailbox(segments[1])
                self._acquire_slot(box.user_id)
                mailbox_key = box.user_id
            if self.graph.latency_s:
                await asyncio.sleep(self.graph.latency_s)
            await self.graph.faults.inject(request.method, request.path)
            response = await self._dispatch(request, segments, box)
        except GraphError as error:
            response = odata_error(error.status, error.code, error.message, request_id, client_request_id)
            response.headers.update(error.headers)
        except ConnectionDropped:
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

    def _channel_messages(self, request: web.Request, group_id: str, channel_id: str) -> web.Response:
        """``GET /teams/{id}/channels/{id}/messages``: root messages, newest first, ``$top`` (at most 50) a page."""
        source = self.graph.teams.get(group_id.lower())
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

    def _group_owners(self, request: web.Request, group_id: str) -> web.Response:
        token = request.headers.get("Authorization", "").partition(" ")[2]
        if not _roles(token.strip()) & GROUP_READ_ROLES:
            raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        owners = self.graph.group_owners.get(group_id.lower())
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
            "@odata.context": f"{self.graph.base_url}/v1.0/$metadata#users('{box.address}')/messages",
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
        self.graph.notify(box, message, "updated")
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
            known = self.graph.sync_states.get(token)
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
            "@odata.context": f"{self.graph.base_url}/v1.0/$metadata#Collection(message)",
            "value": values,
        }
        if state.pending_ids or state.pending_removed:
            self.graph.sync_states[next_token] = state
            body["@odata.nextLink"] = f"{link_base}?$skiptoken={next_token}"
        else:
            self.graph.sync_states[next_token] = SyncState(
                box.user_id, state.watermark, state.select, expand=state.expand
            )
            body["@odata.deltaLink"] = f"{link_base}?$deltatoken={next_token}"
        return self._json(request, body)

    def _contacts(self, request: web.Request, box: Mailbox, rest: list[str]) -> web.Response:
        key = contacts_key(box.user_id)
        if rest == ["delta"]:
            return self._people_delta(request, key, f"users/{box.user_id}/contacts/delta")
        if rest:
            raise self._method_not_allowed()
        select = self.graph.people.select(key, request.query.get("$select"))
        return self._json(request, {"value": self.graph.people.list(key, select)})

    def _people_delta(self, request: web.Request, key: str, path: str) -> web.Response:
        select = None
        if "$deltatoken" not in request.query and "$skiptoken" not in request.query:
            select = self.graph.people.select(key, request.query.get("$select"))
        link_base = f"{request.scheme}://{request.host}/v1.0/{path}"
        page_size = _page_size(_preferences(request))
        body = self.graph.people.delta(key, dict(request.query), select, page_size, link_base)
        return self._json(request, {"@odata.context": f"{self.graph.base_url}/v1.0/$metadata#Collection", **body})

    async def _subscriptions_route(self, request: web.Request, rest: list[str]) -> web.Response:
        method = request.method
        if not rest and method == "POST":
            return await self._create_subscription(request)
        if not rest and method == "GET":
            return self._json(request, {"value": self.graph.subscriptions()})
        if not rest:
            raise self._method_not_allowed()
        sub = self.graph.subscription(rest[0])
        if rest[1:] == ["reauthorize"] and method == "POST":
            return web.Response(status=204)
        if rest[1:]:
            raise self._method_not_allowed()
        if method == "GET":
            return self._json(request, sub.to_graph())
        if method == "DELETE":
            del self.graph.subscription_by_id[sub.id]
            return web.Response(status=204)
        if method == "PATCH":
            body = await _json_body(request)
            if not isinstance(body, dict) or set(body) - {"expirationDateTime", "notificationUrl", "@odata.type"}:
                raise GraphError(400, "InvalidRequest", "Only expirationDateTime and notificationUrl can be updated.")
            if "expirationDateTime" in body:
                sub.expiration = parse_expiration(body["expirationDateTime"], self.graph.max_subscription_minutes)
            if "notificationUrl" in body:
                await self.graph.notifier.handshake(body["notificationUrl"])
                sub.notification_url = body["notificationUrl"]
            return self._json(request, sub.to_graph())
        raise self._method_not_allowed()

    async def _create_subscription(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        resource = body.get("resource") if isinstance(body, dict) else None
        box = (
            self.graph.find_mailbox(resource_mailbox_key(resource)) if isinstance(resource, str) and resource else None
        )
        sub = parse_subscription_request(body, box, self.graph.max_subscription_minutes, request[_APP_ID])
        urls = [sub.notification_url] + ([sub.lifecycle_url] if sub.lifecycle_url else [])
        await asyncio.gather(*(self.graph.notifier.handshake(url) for url in urls))
        self.graph.subscription_by_id[sub.id] = sub
        payload = {"@odata.context": f"{self.graph.base_url}/v1.0/$metadata#subscriptions/$entity", **sub.to_graph()}
        return self._json(request, payload, status=201)

    def add_control_routes(self, app: web.Application) -> None:
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
        box = self.graph.add_mailbox(body["address"], body.get("displayName"))
        return {"id": box.user_id, "address": box.address, "inboxId": box.inbox_id}

    async def _c_deliver(self, request: web.Request, body: dict[str, Any]) -> Any:
        attachments = [
            Attachment(
                name=spec["name"],
                content_type=spec.get("contentType", "application/octet-stream"),
                content=base64.b64decode(spec["contentBytes"])
                if "contentBytes" in spec
                else bytes(self.graph.random.getrandbits(8) for _ in range(int(spec.get("size", 1024)))),
                is_inline=bool(spec.get("isInline", False)),
            )
            for spec in body.get("attachments", [])
        ]
        received = body.get("receivedDateTime")
        message = self.graph.deliver_mail(
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
        self.graph.delete_message(request.match_info["mailbox"], request.match_info["message"])
        return {}

    async def _c_flag(self, request: web.Request, body: dict[str, Any]) -> Any:
        message = self.graph.set_flag(request.match_info["mailbox"], request.match_info["message"], body)
        return message.to_graph()["flag"]

    async def _c_read(self, request: web.Request, body: dict[str, Any]) -> Any:
        if not isinstance(body.get("isRead"), bool):
            raise GraphError(400, "RequestBodyRead", 'Expected {"isRead": true|false}.')
        message = self.graph.set_read(request.match_info["mailbox"], request.match_info["message"], body["isRead"])
        return {"isRead": message.is_read}

    async def _c_upsert_contact(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.graph.upsert_contact(request.match_info["mailbox"], body)

    async def _c_remove_contact(self, request: web.Request, _body: dict[str, Any]) -> Any:
        self.graph.remove_contact(request.match_info["mailbox"], request.match_info["contact"])
        return {}

    async def _c_upsert_user(self, _request: web.Request, body: dict[str, Any]) -> Any:
        return self.graph.upsert_user(body)

    async def _c_remove_user(self, request: web.Request, _body: dict[str, Any]) -> Any:
        self.graph.remove_user(request.match_info["user"])
        return {}

    async def _c_lifecycle(self, _request: web.Request, body: dict[str, Any]) -> Any:
        ids = self.graph.fire_lifecycle(
            body["event"], subscription_id=body.get("subscriptionId"), mailbox=body.get("mailbox")
        )
        return {"subscriptionIds": ids}

    async def _c_add_fault(self, _request: web.Request, body: dict[str, Any]) -> Any:
        rule = self.graph.add_fault(
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
        self.graph.clear_faults()
        return {}

    async def _c_requests(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return [asdict(r) for r in self.graph.request_log]

    async def _c_clear_requests(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.graph.clear_requests()
        return {}

    async def _c_deliveries(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return [asdict(d) for d in self.graph.notifier.deliveries]

    async def _c_subscriptions(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return self.graph.subscriptions()

    async def _c_expire_tokens(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.graph.expire_delta_tokens()
        return {}

    async def _c_reset(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.graph.reset()
        return {}
