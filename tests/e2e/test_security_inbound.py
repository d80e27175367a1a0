"""Inbound trust, one test per attack, against the real app (``create_app`` behind the stand-ins, real JWTs).

Each attack is sent the way a caller holding a valid Bot Framework token (or none) could send it; each test fails
when the protection it names is removed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.app import create_app
from bot.config import ConfigError, load_settings
from bot.graph.subscriptions import NOTIFICATION_PATH
from sandbox.identity import BadChannelToken
from tests.support.bot_stack import ADMIN, CHANNEL_ID, OTHER_CHANNEL_ID, TEAM_ID, BotStack, user
from tests.support.teams import posted_case
from tests.support.teams_standins import BOT_APP, TENANT


def link_attempt(stack: BotStack, sender: dict[str, str] = ADMIN, channel: str = OTHER_CHANNEL_ID) -> dict[str, Any]:
    """An admin's ``verbinden zentrale`` in another channel of the team: it would move the line there."""
    mention = {"type": "mention", "text": "<at>Rufpool</at>", "mentioned": {"id": f"28:{BOT_APP.client_id}"}}
    return stack._activity("message", sender, channel, text="<at>Rufpool</at> verbinden zentrale", entities=[mention])


async def linked_channel(stack: BotStack) -> str | None:
    link = await stack.services.store.links.link_for_line("zentrale")
    return link.channel_id if link else None


async def refusal(response: Any) -> tuple[int, str]:
    return response.status, json.loads(await response.text())["error"]["message"]


async def test_a_non_teams_channel_is_refused(bot_stack: BotStack) -> None:
    await bot_stack.link()
    activity = link_attempt(bot_stack)
    activity["channelId"] = "webchat"  # Teams channelData, a webchat token: botbuilder alone would accept it

    status, reason = await refusal(await bot_stack.post_activity(activity))

    assert (status, reason) == (403, "only Microsoft Teams activities (channelId msteams)")
    assert await linked_channel(bot_stack) == CHANNEL_ID


async def test_an_actor_without_aad_object_id_is_refused(bot_stack: BotStack) -> None:
    await bot_stack.link()
    impostor = {"id": ADMIN["id"], "name": "Ada Admin"}  # the admin's Teams id, but no Entra object id

    status, reason = await refusal(await bot_stack.post_activity(link_attempt(bot_stack, impostor)))

    assert (status, reason) == (400, "from.aadObjectId is required")
    assert await linked_channel(bot_stack) == CHANNEL_ID


@pytest.mark.parametrize("where", ["channelData", "conversation", "both"])
async def test_a_foreign_tenant_is_refused(bot_stack: BotStack, where: str) -> None:
    await bot_stack.link()
    activity = link_attempt(bot_stack)
    if where in ("channelData", "both"):
        activity["channelData"]["tenant"] = {"id": "0f0f0f0f-0000-4000-8000-00000000beef"}
    if where in ("conversation", "both"):
        activity["conversation"]["tenantId"] = "0f0f0f0f-0000-4000-8000-00000000beef"

    status, reason = await refusal(await bot_stack.post_activity(activity))

    expected = (403, "tenant not allowed") if where == "both" else (400, "the activity must name exactly one tenant")
    assert (status, reason) == expected
    assert await linked_channel(bot_stack) == CHANNEL_ID


def test_allowed_tenant_ids_extend_the_allow_list(bot_stack_free_settings: dict[str, Any]) -> None:
    other = "0f0f0f0f-0000-4000-8000-00000000beef"
    settings = load_settings(_env_file=None, **bot_stack_free_settings, allowed_tenant_ids=f" {other.upper()} ,")

    assert settings.allowed_tenants == {TENANT.lower(), other}
    with pytest.raises(ConfigError, match="ALLOWED_TENANT_IDS: tenant ids are GUIDs, not 'contoso'"):
        load_settings(_env_file=None, **bot_stack_free_settings, allowed_tenant_ids=f"{other},contoso")


async def test_a_token_without_expiry_is_refused(bot_stack: BotStack) -> None:
    await bot_stack.link()
    forever = bot_stack.identity.stand_in.bad_channel_token(
        BadChannelToken.NO_EXPIRY, BOT_APP.client_id, bot_stack.connector.service_url
    )

    status, reason = await refusal(await bot_stack.post_activity(link_attempt(bot_stack), forever))

    assert (status, reason) == (401, "token has no expiry")
    assert await linked_channel(bot_stack) == CHANNEL_ID


def nested(depth: int) -> str:
    return '{"type": "message", "value": ' + "[" * depth + "]" * depth + "}"


async def test_deep_json_with_a_bogus_token_is_401_before_the_body_is_read(bot_stack: BotStack) -> None:
    response = await bot_stack.http.post(
        f"{bot_stack.bot_url}/api/messages",
        data=nested(100_000),
        headers={"Authorization": "Bearer " + "x" * 40, "Content-Type": "application/json"},
    )

    assert response.status == 401
    assert json.loads(await response.text())["error"]["message"] == "malformed token"


async def test_deep_json_to_the_graph_webhook_is_400(bot_stack: BotStack) -> None:
    response = await bot_stack.http.post(
        f"{bot_stack.bot_url}{NOTIFICATION_PATH}", data=nested(100_000), headers={"Content-Type": "application/json"}
    )

    assert response.status == 400
    assert "nested too deeply" in await response.text()


@pytest.mark.parametrize("depth", [40, 100_000])
async def test_deep_json_with_a_valid_token_is_400(bot_stack: BotStack, depth: int) -> None:
    token = bot_stack.identity.stand_in.channel_token(BOT_APP.client_id, bot_stack.connector.service_url)
    response = await bot_stack.http.post(
        f"{bot_stack.bot_url}/api/messages",
        data=nested(depth),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status == 400
    assert "nested" in json.loads(await response.text())["error"]["message"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversized_body_is_413(bot_stack: BotStack, chunked: bool) -> None:
    activity = link_attempt(bot_stack)
    activity["text"] = "x" * 300_000
    encoded = json.dumps(activity).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(encoded), 16_384):
            yield encoded[start : start + 16_384]

    token = bot_stack.identity.stand_in.channel_token(BOT_APP.client_id, bot_stack.connector.service_url)
    response = await bot_stack.http.post(
        f"{bot_stack.bot_url}/api/messages",
        data=pieces() if chunked else encoded,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    status, reason = await refusal(response)

    assert status == 413
    assert "larger than" in reason


@pytest.mark.parametrize(
    "data",
    [
        {"command": "delete-everything", "offset": 0},
        {"command": "open", "offset": 10**30},
        {"command": "open", "offset": -5},
        {"command": "open", "offset": "NaN"},
        {"command": ["open"], "offset": {"a": 1}},
    ],
    ids=["unknown-command", "huge-offset", "negative-offset", "nan-offset", "wrong-types"],
)
async def test_a_bad_list_page_click_is_400_with_a_reason(bot_stack: BotStack, data: dict[str, Any]) -> None:
    await bot_stack.link()

    answer = await bot_stack.click("list_page", data, user(0), CHANNEL_ID, "list-card")

    assert answer["statusCode"] == 400, answer
    assert "list_page" in answer["value"]["message"]


@pytest.mark.parametrize(
    "value",
    [
        {"action": {"type": "Action.Execute", "verb": "claim", "data": "not-an-object"}},
        {"action": {"type": "Action.Execute", "verb": ["claim"]}},
        {"action": {"type": "Action.Submit", "verb": "claim"}},
        {"action": "claim"},
        "not-an-object",
        {"action": {"type": "Action.Execute", "verb": "claim", "data": {"case_id": {"$ne": 1}, "version": [1]}}},
        {"action": {"type": "Action.Execute", "verb": "x" * 10_000, "data": {}}},
        {"action": {"type": "Action.Execute", "verb": "claim", "data": {"case_id": "c" * 100_000}}},
        {"action": {"type": "Action.Execute", "verb": "listen", "data": {"case_id": 1, "event": None}}},
        {"action": {"type": "Action.Execute", "verb": "no-such-verb", "data": {}}},
    ],
    ids=[
        "data-string", "verb-list", "submit", "action-string", "value-string", "case-id-object", "huge-verb",
        "huge-case-id", "listen-wrong-types", "unknown-verb",
    ],
)
async def test_every_malformed_card_action_is_400_with_a_reason(bot_stack: BotStack, value: Any) -> None:
    card = await posted_case(bot_stack)
    activity = bot_stack._activity(
        "invoke", user(0), card.conversation_id, name="adaptiveCard/action", replyToId=card.activity_id, value=value
    )

    response = await bot_stack.post_activity(activity)
    answer = json.loads(await response.text())

    assert response.status == 200
    assert answer["statusCode"] == 400 and answer["value"]["message"], answer


async def test_a_service_url_outside_the_allow_list_gets_nothing_sent(bot_stack: BotStack) -> None:
    """The same connector under another name (localhost is not in TEAMS_SERVICE_URLS): nothing may reach it."""
    elsewhere = bot_stack.connector.service_url.replace("127.0.0.1", "localhost")
    token = bot_stack.identity.stand_in.channel_token(BOT_APP.client_id, elsewhere)
    activity = bot_stack._activity("message", user(0), "a:personal-chat", text="hilfe", serviceUrl=elsewhere)

    status, reason = await refusal(await bot_stack.post_activity(activity, token))

    assert (status, reason) == (403, "serviceUrl is not a Teams service URL")
    assert bot_stack.connector.conversations == {}


def test_the_service_url_patterns_match_hosts_not_prefixes() -> None:
    settings = load_settings(_env_file=None, sandbox_mode=True)

    assert settings.is_teams_service_url("https://smba.trafficmanager.net/emea/")
    assert settings.is_teams_service_url("https://SMBA.trafficmanager.net:443/amer/")
    for evil in (
        "https://smba.trafficmanager.net.evil.example/emea/",
        "https://smba.trafficmanager.net@evil.example/",
        "https://evil.example/smba.trafficmanager.net/",
        "http://smba.trafficmanager.net/emea/",
        "https://smba.trafficmanager.net:8443/emea/",
        "https://127.0.0.1:3978/",
        None,
    ):
        assert not settings.is_teams_service_url(evil), evil


@pytest.mark.parametrize(
    "switch",
    [
        {"sandbox_mode": True},
        {"to_bot_from_channel_openid_metadata_url": "https://127.0.0.1:1/keys"},
        {"to_channel_from_bot_login_url": "https://127.0.0.1:1/dstsv2/t"},
        {"teams_service_urls": "https://*"},
        {"graph_base_url": "https://graph.evil.example/v1.0"},
        {"validate_authority": False},
    ],
    ids=["sandbox", "openid-metadata", "login-url", "service-urls", "graph-url", "validate-authority"],
)
@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_local_only_switches_on_a_public_address_are_refused(
    bot_stack_free_settings: dict[str, Any], switch: dict[str, Any], host: str
) -> None:
    with pytest.raises(ConfigError, match="only allowed when HOST is a loopback address"):
        load_settings(_env_file=None, **bot_stack_free_settings, **switch, host=host)

    local = load_settings(_env_file=None, **bot_stack_free_settings, **switch, host="127.0.0.1")
    assert local.local_only_switches
    # create_app checks too: a Settings copied past validation must not start on a public address either.
    with pytest.raises(ConfigError, match="only allowed when HOST is a loopback address"):
        create_app(local.model_copy(update={"host": host}))


def test_production_settings_may_listen_anywhere(bot_stack_free_settings: dict[str, Any]) -> None:
    settings = load_settings(_env_file=None, **bot_stack_free_settings, host="0.0.0.0")

    assert settings.local_only_switches == []
    create_app(settings)


@pytest.fixture
def bot_stack_free_settings() -> dict[str, Any]:
    """Production-shaped settings: a real app id and tenant, Microsoft's endpoints."""
    return {
        "app_id": BOT_APP.client_id,
        "app_password": BOT_APP.client_secret,
        "app_tenant_id": TENANT,
        "link_admins": [TEAM_ID],
    }


async def test_a_stored_service_url_outside_the_allow_list_gets_no_card(bot_stack: BotStack) -> None:
    """A link stored before TEAMS_SERVICE_URLS was narrowed (or planted in the database) is not posted to."""
    await bot_stack.link()
    links = bot_stack.services.store.links
    link = await links.link_for_line("zentrale")
    assert link is not None
    await links.link_channel(replace(link, service_url="https://evil.example/"))

    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.settle()

    dead = await bot_stack.services.store.jobs.dead_letters()
    assert [job.last_error for job in dead if job.kind == "teams.card"] == [
        "the line's service URL is not a Teams service URL (TEAMS_SERVICE_URLS)"
    ]
    assert bot_stack.channel_cards() == []


async def test_a_stored_service_url_outside_the_allow_list_gets_no_weekly_digest(bot_stack: BotStack) -> None:
    """The weekly digest (issue 21) posts through the same allow-list as the cards."""
    from bot.stats.digest import DIGEST_JOB, digest_period

    await bot_stack.link()
    links = bot_stack.services.store.links
    link = await links.link_for_line("zentrale")
    assert link is not None
    await links.link_channel(replace(link, service_url="https://evil.example/"))

    due = datetime(2026, 11, 30, 7, tzinfo=UTC)
    period = digest_period(due)
    payload = {"line_id": "zentrale", "week": due.date().isoformat(), "start": period.start.isoformat(),
               "end": period.end.isoformat()}  # fmt: skip
    await bot_stack.services.store.jobs.enqueue(DIGEST_JOB, payload)
    await bot_stack.settle()

    dead = await bot_stack.services.store.jobs.dead_letters()
    assert [job.last_error for job in dead if job.kind == DIGEST_JOB] == [
        "the line's service URL is not a Teams service URL (TEAMS_SERVICE_URLS)"
    ]
    assert bot_stack.channel_cards() == []


class TestAllowedTenant:
    """The allow-list lets a listed tenant in (the check above must not refuse every other tenant)."""

    PARTNER = "0f0f0f0f-0000-4000-8000-00000000beef"

    @pytest.fixture
    def allowed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ALLOWED_TENANT_IDS", self.PARTNER)

    async def test_a_listed_tenant_is_accepted(self, allowed: None, bot_stack: BotStack) -> None:
        await bot_stack.link()
        activity = link_attempt(bot_stack)
        activity["channelData"]["tenant"] = {"id": self.PARTNER}
        activity["conversation"]["tenantId"] = self.PARTNER

        response = await bot_stack.post_activity(activity)

        assert response.status < 300, await response.text()
        assert await linked_channel(bot_stack) == OTHER_CHANNEL_ID
