"""Bot Framework authentication for the Teams adapter: outbound tokens (bot -> connector) and inbound JWTs.

Outbound seam for MSAL. botbuilder hands ``TO_CHANNEL_FROM_BOT_LOGIN_URL`` to MSAL without its
``VALIDATE_AUTHORITY`` flag and without a way to choose the CA bundle, so a non-Microsoft authority triggers an
online instance discovery (fails offline) and a private CA can only be trusted process-wide. We use botbuilder's
public ``credentials_factory=`` argument instead: ``MsalCredentialFactory`` builds the MSAL app itself, passing
``validate_authority`` (MSAL's public switch that skips instance discovery) and pinning ``ca_bundle`` per request.
With the defaults (Microsoft's public-cloud endpoints, ``validate_authority=True``, system CAs) it behaves like
botbuilder's own ``PasswordServiceClientCredentialFactory``; the sandbox differs only in configuration values.

Inbound. CloudAdapter answers 500 for most bad tokens (expired, bad signature, unknown key id, missing header...).
``authenticate_inbound_request`` runs botbuilder's validation itself and maps every failure to 401 with a
short reason; valid requests then run through the adapter with that result. botbuilder fetches the OpenID
metadata with a bare ``requests.get``: an https metadata URL signed by a private CA needs ``REQUESTS_CA_BUNDLE``
in the process.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

import jwt
import msal
import requests
from aiohttp import web
from botbuilder.core import Bot, InvokeResponse, serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, ActivityTypes, CallerIdConstants
from botframework.connector.auth import (
    AppCredentials,
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ManagedIdentityAppCredentials,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)

log = logging.getLogger(__name__)

MANAGED_IDENTITY = "UserAssignedMSI"
SUPPORTED_APP_TYPES = ("SingleTenant", MANAGED_IDENTITY)


@dataclass(frozen=True)
class BotAuthSettings:
    """What the bot needs to authenticate; defaults are Microsoft's public cloud.

    ``app_type`` is ``SingleTenant`` (app registration + client secret) or ``UserAssignedMSI`` (the app id is the
    client id of a user-assigned managed identity; tokens come from the host's managed identity endpoint, no secret).
    """

    app_id: str
    app_password: str = field(repr=False)
    tenant_id: str
    app_type: str = "SingleTenant"
    login_url: str | None = None  # TO_CHANNEL_FROM_BOT_LOGIN_URL; default https://login.microsoftonline.com/{tenant}
    oauth_scope: str = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
    channel_token_issuer: str = AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
    channel_openid_metadata_url: str = AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
    emulator_openid_metadata_url: str = AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
    oauth_url: str = AuthenticationConstants.OAUTH_URL
    caller_id: str = CallerIdConstants.public_azure_channel.value
    validate_authority: bool = True  # False skips MSAL's online instance discovery (private authority)
    ca_bundle: str | None = None  # CA file MSAL trusts for the authority; None = system/`requests` default
    allow_unauthenticated: bool = False  # local sandbox only: empty app id, no inbound or outbound tokens

    def __post_init__(self) -> None:
        if self.allow_unauthenticated:
            if self.app_id:
                raise ValueError("allow_unauthenticated needs an empty app_id (botbuilder then skips all auth)")
        elif self.app_type not in SUPPORTED_APP_TYPES:
            raise ValueError(f"app_type must be one of {', '.join(SUPPORTED_APP_TYPES)}")
        elif not (self.app_id and self.tenant_id and (self.app_password or self.uses_managed_identity)):
            raise ValueError("app_id, app_password and tenant_id are required unless allow_unauthenticated is set")

    @property
    def uses_managed_identity(self) -> bool:
        return self.app_type == MANAGED_IDENTITY

    @property
    def authority(self) -> str:
        return self.login_url or f"{AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX}{self.tenant_id}"


class _CaBundleSession(requests.Session):
    """Pins the CA bundle per request: ``requests`` lets REQUESTS_CA_BUNDLE override ``Session.verify``."""

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self._ca_bundle = ca_bundle

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("verify", self._ca_bundle)
        return super().request(method, url, *args, **kwargs)


class MsalClientSecretCredentials(AppCredentials):
    """Client-credentials token for the connector, from an MSAL app configured explicitly (see module doc)."""

    def __init__(self, settings: BotAuthSettings, oauth_scope: str, authority: str, validate_authority: bool) -> None:
        super().__init__(app_id=settings.app_id, channel_auth_tenant=settings.tenant_id, oauth_scope=oauth_scope)
        self.oauth_endpoint = authority
        self._settings = settings
        self._validate_authority = validate_authority
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def _msal_app(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                ca_bundle = self._settings.ca_bundle
                self._app = msal.ConfidentialClientApplication(
                    client_id=self._settings.app_id,
                    client_credential=self._settings.app_password,
                    authority=self.oauth_endpoint,
                    validate_authority=self._validate_authority,
                    http_client=_CaBundleSession(ca_bundle) if ca_bundle else None,
                )
            return self._app

    def get_access_token(self, force_refresh: bool = False) -> str:
        scope = self.oauth_scope if self.oauth_scope.endswith("/.default") else f"{self.oauth_scope}/.default"
        result = self._msal_app().acquire_token_for_client(scopes=[scope])  # serves from MSAL's cache first
        if "access_token" in result:
            return str(result["access_token"])
        raise PermissionError(f"Failed to get access token: {result.get('error')}: {result.get('error_description')}")


class MsalCredentialFactory(ServiceClientCredentialsFactory):
    """botbuilder's ``credentials_factory=`` seam; one credentials object (and MSAL token cache) per audience."""

    def __init__(self, settings: BotAuthSettings) -> None:
        self._settings = settings
        self._credentials: dict[tuple[str, str], AppCredentials] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return app_id == self._settings.app_id

    async def is_authentication_disabled(self) -> bool:
        return not self._settings.app_id

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        if await self.is_authentication_disabled():
            return MicrosoftAppCredentials.empty()
        if not await self.is_valid_app_id(app_id):
            raise PermissionError("Invalid app_id")
        key = (oauth_scope, login_endpoint)
        if key not in self._credentials:
            self._credentials[key] = (
                # MSAL finds the host's managed identity endpoint itself (IDENTITY_ENDPOINT in Container Apps).
                ManagedIdentityAppCredentials(self._settings.app_id, oauth_scope)
                if self._settings.uses_managed_identity
                else MsalClientSecretCredentials(self._settings, oauth_scope, login_endpoint, validate_authority)
            )
        return self._credentials[key]


def build_bot_framework_authentication(settings: BotAuthSettings) -> BotFrameworkAuthentication:
    """Always the parameterized authentication: production and sandbox differ only in the values."""
    configuration = SimpleNamespace(
        APP_ID=settings.app_id,
        APP_PASSWORD=settings.app_password,
        APP_TYPE=settings.app_type,
        APP_TENANTID=settings.tenant_id,
        VALIDATE_AUTHORITY=settings.validate_authority,
        TO_CHANNEL_FROM_BOT_LOGIN_URL=settings.authority,
        TO_CHANNEL_FROM_BOT_OAUTH_SCOPE=settings.oauth_scope,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=settings.channel_token_issuer,
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=settings.channel_openid_metadata_url,
        TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL=settings.emulator_openid_metadata_url,
        OAUTH_URL=settings.oauth_url,
        CALLER_ID=settings.caller_id,
    )
    return ConfigurationBotFrameworkAuthentication(configuration, credentials_factory=MsalCredentialFactory(settings))


# Reasons for failures botbuilder reports with a generic exception type.
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidSignatureError, "invalid token signature"),
    (jwt.DecodeError, "malformed token"),
    (IndexError, "unknown signing key"),  # botbuilder's key lookup by kid
)
_PERMISSION_REASONS = {"Identity missing": "untrusted token issuer"}


def _failure_reason(error: Exception) -> str:
    for error_type, reason in _REASONS:
        if isinstance(error, error_type):
            return reason
    if isinstance(error, PermissionError):
        message = str(error)
        return _PERMISSION_REASONS.get(message, message)
    if "endorsement" in str(error):
        return "signing key not endorsed for this channel"
    return "invalid token"


MAX_ACTIVITY_BYTES = 256 * 1024
"""Teams activities are small (a message is at most ~100 KB); anything bigger is refused before it is read."""
MAX_JSON_DEPTH = 32
"""Real activities nest about 8 levels deep; deeper JSON is refused (json.loads would recurse on it)."""
TEAMS_CHANNEL = "msteams"
ADAPTIVE_CARD_ACTION = "adaptiveCard/action"


@dataclass(frozen=True)
class InboundPolicy:
    """What an authenticated activity must also satisfy: Teams only, known tenants, Teams service URLs."""

    allowed_tenants: frozenset[str]
    """Lower-case Entra tenant ids (MicrosoftAppTenantId and ALLOWED_TENANT_IDS); empty refuses every activity."""
    is_service_url_allowed: Callable[[str | None], bool]
    token_issuer: str = AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER


def _refused(status: type[web.HTTPException], code: str, reason: str) -> web.HTTPException:
    log.info("inbound activity refused (%s): %s", code, reason)
    body = {"error": {"code": code, "message": reason}}
    return status(text=json.dumps(body), content_type="application/json")


def _unauthorized(reason: str) -> web.HTTPException:
    return _refused(web.HTTPUnauthorized, "Unauthorized", reason)


def _json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _too_large(size: int) -> web.HTTPException:
    reason = f"activity larger than {MAX_ACTIVITY_BYTES} bytes"
    log.info("inbound activity refused (TooLarge): %s", reason)
    body = json.dumps({"error": {"code": "TooLarge", "message": reason}})
    return web.HTTPRequestEntityTooLarge(
        max_size=MAX_ACTIVITY_BYTES, actual_size=size, text=body, content_type="application/json"
    )


async def _read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_ACTIVITY_BYTES:
        raise _too_large(request.content_length)
    chunks, size = [], 0
    while chunk := await request.content.read(MAX_ACTIVITY_BYTES + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ACTIVITY_BYTES:
            raise _too_large(size)
    body = b"".join(chunks)
    try:
        parsed = json.loads(body)
    except RecursionError as error:
        raise _refused(web.HTTPBadRequest, "BadRequest", "JSON nested too deeply") from error
    except ValueError as error:
        raise _refused(web.HTTPBadRequest, "BadRequest", "body is not a JSON activity") from error
    if not isinstance(parsed, dict):
        raise _refused(web.HTTPBadRequest, "BadRequest", "body is not a JSON activity")
    if _json_depth(parsed) > MAX_JSON_DEPTH:
        raise _refused(web.HTTPBadRequest, "BadRequest", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return parsed


def _check_claims(token: str, issuer: str) -> None:
    """What botbuilder lets through: a token without ``exp`` (PyJWT checks it only when present), and tokens of
    other issuers it routes to its emulator or skill validation. Teams' channel service is the only issuer."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise _unauthorized("malformed token") from error
    if not isinstance(claims.get("exp"), int | float):
        raise _unauthorized("token has no expiry")
    if claims.get("iss") != issuer:
        raise _unauthorized("untrusted token issuer")


async def _verify(auth: BotFrameworkAuthentication, activity: Activity, header: str) -> AuthenticateRequestResult:
    try:
        return await auth.authenticate_request(activity, header)
    except requests.RequestException as error:
        log.error("Bot Framework signing keys unavailable: %s", type(error).__name__)
        raise _refused(web.HTTPServiceUnavailable, "ServiceUnavailable", "signing keys unavailable") from error
    except Exception as error:  # every other failure of token validation is the caller's
        raise _unauthorized(_failure_reason(error)) from error


def _tenant_ids(body: dict[str, Any]) -> set[str]:
    """Every tenant the activity names: ``channelData.tenant.id`` and ``conversation.tenantId`` (read from the JSON:
    botbuilder-schema only knows the spelling ``tenantID``, Teams sends ``tenantId``)."""
    found: set[str] = set()
    channel_data, conversation = body.get("channelData"), body.get("conversation")
    tenant = channel_data.get("tenant") if isinstance(channel_data, dict) else None
    if isinstance(tenant, dict) and tenant.get("id"):
        found.add(str(tenant["id"]).lower())
    if isinstance(conversation, dict):
        found.update(str(value).lower() for key, value in conversation.items() if key.lower() == "tenantid" and value)
    return found


def json_str(value: Any) -> str | None:
    """A JSON value if it is a string (the sender decides the types of an activity's fields)."""
    return value if isinstance(value, str) else None


def inbound_refusal(body: dict[str, Any], policy: InboundPolicy) -> web.HTTPException | None:
    """Why an activity (its JSON) must not be handled, as the HTTP error to answer."""
    if not json_str(body.get("type")):
        return _refused(web.HTTPBadRequest, "BadRequest", "activity has no type")
    if body.get("channelId") != TEAMS_CHANNEL:
        return _refused(web.HTTPForbidden, "Forbidden", f"only Microsoft Teams activities (channelId {TEAMS_CHANNEL})")
    if not policy.is_service_url_allowed(json_str(body.get("serviceUrl"))):
        return _refused(web.HTTPForbidden, "Forbidden", "serviceUrl is not a Teams service URL")
    sender = body.get("from")
    sender_id = json_str(sender.get("aadObjectId")) if isinstance(sender, dict) else None
    if sender_id is None or not sender_id.strip():
        return _refused(web.HTTPBadRequest, "BadRequest", "from.aadObjectId is required")
    tenants = _tenant_ids(body)
    if len(tenants) != 1:
        return _refused(web.HTTPBadRequest, "BadRequest", "the activity must name exactly one tenant")
    if not tenants <= policy.allowed_tenants:
        return _refused(web.HTTPForbidden, "Forbidden", "tenant not allowed")
    return None


async def authenticate_inbound_request(
    request: web.Request, auth: BotFrameworkAuthentication, policy: InboundPolicy, *, allow_unauthenticated: bool
) -> tuple[dict[str, Any], AuthenticateRequestResult]:
    """The request's activity (its JSON) and botbuilder's authentication result, or an HTTP error with a reason.

    The token is verified before the body is read (a bogus token never makes the bot parse anything): first
    everything but the ``serviceurl`` claim, then, with the activity's service URL, the full check. Bad tokens are
    401 (never 500), oversized bodies 413, malformed or too deeply nested JSON 400, foreign channels and tenants 403.
    """
    header = request.headers.get("Authorization", "").strip()
    if header:
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token.strip():
            raise _unauthorized("malformed Authorization header")
        _check_claims(token.strip(), policy.token_issuer)
        # botbuilder's checks of signature, lifetime, issuer, audience and endorsement without the body.
        await _verify(auth, Activity(channel_id=TEAMS_CHANNEL, service_url=None), header)
    elif not allow_unauthenticated:
        raise _unauthorized("missing Authorization header")
    body = await _read_json(request)
    refusal = inbound_refusal(body, policy)
    if refusal is not None:
        raise refusal
    # What botbuilder's validation reads of an activity; None, not "": its parameterized authentication only
    # treats None as "no header".
    addressing = Activity(channel_id=TEAMS_CHANNEL, service_url=body["serviceUrl"])
    return body, await _verify(auth, addressing, header or None)  # type: ignore[arg-type]


def parse_activity(body: dict[str, Any]) -> Activity:
    """botbuilder's model of an activity, or 400."""
    try:
        return Activity().deserialize(body)
    except (ValueError, TypeError, AttributeError) as error:
        raise _refused(web.HTTPBadRequest, "BadRequest", "body is not a JSON activity") from error


def invoke_response_json(body: Any) -> Any:
    """The invoke response body as JSON, serialised exactly once.

    botbuilder 4.17.1's ``ActivityHandler`` already serialises invoke bodies to dicts, and ``CloudAdapter.process``
    serialises them again (``'dict' object has no attribute 'is_xml_model'``): plain JSON passes through, only
    msrest models are serialised.
    """
    if body is None or isinstance(body, dict | list | str | int | float | bool):
        return body
    return serializer_helper(body)


class CardActionHandler(Protocol):
    """Answers an ``adaptiveCard/action`` invoke from its JSON, outside botbuilder's turn (see
    :func:`authenticated_messages_handler`)."""

    async def __call__(self, body: dict[str, Any], authenticated: AuthenticateRequestResult) -> InvokeResponse: ...


def is_card_action(body: dict[str, Any]) -> bool:
    return body.get("type") == ActivityTypes.invoke and body.get("name") == ADAPTIVE_CARD_ACTION


class _AnswerEncoder:
    """A card click's answer as JSON bytes. The refused clicks of a race on one card are answered with one card
    object (:class:`bot.core.actions.CardActions` draws it once): they share its encoding too, which was a tenth of a
    refused click's CPU time. The card is held while it is the last one encoded, so its identity stays its own."""

    def __init__(self) -> None:
        self._last: tuple[dict[str, Any], bytes] | None = None

    def response(self, answer: InvokeResponse) -> web.Response:
        card = answer.body.get("value") if isinstance(answer.body, dict) else None
        if not isinstance(card, dict):
            encoded = json.dumps(answer.body).encode()
        elif self._last is not None and self._last[0] is card:
            encoded = self._last[1]
        else:
            encoded = json.dumps(answer.body).encode()
            self._last = (card, encoded)
        return web.Response(body=encoded, status=answer.status, content_type="application/json")


def authenticated_messages_handler(
    adapter: CloudAdapter,
    bot: Bot,
    auth: BotFrameworkAuthentication,
    policy: InboundPolicy,
    *,
    allow_unauthenticated: bool,
    card_actions: CardActionHandler | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The ``/api/messages`` handler: our authentication, then the adapter's turn with that result.

    It calls ``process_activity`` with the authentication result rather than ``CloudAdapter.process``, which would
    validate the token a second time and, with auth off, crash on the empty header it passes as "".

    Card clicks (``card_actions``) skip botbuilder's turn: its msrest model of the activity, the turn pipeline and
    the deep copy of the answer cost about half of a click's CPU time, and a click needs none of them (it answers
    with the invoke response and sends nothing). Fifty people clicking one card were answered one after another.
    """

    encoder = _AnswerEncoder()

    async def handle(request: web.Request) -> web.StreamResponse:
        body, authenticated = await authenticate_inbound_request(
            request, auth, policy, allow_unauthenticated=allow_unauthenticated
        )
        if card_actions is not None and is_card_action(body):
            return encoder.response(await card_actions(body, authenticated))
        invoke_response = await adapter.process_activity(authenticated, parse_activity(body), bot.on_turn)
        if invoke_response:
            return web.json_response(invoke_response_json(invoke_response.body), status=invoke_response.status)
        return web.Response(status=201)

    return handle
