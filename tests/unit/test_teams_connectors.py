"""Connector clients are built once per service URL and app credentials, not for every activity."""

from __future__ import annotations

from bot.config import Settings
from bot.teams.adapter import build_adapter
from bot.teams.connectors import CachingBotFrameworkAuthentication, ConnectorClientCache


async def test_turns_share_one_connector_client_per_service_url() -> None:
    adapter, authentication, _ = build_adapter(Settings(_env_file=None, sandbox_mode=True))  # type: ignore[call-arg]
    assert isinstance(authentication, CachingBotFrameworkAuthentication)
    claims = adapter.create_claims_identity("")

    first = await authentication.create_connector_factory(claims).create("https://smba.example/emea/", None)
    # A later turn gets a new factory from botbuilder, and still the same client.
    again = await authentication.create_connector_factory(claims).create("https://smba.example/emea/", None)
    other_region = await authentication.create_connector_factory(claims).create("https://smba.example/amer/", None)

    assert again is first
    assert other_region is not first
    assert authentication.cache.created == 2


async def test_the_cache_is_bounded_and_keeps_the_recently_used() -> None:
    adapter, authentication, _ = build_adapter(Settings(_env_file=None, sandbox_mode=True))  # type: ignore[call-arg]
    assert isinstance(authentication, CachingBotFrameworkAuthentication)
    authentication.cache = ConnectorClientCache(max_clients=2)
    factory = authentication.create_connector_factory(adapter.create_claims_identity(""))

    a = await factory.create("https://a.example/", None)
    await factory.create("https://b.example/", None)
    assert await factory.create("https://a.example/", None) is a  # a is now the most recently used
    await factory.create("https://c.example/", None)  # evicts b

    assert len(authentication.cache) == 2
    assert await factory.create("https://a.example/", None) is a
    assert authentication.cache.created == 3
    await factory.create("https://b.example/", None)
    assert authentication.cache.created == 4


async def test_turns_share_one_user_token_client() -> None:
    adapter, authentication, _ = build_adapter(Settings(_env_file=None, sandbox_mode=True))  # type: ignore[call-arg]
    claims = adapter.create_claims_identity("")

    first = await authentication.create_user_token_client(claims)
    assert await authentication.create_user_token_client(adapter.create_claims_identity("")) is first
