"""doctor's registry: one small function per report line, run in order over a shared context; the report.

A check whose prerequisite failed (no Graph token, no database) is reported as skipped instead of repeating the same
failure once per mailbox. The printed report never contains a configured secret.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import urlsplit

from azure.core.credentials_async import AsyncTokenCredential
from msgraph import GraphServiceClient

from bot.config import ConfigError, Settings, load_settings
from bot.core.ports import Store
from bot.doctor.business_hours import check_business_hours
from bot.doctor.configuration import (
    bot_credentials_configured,
    check_configuration,
    config_error_problems,
    graph_configured,
)
from bot.doctor.credentials import check_bot_token, check_graph_token, graph_credential
from bot.doctor.database import check_database, check_outbox
from bot.doctor.endpoints import check_placetel_notify, check_public_url, notify_scopes
from bot.doctor.graph import check_caller_sources, check_mailboxes, check_subscriptions
from bot.doctor.results import (
    BUSINESS_HOURS,
    CALLER_SOURCES,
    CONFIGURATION,
    CREDENTIALS,
    DATABASE,
    MAILBOXES,
    OUTBOX,
    PLACETEL_NOTIFY,
    PUBLIC_URL,
    SUBSCRIPTIONS,
    CheckResult,
    Problem,
    _brief,
)
from bot.graph.client import build_graph_client
from bot.logging_setup import redact


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
