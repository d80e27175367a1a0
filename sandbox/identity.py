"""Identity stand-in: Entra ID (client-credentials tokens) and the Bot Framework channel token service.

Entra side (what MSAL, azure-identity and botbuilder's outbound calls talk to):
  GET  /{tenant}/v2.0/.well-known/openid-configuration   tenant discovery document
  GET  /{tenant}/discovery/v2.0/keys                      JWKS of the access-token signing keys
  POST /{tenant}/oauth2/v2.0/token                        client-credentials grant, RS256 v1.0 access tokens
Bot Framework side (what the bot's inbound JWT validation talks to):
  GET  /botframework/v1/.well-known/openidconfiguration   like login.botframework.com/v1/.well-known/openidconfiguration
  GET  /botframework/v1/.well-known/keys                  JWKS with ``endorsements`` per key
Control (tests and ``make demo``; the private keys live in this process):
  POST /_control/channel-token  {"appId", "serviceUrl"} -> {"token"}

botbuilder fetches the Bot Framework metadata with blocking ``requests``: never serve this from the event loop
that runs the bot. ``IdentityServer`` runs it on its own thread and loop; ``python -m sandbox.identity`` runs
it as a separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import enum
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.tls import TlsMaterial, ensure_tls

log = logging.getLogger(__name__)

BOT_FRAMEWORK_AUDIENCE = "https://api.botframework.com"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
CHANNEL_TOKEN_ISSUER = "https://api.botframework.com"
# Endorsements Bot Framework publishes on its keys; botbuilder requires the activity's channelId among them.
DEFAULT_ENDORSEMENTS = ("msteams", "webchat", "emulator")
_RESERVED_SCOPES = {"openid", "profile", "offline_access"}
_ACCESS_TOKEN_LIFETIME = 3599
_CHANNEL_TOKEN_LIFETIME = 3600


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """An RSA key published in a JWKS under ``kid``."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(kid=secrets.token_urlsafe(20), private_key=rsa.generate_private_key(65537, 2048))

    def jwk(self, endorsements: Iterable[str] | None = None) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        key: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }
        if endorsements is not None:
            key["endorsements"] = list(endorsements)
        return key

    def sign(self, claims: Mapping[str, Any], kid: str | None = None) -> str:
        headers = {"kid": kid or self.kid, "x5t": kid or self.kid, "typ": "JWT"}
        return jwt.encode(dict(claims), self.private_key, algorithm="RS256", headers=headers)


@dataclass(frozen=True)
class RegisteredApp:
    """An app registration: client id + secret in its home tenant, with application roles for its tokens."""

    client_id: str
    client_secret: str = field(repr=False)
    tenant_id: str
    roles: tuple[str, ...] = ()


class AccessTokenValidator:
    """Checks bearer tokens the way a Microsoft resource does: RS256 signature by a published key, issuer
    ``https://sts.windows.net/{tenant}/``, the expected audience, exp/nbf. Used by the Graph and Connector
    stand-ins, in-process (keys from the identity stand-in) or standalone (keys fetched from its JWKS)."""

    def __init__(self, jwks: Mapping[str, Any], audience: str, tenants: Iterable[str] | None = None) -> None:
        self._keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks["keys"]}
        self._audience = audience
        self._tenants = set(tenants) if tenants is not None else None

    def claims(self, token: str) -> dict[str, Any] | None:
        """The verified claims, or None when the token must be refused."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=["RS256"], audience=self._audience, options={"require": ["exp", "iss"]}
            )
        except jwt.PyJWTError:
            return None
        tenant = claims.get("tid")
        if claims["iss"] != f"https://sts.windows.net/{tenant}/":
            return None
        if self._tenants is not None and tenant not in self._tenants:
            return None
        return claims

    def __call__(self, token: str) -> bool:
        return self.claims(token) is not None


class BadChannelToken(enum.Enum):
    """The ways an inbound activity token can be wrong; each must end in 401."""

    FORGED = "forged"  # signed with a key that is not published (but a published kid)
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    UNKNOWN_KEY_ID = "unknown-key-id"
    WRONG_AUDIENCE = "wrong-audience"
    WRONG_ISSUER = "wrong-issuer"
    WRONG_SERVICE_URL = "wrong-service-url"
    MALFORMED = "malformed"
    NO_EXPIRY = "no-expiry"  # correctly signed, but never expires


class _TokenError(Exception):
    """An OAuth error answered in Entra's shape."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description

    def response(self) -> web.Response:
        now = datetime.now(UTC)
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        description = (
            f"AADSTS{self.code}: {self.description}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {now:%Y-%m-%d %H:%M:%SZ}"
        )
        body = {
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        return web.json_response(body, status=self.status)


class IdentityStandIn:
    """Keys, app registrations and token minting; ``app()`` serves them over HTTP."""

    def __init__(
        self,
        apps: Iterable[RegisteredApp] = (),
        *,
        resources: Iterable[str] = (GRAPH_AUDIENCE, BOT_FRAMEWORK_AUDIENCE),
        endorsements: Iterable[str] = DEFAULT_ENDORSEMENTS,
    ) -> None:
        self.apps: dict[str, RegisteredApp] = {a.client_id: a for a in apps}
        self.resources = set(resources)
        self.endorsements = tuple(endorsements)
        self.entra_key = SigningKey.generate()
        self.channel_key = SigningKey.generate()
        self.token_requests: list[dict[str, str]] = []  # client id, tenant, scope, outcome (no secrets)

    def register(self, app: RegisteredApp) -> None:
        self.apps[app.client_id] = app

    # --- Entra access tokens -------------------------------------------------------------------------------

    def entra_jwks(self) -> dict[str, Any]:
        return {"keys": [self.entra_key.jwk()]}

    def issue_access_token(self, app: RegisteredApp, audience: str, lifetime: int = _ACCESS_TOKEN_LIFETIME) -> str:
        """A v1.0 app-only access token as Entra issues for Graph and the Bot Connector."""
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{app.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": app.client_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{app.tenant_id}/",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "tid": app.tenant_id,
            "ver": "1.0",
            "roles": list(app.roles),
        }
        return self.entra_key.sign(claims)

    def token_validator(self, audience: str) -> AccessTokenValidator:
        """``validator(token) -> bool`` for a resource with this audience (Graph, Bot Connector)."""
        return AccessTokenValidator(self.entra_jwks(), audience)

    def _grant(self, tenant: str, form: Mapping[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if grant_type != "client_credentials":
            raise _TokenError(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
            )
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None or tenant not in (app.tenant_id, "organizations"):
            raise _TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        if not secrets.compare_digest(form.get("client_secret", ""), app.client_secret):
            raise _TokenError(
                401,
                "invalid_client",
                7000215,
                f"Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        scopes = [s for s in form.get("scope", "").split() if s not in _RESERVED_SCOPES]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise _TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope', '')} is not valid. Client "
                f"credential flows must have a scope value with /.default suffixed to the "
                f"resource identifier (application ID URI).",
            )
        resource = scopes[0].removesuffix("/.default")
        if resource not in self.resources:
            raise _TokenError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant}.",
            )
        return {
            "token_type": "Bearer",
            "expires_in": _ACCESS_TOKEN_LIFETIME,
            "ext_expires_in": _ACCESS_TOKEN_LIFETIME,
            "access_token": self.issue_access_token(app, resource),
        }

    # --- Bot Framework channel tokens (inbound activities) -----------------------------------------------

    def channel_jwks(self) -> dict[str, Any]:
        return {"keys": [self.channel_key.jwk(self.endorsements)]}

    def channel_token(
        self,
        app_id: str,
        service_url: str,
        *,
        issuer: str = CHANNEL_TOKEN_ISSUER,
        not_before: float | None = None,
        lifetime: int = _CHANNEL_TOKEN_LIFETIME,
        key: SigningKey | None = None,
        kid: str | None = None,
    ) -> str:
        """The token the Bot Framework channel service sends with an activity to the bot."""
        nbf = int(time.time() if not_before is None else not_before)
        claims = {"serviceurl": service_url, "nbf": nbf, "exp": nbf + lifetime, "iss": issuer, "aud": app_id}
        return (key or self.channel_key).sign(claims, kid=kid or self.channel_key.kid)

    def bad_channel_token(self, kind: BadChannelToken, app_id: str, service_url: str) -> str:
        skew = 10 * 60  # beyond botbuilder's 5-minute clock tolerance
        now = time.time()
        makers: dict[BadChannelToken, Callable[[], str]] = {
            BadChannelToken.FORGED: lambda: self.channel_token(app_id, service_url, key=SigningKey.generate()),
            BadChannelToken.EXPIRED: lambda: self.channel_token(
                app_id, service_url, not_before=now - _CHANNEL_TOKEN_LIFETIME - skew
            ),
            BadChannelToken.NOT_YET_VALID: lambda: self.channel_token(app_id, service_url, not_before=now + skew),
            BadChannelToken.UNKNOWN_KEY_ID: lambda: self.channel_token(app_id, service_url, kid="unknown-kid"),
            BadChannelToken.WRONG_AUDIENCE: lambda: self.channel_token(str(uuid.uuid4()), service_url),
            BadChannelToken.WRONG_ISSUER: lambda: self.channel_token(
                app_id, service_url, issuer="https://sts.windows.net/evil/"
            ),
            BadChannelToken.WRONG_SERVICE_URL: lambda: self.channel_token(app_id, "https://evil.example.com/"),
            BadChannelToken.MALFORMED: lambda: "not-a-jwt." + secrets.token_urlsafe(12),
            BadChannelToken.NO_EXPIRY: lambda: self.channel_key.sign(
                {"serviceurl": service_url, "nbf": int(now), "iss": CHANNEL_TOKEN_ISSUER, "aud": app_id},
                kid=self.channel_key.kid,
            ),
        }
        return makers[kind]()

    # --- HTTP ---------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/botframework/v1/.well-known/openidconfiguration", self._bf_metadata)
        app.router.add_get("/botframework/v1/.well-known/keys", self._bf_keys)
        app.router.add_post("/_control/channel-token", self._control_channel_token)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._tenant_metadata)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._entra_keys)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        return app

    async def _tenant_metadata(self, request: web.Request) -> web.Response:
        base = f"{request.url.origin()}/{request.match_info['tenant']}"
        tenant = request.match_info["tenant"]
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            }
        )

    async def _entra_keys(self, _request: web.Request) -> web.Response:
        return web.json_response(self.entra_jwks())

    async def _token(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        form = {k: str(v) for k, v in (await request.post()).items()}
        record = {"tenant": tenant, "client_id": form.get("client_id", ""), "scope": form.get("scope", "")}
        try:
            body = self._grant(tenant, form)
        except _TokenError as error:
            self.token_requests.append({**record, "outcome": error.error})
            log.info("token request refused: %s (AADSTS%s)", error.error, error.code)
            return error.response()
        self.token_requests.append({**record, "outcome": "issued"})
        return web.json_response(body)

    async def _bf_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": CHANNEL_TOKEN_ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{request.url.origin()}/botframework/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _bf_keys(self, _request: web.Request) -> web.Response:
        return web.json_response(self.channel_jwks())

    async def _control_channel_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"token": self.channel_token(body["appId"], body["serviceUrl"])})


async def start_site(app: web.Application, tls: TlsMaterial | None, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (0 = a free port), https when ``tls`` is given; returns the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls.server_context() if tls else None)
    await site.start()
    sockets = runner.addresses
    return runner, int(sockets[0][1])


class IdentityServer:
    """Runs an ``IdentityStandIn`` over https on its own thread and event loop (see the module docstring)."""

    def __init__(self, stand_in: IdentityStandIn, tls: TlsMaterial, host: str = "127.0.0.1", port: int = 0) -> None:
        self.stand_in, self.tls, self.host, self.port = stand_in, tls, host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def authority(self, tenant: str) -> str:
        """The Entra authority for MSAL and TO_CHANNEL_FROM_BOT_LOGIN_URL."""
        return f"{self.base_url}/{tenant}"

    @property
    def channel_openid_metadata_url(self) -> str:
        """For TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL."""
        return f"{self.base_url}/botframework/v1/.well-known/openidconfiguration"

    @property
    def emulator_openid_metadata_url(self) -> str:
        """For TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL (like login.microsoftonline.com/botframework.com/...)."""
        return f"{self.base_url}/botframework.com/v2.0/.well-known/openid-configuration"

    def start(self) -> IdentityServer:
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as error:  # reported to the starting thread
                errors.append(error)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._close())
            loop.close()

        self._thread = threading.Thread(target=run, name="identity-stand-in", daemon=True)
        self._thread.start()
        started.wait(30)
        if errors:
            raise errors[0]
        return self

    async def _serve(self) -> None:
        self._runner, self.port = await start_site(self.stand_in.app(), self.tls, self.host, self.port)

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> IdentityServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _parse_app(spec: str) -> RegisteredApp:
    """``client_id:secret:tenant[:Role1,Role2]``"""
    client_id, secret, tenant, *roles = spec.split(":", 3)
    return RegisteredApp(client_id, secret, tenant, tuple(r for r in (roles[0] if roles else "").split(",") if r))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument(
        "--app", action="append", default=[], type=_parse_app, help="client_id:secret:tenant[:Role1,Role2] (repeatable)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    tls = ensure_tls(args.cert_dir)
    stand_in = IdentityStandIn(args.app)

    async def serve() -> None:
        _runner, port = await start_site(stand_in.app(), tls, args.host, args.port)
        base_url = f"https://{args.host}:{port}"
        print(json.dumps({"base_url": base_url, "trust_bundle": str(tls.trust_bundle)}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
