"""``python -m bot doctor``: checks what an admin sets up and prints every problem together with its fix.

Each check is a small function registered with :func:`register` (in the order of the report) that turns the shared
:class:`Context` into a :class:`CheckResult`; :func:`diagnose` runs the registry, :func:`format_report` turns the
results into text. Doctor only reads: it opens the database without migrating it. A check whose prerequisite failed
(no Graph token, no database) is reported as skipped instead of repeating the same failure once per mailbox. The
printed report never contains a configured secret.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import MessagesRequestBuilder

from bot.config import ConfigError, ConfigProblem, PoolLine, Settings, load_settings, serving_problems
from bot.core.ports import Store
from bot.core.values import GLOBAL_SCOPE
from bot.graph.client import GRAPH_SCOPE, build_credential, build_graph_client, ssl_context
from bot.graph.subscriptions import NOTIFICATION_PATH
from bot.logging_setup import redact
from bot.placetel.notify import NOTIFY_PATH, SIGNATURE_HEADER, signature
from bot.storage.factory import open_store, pending_migrations
from bot.teams.adapter import auth_settings
from bot.teams.auth import MsalCredentialFactory

CONFIGURATION = "configuration"
CREDENTIALS = "credentials"
MAILBOXES = "Graph access to the mailboxes"
SUBSCRIPTIONS = "subscriptions"
DATABASE = "database"
PUBLIC_URL = "public notification URL"
PLACETEL_NOTIFY = "Placetel call webhooks (Notify API)"
OUTBOX = "outbox"
CALLER_SOURCES = "caller names (Graph permissions)"
BUSINESS_HOURS = "business hours and reminders"

EXPIRY_MARGIN = timedelta(hours=12)
VALIDATION_TIMEOUT_S = 10.0  # Graph's limit for the validation handshake
SCOPE_SCRIPT = "infra/scope-mailboxes.ps1"
_AADSTS = re.compile(r"AADSTS\d+:[^\r\n\\]*")


@dataclass(frozen=True)
class Problem:
    check: str
    message: str
    """What is wrong."""
    fix: str
    """What to do: the setting, portal step or command."""
    warning: bool = False
    """A warning is printed but does not make doctor fail."""


@dataclass(frozen=True)
class CheckResult:
    check: str
    problems: list[Problem] = field(default_factory=list)
    skipped: str | None = None
    """Why the check could not run (a prerequisite failed or it does not apply)."""
    notes: list[str] = field(default_factory=list)
    """What the check found that is worth showing although nothing is wrong (e.g. each line's hours)."""

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if not problem.warning]

    @property
    def status(self) -> str:
        if self.skipped:
            return "SKIP"
        if self.errors:
            return "FAIL"
        return "WARN" if self.problems else "OK"


def config_error_problems(error: ConfigError) -> list[Problem]:
    """One problem per bad setting named by :func:`bot.config.load_settings`, with its fix."""
    return [_config_problem(problem) for problem in error.problems] or [
        Problem(CONFIGURATION, str(error), "Correct the settings named above.")
    ]


def _config_problem(problem: ConfigProblem) -> Problem:
    where = " (in the environment: .env locally; the container app's settings or Key Vault in Azure)"
    return Problem(CONFIGURATION, str(problem), problem.fix[:1].upper() + problem.fix[1:].rstrip(".") + where + ".")


def graph_configured(settings: Settings) -> bool:
    has_secret = bool(settings.graph_client_secret.get_secret_value() or settings.graph_client_certificate_path)
    return bool(settings.graph_tenant_id and settings.graph_client_id and has_secret)


def bot_credentials_configured(settings: Settings) -> bool:
    """Enough set to ask for a Bot Framework token (a missing setting is a configuration problem, not a network one)."""
    has_secret = settings.app_type == "UserAssignedMSI" or bool(settings.app_password.get_secret_value())
    return bool(settings.app_id and settings.app_tenant_id and has_secret)


def check_configuration(settings: Settings) -> list[Problem]:
    """What ``python -m bot serve`` would refuse, and what makes the bot less useful than expected."""
    problems = [_config_problem(problem) for problem in serving_problems(settings)]
    if settings.local_only_switches:
        problems.append(
            Problem(
                CONFIGURATION,
                f"Local sandbox, not production: {', '.join(settings.local_only_switches)} in effect "
                f"(authentication off or endpoints other than Microsoft's); allowed only on loopback HOST "
                f"{settings.host}.",
                "For production remove these settings (and SANDBOX_MODE); the bot then refuses to start with them "
                "on a public address anyway.",
                warning=True,
            )
        )
    if not settings.sandbox_mode and not settings.public_base_url.startswith("https://"):
        problems.append(
            Problem(
                CONFIGURATION,
                f"PUBLIC_BASE_URL {settings.public_base_url} is not https: Graph only notifies https URLs.",
                "Set PUBLIC_BASE_URL to the bot's public https address (the reverse proxy or Container App ingress).",
                warning=True,
            )
        )
    if not settings.link_admins:
        problems.append(
            Problem(
                CONFIGURATION,
                "LINK_ADMINS is empty: nobody may link a pool line to a channel.",
                "Set LINK_ADMINS to the UPNs (comma-separated) of the people who link channels, e.g. it@firma.de.",
                warning=True,
            )
        )
    return problems


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


def _brief(error: BaseException) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"[:300] if first_line else type(error).__name__


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


def masked_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def check_database(settings: Settings) -> tuple[Store | None, list[Problem]]:
    """Open the store without migrating it and ping it; the open store is returned for the next checks. Migrations
    not applied yet are a warning: the bot applies them when it starts."""
    if settings.database_url.startswith("sqlite:"):
        fix = "Check DATABASE_URL: the file's directory must exist or be creatable and writable by the bot's user."
    else:
        fix = (
            "Check DATABASE_URL (host, port, database, user, percent-encoded password, sslmode=require on Azure), "
            "that PostgreSQL runs and that its firewall admits this host."
        )
    store: Store | None = None
    try:
        store = await open_store(settings.database_url, migrate=False)
        await store.ping()
        pending = await pending_migrations(store)
    except Exception as exc:
        if store is not None:
            await store.close()
        message = f"cannot use the database {masked_url(settings.database_url)}: {_brief(exc)}"
        return None, [Problem(DATABASE, message, fix)]
    if pending:
        versions = ", ".join(f"{version:04d}" for version in pending)
        message = f"{len(pending)} schema migration(s) not applied yet ({versions})"
        return store, [Problem(DATABASE, message, "Start the bot once: it applies them at start.", warning=True)]
    return store, []


async def check_outbox(store: Store) -> list[Problem]:
    """Dead letters are effects on Teams or Graph that never happened: each one is worth a look."""
    dead = await store.jobs.dead_letters(limit=5)
    if not dead:
        return []
    depth = await store.jobs.depth()
    errors = "; ".join(f"{job.kind} #{job.id}: {job.last_error or '?'}" for job in dead)
    return [
        Problem(
            OUTBOX,
            f"{depth.get('dead', len(dead))} job(s) gave up after all retries (newest: {errors})",
            "Fix the cause the errors name (permissions, a deleted channel, a removed mail); the card or flag "
            "catches up with the next change of its case, and the periodic catch-up repairs flags.",
        )
    ]


async def check_public_url(settings: Settings) -> list[Problem]:
    """Graph's validation handshake: POST ``?validationToken=…`` must come back 200, text/plain, token echoed."""
    url = settings.public_base_url + NOTIFICATION_PATH
    # Like Graph's tokens, this one holds characters that must be URL-decoded on the way in.
    token = f"Validation: Rufpool doctor {secrets.token_urlsafe(8)} <&+?=>"
    ca_bundle = str(settings.graph_ca_bundle) if settings.graph_ca_bundle else None
    reach_fix = (
        f"Make sure the bot runs and that {url} reaches it from the internet: the reverse proxy or ingress must "
        f"forward POST {NOTIFICATION_PATH} to the bot (port {settings.port}), the firewall must admit inbound "
        "https, and PUBLIC_BASE_URL must be the bot's public address."
    )
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=VALIDATION_TIMEOUT_S)) as session,
            session.post(url, params={"validationToken": token}, ssl=ssl_context(ca_bundle)) as response,
        ):
            status, content_type, body = response.status, response.content_type, await response.text()
    except aiohttp.ClientSSLError as exc:
        fix = "Serve PUBLIC_BASE_URL with a certificate from a public CA valid for its host name (Graph checks it)."
        return [Problem(PUBLIC_URL, f"{url}: TLS failed ({_brief(exc)}).", fix)]
    except TimeoutError:
        return [Problem(PUBLIC_URL, f"{url}: no answer within {VALIDATION_TIMEOUT_S:.0f} s.", reach_fix)]
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or str(exc.os_error)
        return [
            Problem(PUBLIC_URL, f"{url}: unreachable (cannot connect to {exc.host}:{exc.port}: {reason}).", reach_fix)
        ]
    except aiohttp.ClientError as exc:
        return [Problem(PUBLIC_URL, f"{url}: unreachable ({_brief(exc)}).", reach_fix)]
    if status != 200:
        return [Problem(PUBLIC_URL, f"{url}: the validation request was answered {status}, not 200.", reach_fix)]
    if content_type != "text/plain" or body != token:
        return [
            Problem(
                PUBLIC_URL,
                f"{url}: the validation token did not come back unchanged as text/plain (got {content_type}).",
                "PUBLIC_BASE_URL must lead to Rufpool itself; the reverse proxy must pass the query string unchanged "
                "and must not rewrite the answer.",
            )
        ]
    return []


MIN_NOTIFY_SECRET_LENGTH = 16


def notify_scopes(settings: Settings) -> dict[str, str]:
    """The configured Notify secrets by scope (the global one and lines' own), empty ones left out."""
    scopes = {GLOBAL_SCOPE: settings.placetel_notify_secret.get_secret_value()}
    scopes |= {line.id: line.notify_secret.get_secret_value() for line in settings.pool_lines if line.notify_secret}
    return {scope: secret for scope, secret in scopes.items() if secret}


def _ping_body(settings: Settings, scope: str) -> bytes:
    """A harmless call event (an ``IncomingCall`` only announces a call) to one of the scope's numbers."""
    line = settings.lines_by_id.get(scope) or (settings.pool_lines[0] if settings.pool_lines else None)
    to = line.numbers[0] if line else ""
    fields = {"event": "IncomingCall", "call_id": f"doctor-{secrets.token_hex(16)}", "from": "anonymous", "to": to}
    return urlencode(fields).encode()


async def check_placetel_notify(settings: Settings) -> list[Problem] | None:
    """Secret set, the webhook URL reachable, a signed ping accepted and an unsigned one refused (None: not used)."""
    scopes = notify_scopes(settings)
    url = settings.public_base_url + NOTIFY_PATH
    wants_webhooks = any(line.team_extensions or line.auto_done_on_callback for line in settings.pool_lines)
    if not scopes:
        if not wants_webhooks:
            return None
        return [
            Problem(
                PLACETEL_NOTIFY,
                "team extensions or AUTO_DONE_ON_CALLBACK are configured, but no Notify secret: no call webhook "
                "is accepted, so no callback is ever detected.",
                "Copy the secret from Placetel (Settings → External APIs → Notify API) into PLACETEL_NOTIFY_SECRET "
                "(or a line's notify_secret).",
            )
        ]
    problems = [
        Problem(
            PLACETEL_NOTIFY,
            f"the Notify secret of {'all lines' if scope == GLOBAL_SCOPE else scope} is short "
            f"({len(secret)} characters).",
            f"Use a random secret of at least {MIN_NOTIFY_SECRET_LENGTH} characters in Placetel and here.",
            warning=True,
        )
        for scope, secret in scopes.items()
        if len(secret) < MIN_NOTIFY_SECRET_LENGTH
    ]
    reach_fix = (
        f"Make sure the bot runs and {url} reaches it: the reverse proxy must forward POST {NOTIFY_PATH} with its "
        f"body and the {SIGNATURE_HEADER} header unchanged; in Placetel enter this URL under Settings → External "
        "APIs → Notify API for each pool number."
    )
    ca_bundle = str(settings.graph_ca_bundle) if settings.graph_ca_bundle else None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=VALIDATION_TIMEOUT_S)) as session:
            for scope, secret in scopes.items():
                body = _ping_body(settings, scope)
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    SIGNATURE_HEADER: signature(secret, body),
                }
                async with session.post(url, data=body, headers=headers, ssl=ssl_context(ca_bundle)) as response:
                    if response.status != 200:
                        who = "the global secret" if scope == GLOBAL_SCOPE else f"the secret of {scope}"
                        problems.append(
                            Problem(
                                PLACETEL_NOTIFY,
                                f"{url}: a test event signed with {who} was answered {response.status}, not 200.",
                                "The bot must run with the same secret as Placetel; " + reach_fix,
                            )
                        )
            body = _ping_body(settings, GLOBAL_SCOPE)
            async with session.post(url, data=body, ssl=ssl_context(ca_bundle)) as response:
                if response.status != 401:
                    problems.append(
                        Problem(
                            PLACETEL_NOTIFY,
                            f"{url}: an unsigned test event was answered {response.status}, not 401.",
                            "PUBLIC_BASE_URL must lead to Rufpool itself, not to something that accepts anything.",
                        )
                    )
    except TimeoutError:
        problems.append(Problem(PLACETEL_NOTIFY, f"{url}: no answer within {VALIDATION_TIMEOUT_S:.0f} s.", reach_fix))
    except aiohttp.ClientError as exc:
        problems.append(Problem(PLACETEL_NOTIFY, f"{url}: unreachable ({_brief(exc)}).", reach_fix))
    return problems


def _local(moment: datetime, line: PoolLine) -> str:
    return f"{moment.astimezone(line.hours.calendar.tz):%a %Y-%m-%d %H:%M}"


def describe_line_hours(line: PoolLine, now: datetime) -> tuple[str, list[Problem]]:
    """One line's hours, holidays, open state, next opening and reminder rules, for the doctor's report."""
    hours, rules = line.hours, line.reminders
    calendar = hours.calendar
    holidays = f"holidays of {hours.state}" if hours.state else "nationwide holidays"
    closed = f", {len(hours.closed)} extra closed day entries" if hours.closed else ""
    parts = [f"{line.id}: {hours.weekly_hours.describe()} ({hours.timezone}, {holidays}{closed})"]
    problems: list[Problem] = []
    opening = calendar.next_opening(now)
    if calendar.is_open(now):
        until = next(end for start, end in calendar.intervals_from(now))
        parts.append(f"open now until {_local(until, line)}")
    else:
        reason = calendar.closed_reason(now.astimezone(calendar.tz).date())
        parts.append("closed now" + (f" ({reason})" if reason else ""))
    if opening is not None:
        parts.append(f"next opening {_local(opening, line)}")
    else:
        problems.append(
            Problem(
                BUSINESS_HOURS,
                f"{line.id}: the line never opens within a year (hours {hours.weekly!r}, closed {hours.closed}).",
                f"Correct POOL_LINES[{line.id}].hours: weekly hours like 'Mo-Fr 08:00-18:00' and fewer closed days.",
            )
        )
    if rules.enabled:
        escalation = f", escalation after {rules.escalate_after}" if rules.escalate_to else ", no escalation"
        parts.append(f"reminders after {rules.unclaimed_minutes}/{rules.claimed_minutes} min{escalation}")
        if rules.tag is None and not rules.mention:
            problems.append(
                Problem(
                    BUSINESS_HOURS,
                    f"{line.id}: reminders mention nobody (no 'tag' and no 'mention' people).",
                    f"Add a team tag or people to POOL_LINES[{line.id}].reminders so reminders reach someone.",
                    warning=True,
                )
            )
    else:
        parts.append("reminders off")
    return "; ".join(parts), problems


def check_business_hours(settings: Settings, now: datetime) -> CheckResult:
    if not settings.pool_lines:
        return CheckResult(BUSINESS_HOURS, skipped="no POOL_LINES")
    notes, problems = [], []
    for line in settings.pool_lines:
        note, found = describe_line_hours(line, now)
        notes.append(note)
        problems.extend(found)
    return CheckResult(BUSINESS_HOURS, problems, notes=notes)


def _graph_skip_reason(settings: Settings, credential: AsyncTokenCredential | None, token: list[Problem]) -> str | None:
    if not settings.pool_lines:
        return "no POOL_LINES"
    if credential is None:
        return "no Graph credentials"
    return "no Graph token" if token else None


@dataclass
class Context:
    """What the checks share: the settings, the time, and what one check opened for the next (token, store, Graph)."""

    settings: Settings
    now: datetime
    token_problems: list[Problem]
    store: Store | None
    database_problems: list[Problem]
    graph: GraphServiceClient | None
    graph_skipped: str | None


CheckFunction = Callable[[Context], Awaitable[CheckResult | None]]
"""One check: its result, or None when it does not apply to this configuration (left out of the report)."""


@dataclass(frozen=True)
class RegisteredCheck:
    name: str
    run: CheckFunction


REGISTRY: list[RegisteredCheck] = []
"""Every check, in the order of the report (Django's check registry, in small)."""


def register(name: str) -> Callable[[CheckFunction], CheckFunction]:
    def add(function: CheckFunction) -> CheckFunction:
        REGISTRY.append(RegisteredCheck(name, function))
        return function

    return add


@register(CONFIGURATION)
async def _configuration(context: Context) -> CheckResult:
    return CheckResult(CONFIGURATION, check_configuration(context.settings))


@register(BUSINESS_HOURS)
async def _business_hours(context: Context) -> CheckResult:
    return check_business_hours(context.settings, context.now)


@register(CREDENTIALS)
async def _credentials(context: Context) -> CheckResult:
    settings = context.settings
    if not (graph_configured(settings) or bot_credentials_configured(settings)):
        return CheckResult(CREDENTIALS, skipped="no Graph credentials and bot authentication is off")
    return CheckResult(CREDENTIALS, context.token_problems + await check_bot_token(settings))


@register(MAILBOXES)
async def _mailboxes(context: Context) -> CheckResult:
    if context.graph is None:
        return CheckResult(MAILBOXES, skipped=context.graph_skipped)
    return CheckResult(MAILBOXES, await check_mailboxes(context.settings, context.graph))


@register(CALLER_SOURCES)
async def _caller_sources(context: Context) -> CheckResult | None:
    if context.graph is None or not set(context.settings.caller_sources) - {"pbx"}:
        return None
    return CheckResult(CALLER_SOURCES, await check_caller_sources(context.settings, context.graph))


@register(SUBSCRIPTIONS)
async def _subscriptions(context: Context) -> CheckResult:
    if context.graph is None:
        return CheckResult(SUBSCRIPTIONS, skipped=context.graph_skipped)
    if context.store is None:
        return CheckResult(SUBSCRIPTIONS, skipped="the database is unavailable")
    return CheckResult(
        SUBSCRIPTIONS, await check_subscriptions(context.settings, context.graph, context.store, context.now)
    )


@register(DATABASE)
async def _database(context: Context) -> CheckResult:
    return CheckResult(DATABASE, context.database_problems)


@register(OUTBOX)
async def _outbox(context: Context) -> CheckResult:
    if context.store is None:
        return CheckResult(OUTBOX, skipped="the database is unavailable")
    return CheckResult(OUTBOX, await check_outbox(context.store))


@register(PUBLIC_URL)
async def _public_url(context: Context) -> CheckResult:
    return CheckResult(PUBLIC_URL, await check_public_url(context.settings))


@register(PLACETEL_NOTIFY)
async def _placetel_notify(context: Context) -> CheckResult:
    problems = await check_placetel_notify(context.settings)
    if problems is None:
        return CheckResult(PLACETEL_NOTIFY, skipped="not used (no PLACETEL_NOTIFY_SECRET): cards come from mails only")
    return CheckResult(PLACETEL_NOTIFY, problems)


async def _context(settings: Settings, now: datetime, stack: AsyncExitStack) -> Context:
    """Obtain once what several checks need: the Graph token, the open store, a Graph client."""
    credential, token_problems = graph_credential(settings)
    if credential is not None:
        stack.push_async_callback(credential.close)
        token_problems = await check_graph_token(settings, credential)
    store, database_problems = await check_database(settings)
    if store is not None:
        stack.push_async_callback(store.close)
    skipped = _graph_skip_reason(settings, credential, token_problems)
    graph = build_graph_client(settings, credential) if skipped is None and credential is not None else None
    return Context(settings, now, token_problems, store, database_problems, graph, skipped)


async def diagnose(
    settings: Settings, now: datetime | None = None, checks: Sequence[RegisteredCheck] | None = None
) -> list[CheckResult]:
    """Run every registered check (or ``checks``) in order; one failing check never stops the others."""
    results: list[CheckResult] = []
    async with AsyncExitStack() as stack:
        context = await _context(settings, now or datetime.now(UTC), stack)
        for check in REGISTRY if checks is None else checks:
            try:
                result = await check.run(context)
            except Exception as exc:
                fix = "Run doctor again; if it persists, report it with this message."
                result = CheckResult(check.name, [Problem(check.name, f"the check failed: {_brief(exc)}", fix)])
            if result is not None:
                results.append(result)
    return results


def format_report(results: Sequence[CheckResult]) -> str:
    lines = ["Rufpool doctor", ""]
    for result in results:
        lines.append(f"[{result.status}] {result.check}" + (f" (skipped: {result.skipped})" if result.skipped else ""))
        lines.extend(f"    · {note}" for note in result.notes)
        for problem in result.problems:
            lines.append(f"    - {'warning' if problem.warning else 'problem'}: {problem.message}")
            lines.append(f"      Fix: {problem.fix}")
    errors = sum(len(result.errors) for result in results)
    warnings = sum(len(result.problems) for result in results) - errors
    passed = sum(result.status in {"OK", "WARN"} for result in results)
    skipped = sum(result.skipped is not None for result in results)
    lines += [
        "",
        f"Summary: {errors} problem(s), {warnings} warning(s); {passed} of {len(results)} checks passed, "
        f"{skipped} skipped.",
    ]
    if not errors:
        lines.append("All checks passed.")
    return "\n".join(lines)


def exit_code(results: Sequence[CheckResult]) -> int:
    return 1 if any(result.errors for result in results) else 0


def secret_masker(settings: Settings) -> Callable[[str], str]:
    """Replaces every configured secret (and bearer tokens, phone numbers) in a text."""
    values = [
        settings.graph_client_secret.get_secret_value(),
        settings.app_password.get_secret_value(),
        settings.graph_client_state.get_secret_value(),
        urlsplit(settings.database_url).password or "",
        *notify_scopes(settings).values(),
    ]
    ordered = sorted((value for value in values if value), key=len, reverse=True)

    def mask(text: str) -> str:
        for value in ordered:
            text = text.replace(value, "***")
        return redact(text)

    return mask


async def run_doctor(settings: Settings, out: TextIO | None = None) -> int:
    """Print the report for valid settings; 0 when nothing is wrong (warnings allowed), else 1."""
    results = await diagnose(settings)
    print(secret_masker(settings)(format_report(results)), file=out or sys.stdout)
    return exit_code(results)


async def run_doctor_from_env(out: TextIO | None = None, **overrides: object) -> int:
    """Like :func:`run_doctor`, reading the settings itself so that an invalid configuration is reported too."""
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        results = [CheckResult(CONFIGURATION, config_error_problems(exc))] + [
            CheckResult(check, skipped="the configuration is invalid")
            for check in (CREDENTIALS, MAILBOXES, SUBSCRIPTIONS, DATABASE, PUBLIC_URL, PLACETEL_NOTIFY)
        ]
        print(redact(format_report(results)), file=out or sys.stdout)
        return exit_code(results)
    return await run_doctor(settings, out)
