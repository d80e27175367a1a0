"""doctor: a Graph token and a Bot Framework token, each with the fix for the Entra error it meets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from azure.core.credentials_async import AsyncTokenCredential

from bot.config import Settings
from bot.doctor.configuration import (
    bot_credentials_configured,
    graph_configured,
)
from bot.doctor.results import (
    _AADSTS,
    CREDENTIALS,
    Problem,
    _brief,
)
from bot.graph.client import GRAPH_SCOPE, build_credential
from bot.teams.adapter import auth_settings
from bot.teams.auth import MsalCredentialFactory


@dataclass(frozen=True)
class _AppSettings:
    """The setting names of one app registration, for the fix texts."""

    ids: str
    secret: str
    authority: str


_GRAPH_APP = _AppSettings(
    "GRAPH_CLIENT_ID and GRAPH_TENANT_ID", "GRAPH_CLIENT_SECRET", "GRAPH_AUTHORITY_HOST (and GRAPH_CA_BUNDLE)"
)


_BOT_APP = _AppSettings(
    "MicrosoftAppId and MicrosoftAppTenantId",
    "MicrosoftAppPassword",
    "TO_CHANNEL_FROM_BOT_LOGIN_URL (and BOT_CA_BUNDLE)",
)


_NEW_SECRET = (
    "Create a new client secret (Entra admin center > App registrations > the app > Certificates & secrets > "
    "New client secret), put its Value (not the Secret ID) into {secret} and restart the bot."
)


_TOKEN_FIXES = {
    "AADSTS7000215": _NEW_SECRET,  # invalid client secret
    "AADSTS7000222": _NEW_SECRET,  # expired client secret
    "AADSTS700016": "Check {ids}: copy the Application (client) ID and Directory (tenant) ID from Entra admin "
    "center > App registrations > the app > Overview.",
    "AADSTS90002": "Check {ids}: the tenant was not found; use the Directory (tenant) ID of your tenant.",
}


def _token_problem(error: Exception, who: str, app: _AppSettings) -> Problem:
    """Entra's AADSTS message with the fix for its code, or 'login endpoint unreachable'."""
    match = _AADSTS.search(str(error))
    if match is None:
        return Problem(
            CREDENTIALS,
            f"{who}: no answer from the login endpoint ({_brief(error)}).",
            f"Allow outbound https to login.microsoftonline.com (proxy, firewall); check {app.authority}.",
        )
    message = match.group(0).strip()
    template = _TOKEN_FIXES.get(message.split(":", 1)[0], "Check {ids} and {secret} against the app registration.")
    return Problem(CREDENTIALS, f"{who}: {message}", template.format(ids=app.ids, secret=app.secret))


def graph_credential(settings: Settings) -> tuple[AsyncTokenCredential | None, list[Problem]]:
    """The credential the bot uses for Graph, or the problem building it (e.g. an unreadable certificate)."""
    if not graph_configured(settings):
        return None, []
    try:
        return build_credential(settings), []
    except Exception as exc:
        fix = "Check GRAPH_CLIENT_CERTIFICATE_PATH (a readable PEM file with key) or GRAPH_CLIENT_SECRET."
        return None, [Problem(CREDENTIALS, f"cannot build the Graph credential: {_brief(exc)}", fix)]


async def check_graph_token(settings: Settings, credential: AsyncTokenCredential) -> list[Problem]:
    try:
        await credential.get_token(GRAPH_SCOPE)
    except Exception as exc:
        return [_token_problem(exc, f"Graph token for GRAPH_CLIENT_ID {settings.graph_client_id}", _GRAPH_APP)]
    return []


async def check_bot_token(settings: Settings) -> list[Problem]:
    """A Bot Framework token through the same botbuilder credentials the adapter uses (when auth is on)."""
    if not bot_credentials_configured(settings):
        return []  # check_configuration names what is missing
    who = f"Bot Framework token for MicrosoftAppId {settings.app_id}"
    try:
        bot_auth = auth_settings(settings)
        credentials = await MsalCredentialFactory(bot_auth).create_credentials(
            bot_auth.app_id, bot_auth.oauth_scope, bot_auth.authority, bot_auth.validate_authority
        )
        await asyncio.to_thread(credentials.get_access_token)
    except Exception as exc:
        return [_token_problem(exc, who, _BOT_APP)]
    return []
