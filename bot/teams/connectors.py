"""Connector and user-token clients kept per service URL and app credentials instead of built for every activity.

botbuilder's ``CloudAdapter`` builds a new ``ConnectorClient`` and a new ``UserTokenClient`` for every incoming
activity and every proactive turn; msrest's constructors are expensive (each builds a retry policy that walks every
HTTP status code, and opens its own HTTP session) and were the top CPU cost of a burst of card clicks.
``CachingBotFrameworkAuthentication`` wraps the bot's ``BotFrameworkAuthentication`` so that the connector factories
it hands out share one bounded cache, and keeps one user-token client per app id. The clients are safe to share:
they hold only their endpoint, the credentials (whose token cache refreshes itself) and an HTTP session
(botbuilder's older ``BotFrameworkAdapter`` cached connector clients the same way).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AuthenticateRequestResult,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    JwtTokenValidation,
    UserTokenClient,
)

MAX_CLIENTS = 64
"""Service URLs are few (one per Teams region a tenant uses); the bound only guards against a flood of odd ones."""

CacheKey = tuple[str, str, str]


class ConnectorClientCache:
    """Least-recently-used connector clients keyed by (app id, service URL, audience)."""

    def __init__(self, max_clients: int = MAX_CLIENTS) -> None:
        self._clients: OrderedDict[CacheKey, ConnectorClient] = OrderedDict()
        self._max_clients = max_clients
        self.created = 0
        """How many clients were built (tests and the benchmark read this)."""

    async def client(self, key: CacheKey, factory: ConnectorFactory, service_url: str, audience: str | None) -> Any:
        cached = self._clients.get(key)
        if cached is not None:
            self._clients.move_to_end(key)
            return cached
        created = await factory.create(service_url, audience)
        self.created += 1
        self._clients[key] = created
        while len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        return created

    def __len__(self) -> int:
        return len(self._clients)


class _CachingConnectorFactory(ConnectorFactory):
    def __init__(self, inner: ConnectorFactory, cache: ConnectorClientCache) -> None:
        self._inner = inner
        self._cache = cache
        # botbuilder's factory is built per claims identity and knows the app id its credentials belong to.
        self._app_id = str(getattr(inner, "_app_id", "") or "")

    async def create(self, service_url: str, audience: str = None) -> ConnectorClient:  # type: ignore[assignment]  # noqa: RUF013 - botbuilder's signature
        key = (self._app_id, service_url, audience or "")
        client: ConnectorClient = await self._cache.client(key, self._inner, service_url, audience)
        return client


class CachingBotFrameworkAuthentication(BotFrameworkAuthentication):
    """``inner`` with every connector factory it creates sharing ``cache``; everything else is ``inner``'s."""

    def __init__(self, inner: BotFrameworkAuthentication, cache: ConnectorClientCache | None = None) -> None:
        self._inner = inner
        self.cache = cache or ConnectorClientCache()
        self._user_token_clients: OrderedDict[str, UserTokenClient] = OrderedDict()

    def _wrap(self, factory: ConnectorFactory | None) -> ConnectorFactory | None:
        return _CachingConnectorFactory(factory, self.cache) if factory is not None else None

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        result = await self._inner.authenticate_request(activity, auth_header)
        result.connector_factory = self._wrap(result.connector_factory)
        return result

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        result = await self._inner.authenticate_streaming_request(auth_header, channel_id_header)
        result.connector_factory = self._wrap(result.connector_factory)
        return result

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        factory = self._wrap(self._inner.create_connector_factory(claims_identity))
        assert factory is not None
        return factory

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        app_id = JwtTokenValidation.get_app_id_from_claims(claims_identity.claims) or ""
        client = self._user_token_clients.get(app_id)
        if client is None:
            client = await self._inner.create_user_token_client(claims_identity)
            self._user_token_clients[app_id] = client
            while len(self._user_token_clients) > MAX_CLIENTS:
                self._user_token_clients.popitem(last=False)
        return client

    def create_bot_framework_client(self) -> Any:
        return self._inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return self._inner.get_originating_audience()

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self._inner.authenticate_channel_request(auth_header)
