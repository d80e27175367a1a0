"""doctor: the public notification URL answers Graph's validation, and Placetel's call webhook takes a signed ping."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import aiohttp

from bot.config import Settings
from bot.core.values import GLOBAL_SCOPE
from bot.doctor.results import (
    PLACETEL_NOTIFY,
    PUBLIC_URL,
    Problem,
    _brief,
)
from bot.graph.client import ssl_context
from bot.graph.subscriptions import NOTIFICATION_PATH
from bot.placetel.notify import NOTIFY_PATH, SIGNATURE_HEADER, signature

VALIDATION_TIMEOUT_S = 10.0  # Graph's limit for the validation handshake


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
