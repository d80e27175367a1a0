"""doctor: Graph access to each pool mailbox, the caller sources' permissions, and each line's subscription."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import MessagesRequestBuilder

from bot.config import PoolLine, Settings
from bot.core.ports import Store
from bot.doctor.results import (
    CALLER_SOURCES,
    MAILBOXES,
    SUBSCRIPTIONS,
    Problem,
    _brief,
)
from bot.graph.subscriptions import NOTIFICATION_PATH

EXPIRY_MARGIN = timedelta(hours=12)


SCOPE_SCRIPT = "infra/scope-mailboxes.ps1"


def _scope_command(settings: Settings) -> str:
    mailboxes = ",".join(line.mailbox for line in settings.pool_lines)
    return f"pwsh {SCOPE_SCRIPT} -AppId {settings.graph_client_id} -PoolMailboxes {mailboxes}"


def _mailbox_problem(settings: Settings, mailbox: str, error: APIError) -> Problem:
    status = error.response_status_code
    message = f"{mailbox}: Graph answered {status}: {error.primary_message or 'no message'}"
    if status == 403:
        fix = (
            "Give the app registration the Microsoft Graph application permission Mail.ReadWrite with admin "
            "consent (Entra admin center > App registrations > API permissions > Grant admin consent) and put the "
            f"mailbox into the RBAC scope: {_scope_command(settings)}. New scopes take 30 minutes to 2 hours."
        )
    elif status == 404:
        fix = (
            f"The mailbox {mailbox} does not exist in this tenant: correct its 'mailbox' in POOL_LINES "
            "(the shared mailbox's primary SMTP address)."
        )
    elif status == 401:
        fix = "Graph refused the token: GRAPH_TENANT_ID must be the tenant that holds the mailboxes."
    else:
        fix = "Run doctor again later; if it persists, check Microsoft 365 service health for Exchange Online."
    return Problem(MAILBOXES, message, fix)


async def check_mailbox(settings: Settings, graph: GraphServiceClient, mailbox: str) -> list[Problem]:
    """List one inbox message (id only): the least a working mailbox permission allows."""
    query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(top=1, select=["id"])
    inbox = graph.users.by_user_id(mailbox).mail_folders.by_mail_folder_id("inbox")
    try:
        await inbox.messages.get(RequestConfiguration(query_parameters=query))
    except APIError as exc:
        return [_mailbox_problem(settings, mailbox, exc)]
    except Exception as exc:
        return [
            Problem(
                MAILBOXES,
                f"{mailbox}: Graph unreachable ({_brief(exc)}).",
                "Check GRAPH_BASE_URL (normally https://graph.microsoft.com/v1.0) and that outbound https to it "
                "is allowed.",
            )
        ]
    return []


async def check_mailboxes(settings: Settings, graph: GraphServiceClient) -> list[Problem]:
    results = await asyncio.gather(*(check_mailbox(settings, graph, line.mailbox) for line in settings.pool_lines))
    return [problem for problems in results for problem in problems]


CONTACTS_FIX = (
    "Give the app registration the Microsoft Graph application permission Contacts.Read with admin consent and put "
    "the pool mailboxes' contacts into its RBAC scope (New-ManagementRoleAssignment -Role \"Application "
    "Contacts.Read\" with the same -CustomResourceScope as Mail.ReadWrite), or remove 'contacts' from CALLER_SOURCES."
)


DIRECTORY_FIX = (
    "Give the app registration the Microsoft Graph application permission User.Read.All with admin consent, or "
    "remove 'directory' from CALLER_SOURCES."
)


async def _probe(request: Callable[[], Awaitable[object]], what: str, fix: str) -> list[Problem]:
    try:
        await request()
    except APIError as exc:
        if exc.response_status_code in (401, 403):
            return [Problem(CALLER_SOURCES, f"{what}: Graph refused access ({exc.response_status_code}).", fix)]
        return [Problem(CALLER_SOURCES, f"{what}: Graph answered {exc.response_status_code}.", fix, warning=True)]
    except Exception as exc:
        return [Problem(CALLER_SOURCES, f"{what}: Graph unreachable ({_brief(exc)}).", fix, warning=True)]
    return []


async def check_caller_sources(settings: Settings, graph: GraphServiceClient) -> list[Problem]:
    """Read one item of each configured caller source, with the permission the caller cache needs for it."""
    problems: list[Problem] = []
    one = RequestConfiguration[Any]()
    one.headers.add("Prefer", "odata.maxpagesize=1")
    if "contacts" in settings.caller_sources:
        for line in settings.pool_lines:
            contacts = graph.users.by_user_id(line.mailbox).contacts
            problems += await _probe(lambda c=contacts: c.get(one), f"{line.mailbox} contacts", CONTACTS_FIX)  # type: ignore[misc]
    if "directory" in settings.caller_sources:
        problems += await _probe(lambda: graph.users.delta.get(one), "directory users", DIRECTORY_FIX)
    return problems


_START_FIX = (
    "Start the bot (python -m bot serve, or restart the container app): it subscribes every pool mailbox at "
    "start. If this stays, the bot's log says why; usually PUBLIC_BASE_URL is not reachable (see below)."
)


async def check_subscription(graph: GraphServiceClient, store: Store, line: PoolLine, now: datetime) -> list[Problem]:
    """The stored subscription against Graph's: present, known to Graph and not about to expire."""
    stored = await store.subscriptions.get_subscription(line.mailbox)
    if stored is None:
        message = f"{line.mailbox}: no Graph subscription, so no mail reaches the bot."
        return [Problem(SUBSCRIPTIONS, message, _START_FIX)]
    if stored.expires_at <= now:
        message = f"{line.mailbox}: subscription {stored.subscription_id} expired at {stored.expires_at.isoformat()}."
        return [Problem(SUBSCRIPTIONS, message, _START_FIX)]
    try:
        remote = await graph.subscriptions.by_subscription_id(stored.subscription_id).get()
    except APIError as exc:
        if exc.response_status_code == 404:
            return [
                Problem(
                    SUBSCRIPTIONS,
                    f"{line.mailbox}: Graph does not know subscription {stored.subscription_id} (it was removed).",
                    "The bot replaces it at its next renewal (when a third of SUBSCRIPTION_LIFETIME_MINUTES is left); "
                    f"until then mails arrive only by the periodic catch-up. Make sure {NOTIFICATION_PATH} and the "
                    "lifecycle URL under PUBLIC_BASE_URL are reachable, so Graph does not drop it again.",
                )
            ]
        return [
            Problem(
                SUBSCRIPTIONS,
                f"{line.mailbox}: reading subscription {stored.subscription_id} failed: Graph answered "
                f"{exc.response_status_code}: {exc.primary_message}",
                "See the Graph access check above; run doctor again later.",
            )
        ]
    expires_at = (remote.expiration_date_time if remote else None) or stored.expires_at
    if expires_at - now < EXPIRY_MARGIN:
        return [
            Problem(
                SUBSCRIPTIONS,
                f"{line.mailbox}: subscription {stored.subscription_id} expires at {expires_at.isoformat()}, "
                "in less than 12 hours, and was not renewed.",
                "The running bot renews subscriptions well before they expire: make sure it runs and check its log "
                "for renewal errors; restarting it renews at once.",
            )
        ]
    return []


async def check_subscriptions(
    settings: Settings, graph: GraphServiceClient, store: Store, now: datetime
) -> list[Problem]:
    results = await asyncio.gather(*(check_subscription(graph, store, line, now) for line in settings.pool_lines))
    return [problem for problems in results for problem in problems]
