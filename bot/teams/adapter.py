"""Builds the Teams adapter (CloudAdapter) and its authentication from the settings."""

from __future__ import annotations

import logging

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import ActivityEventNames
from botframework.connector.auth import AuthenticationConstants, BotFrameworkAuthentication

from bot.config import Settings
from bot.logging_setup import redact
from bot.teams.auth import BotAuthSettings, InboundPolicy, build_bot_framework_authentication
from bot.teams.connectors import CachingBotFrameworkAuthentication
from cards.i18n import conversation_language, text

log = logging.getLogger(__name__)


def auth_settings(settings: Settings) -> BotAuthSettings:
    """Public-cloud defaults unless an endpoint override is configured (local stand-ins)."""
    return BotAuthSettings(
        app_id=settings.app_id,
        app_password=settings.app_password.get_secret_value(),
        tenant_id=settings.app_tenant_id,
        app_type=settings.app_type,
        login_url=settings.to_channel_from_bot_login_url or None,
        oauth_scope=settings.to_channel_from_bot_oauth_scope or AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
        channel_token_issuer=settings.to_bot_from_channel_token_issuer
        or AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
        channel_openid_metadata_url=settings.to_bot_from_channel_openid_metadata_url
        or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        emulator_openid_metadata_url=settings.to_bot_from_emulator_openid_metadata_url
        or AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
        validate_authority=settings.validate_authority,
        ca_bundle=str(settings.bot_ca_bundle) if settings.bot_ca_bundle else None,
        allow_unauthenticated=settings.sandbox_mode and not settings.app_id,
    )


def inbound_policy(settings: Settings) -> InboundPolicy:
    """Teams only, from the bot's own tenant (and ALLOWED_TENANT_IDS), through Teams' service URLs."""
    return InboundPolicy(
        allowed_tenants=settings.allowed_tenants,
        is_service_url_allowed=settings.is_teams_service_url,
        token_issuer=auth_settings(settings).channel_token_issuer,
    )


def build_adapter(settings: Settings) -> tuple[CloudAdapter, BotFrameworkAuthentication, BotAuthSettings]:
    bot_auth = auth_settings(settings)
    authentication = CachingBotFrameworkAuthentication(build_bot_framework_authentication(bot_auth))
    adapter = CloudAdapter(authentication)

    async def on_turn_error(turn_context: TurnContext, error: Exception) -> None:
        if turn_context.activity.name == ActivityEventNames.continue_conversation:
            raise error  # a proactive turn runs inside an outbox job, which must see the failure to retry it
        log.error("unhandled error in a turn: %s", redact(repr(error)), exc_info=error)
        activity = turn_context.activity
        if activity.type == "message":
            in_channel = activity.conversation is not None and activity.conversation.conversation_type == "channel"
            lang = conversation_language(settings.default_locale, activity.locale, in_channel=in_channel)
            await turn_context.send_activity(text(lang, "turn_failed"))

    adapter.on_turn_error = on_turn_error
    return adapter, authentication, bot_auth
