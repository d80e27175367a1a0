"""`python -m bot doctor` against the stand-ins: all green, then each failure on its own with its message and fix."""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.__main__ import main
from bot.config import Settings, load_settings
from bot.core.ports import RetryPolicy, Store, Subscription
from bot.core.values import GLOBAL_SCOPE
from bot.doctor import (
    BUSINESS_HOURS,
    CONFIGURATION,
    CREDENTIALS,
    DATABASE,
    MAILBOXES,
    OUTBOX,
    PLACETEL_NOTIFY,
    PUBLIC_URL,
    SUBSCRIPTIONS,
    CheckResult,
    check_bot_token,
    check_business_hours,
    check_configuration,
    diagnose,
    format_report,
    run_doctor,
    run_doctor_from_env,
    secret_masker,
)
from bot.graph.client import build_credential, build_graph_client
from bot.graph.subscriptions import LIFECYCLE_PATH, NOTIFICATION_PATH, SubscriptionManager
from bot.graph.webhooks import notification_handler
from bot.placetel.notify import NOTIFY_PATH, notify_handler
from bot.storage.factory import open_store
from sandbox.graph import GraphStandIn
from sandbox.identity import GRAPH_AUDIENCE, IdentityServer
from sandbox.tls import TlsMaterial
from tests.support.teams_standins import BOT_APP, GRAPH_APP, TENANT

POOL = "zentrale@example.com"
CLIENT_STATE = "doctor-client-state-value"
NOTIFY_SECRET = "doctor-notify-secret-0123456789"
ALL_CHECKS = [CONFIGURATION, BUSINESS_HOURS, CREDENTIALS, MAILBOXES, SUBSCRIPTIONS, DATABASE, OUTBOX, PUBLIC_URL]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@dataclass
class Sandbox:
    """Identity and Graph stand-ins, a store, and the bot's real notification handler on a port."""

    identity: IdentityServer
    tls: TlsMaterial
    graph: GraphStandIn
    store: Store
    database_url: str
    public_base_url: str

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "sandbox_mode": True,
            "graph_tenant_id": TENANT,
            "graph_client_id": GRAPH_APP.client_id,
            "graph_client_secret": GRAPH_APP.client_secret,
            "graph_base_url": self.graph.base_url + "/v1.0",
            "graph_authority_host": self.identity.base_url,
            "graph_ca_bundle": self.tls.trust_bundle,
            "graph_client_state": CLIENT_STATE,
            "database_url": self.database_url,
            "public_base_url": self.public_base_url,
            "pool_lines": [{"id": "zentrale", "mailbox": POOL, "numbers": ["+4930123456"], "display_name": "Zentrale"}],
            "link_admins": ["it@example.com"],
        }
        return load_settings(**(values | overrides))

    async def subscribe(self, settings: Settings) -> Subscription:
        """Subscribe the pool mailbox the way the bot does at start (handshake against the endpoint)."""
        credential = build_credential(settings)
        try:
            manager = SubscriptionManager(build_graph_client(settings, credential), self.store, settings, "test")
            subscription = await manager.ensure(settings.pool_lines[0])
        finally:
            await credential.close()
        assert subscription is not None
        return subscription


@pytest.fixture
async def sandbox(identity_server: IdentityServer, sandbox_tls: TlsMaterial, tmp_path: Path) -> AsyncIterator[Sandbox]:
    graph = GraphStandIn(mailboxes=[POOL], token_validator=identity_server.stand_in.token_validator(GRAPH_AUDIENCE))
    await graph.start()
    database_url = f"sqlite:///{tmp_path / 'rufpool.sqlite3'}"
    store = await open_store(database_url)
    endpoint = web.Application()
    handler = notification_handler(store.jobs, CLIENT_STATE, lambda: None)
    endpoint.router.add_post(NOTIFICATION_PATH, handler)
    endpoint.router.add_post(LIFECYCLE_PATH, handler)
    endpoint.router.add_post(NOTIFY_PATH, notify_handler(store.jobs, {GLOBAL_SCOPE: NOTIFY_SECRET}, lambda: None))
    runner, base_url = await serve(endpoint)
    yield Sandbox(identity_server, sandbox_tls, graph, store, database_url, base_url)
    await runner.cleanup()
    await store.close()
    await graph.stop()


async def doctor(settings: Settings) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_doctor(settings, out)
    return code, out.getvalue()


async def test_all_green(sandbox: Sandbox) -> None:
    settings = sandbox.settings()
    await sandbox.subscribe(settings)

    code, output = await doctor(settings)

    assert code == 0, output
    for check in ALL_CHECKS:
        # Stand-ins are a local sandbox: doctor says so (a warning), it never passes for production silently.
        assert f"[{'WARN' if check == 'configuration' else 'OK'}] {check}" in output
    switches = "SANDBOX_MODE, GRAPH_CA_BUNDLE, GRAPH_BASE_URL, GRAPH_AUTHORITY_HOST"
    assert f"Local sandbox, not production: {switches}" in output
    assert "0 problem(s), 1 warning(s); 8 of 9 checks passed, 1 skipped" in output
    assert f"[SKIP] {PLACETEL_NOTIFY} (skipped: not used" in output
    assert "All checks passed." in output


async def test_placetel_notify_round_trips_a_signed_ping(sandbox: Sandbox) -> None:
    settings = sandbox.settings(placetel_notify_secret=NOTIFY_SECRET)
    await sandbox.subscribe(settings)
    code, output = await doctor(settings)

    assert code == 0, output
    assert f"[OK] {PLACETEL_NOTIFY}" in output
    assert NOTIFY_SECRET not in output


async def test_placetel_notify_with_another_secret_than_the_bot_fails(sandbox: Sandbox) -> None:
    code, output = await doctor(sandbox.settings(placetel_notify_secret="not-the-secret-the-bot-has"))

    assert code == 1
    assert f"[FAIL] {PLACETEL_NOTIFY}" in output
    assert "a test event signed with the global secret was answered 401, not 200." in output
    assert "not-the-secret-the-bot-has" not in output


async def test_placetel_notify_unreachable_or_short_secret(sandbox: Sandbox) -> None:
    settings = sandbox.settings(placetel_notify_secret="k9x2z", public_base_url=f"http://127.0.0.1:{free_port()}")
    code, output = await doctor(settings)

    assert code == 1
    assert f"[FAIL] {PLACETEL_NOTIFY}" in output
    assert f"{NOTIFY_PATH}: unreachable" in output
    assert "is short (5 characters)" in output


async def test_placetel_notify_endpoint_accepting_anything_fails(sandbox: Sandbox) -> None:
    async def accept_all(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post(NOTIFY_PATH, accept_all)
    runner, base_url = await serve(app)
    try:
        code, output = await doctor(sandbox.settings(placetel_notify_secret=NOTIFY_SECRET, public_base_url=base_url))
    finally:
        await runner.cleanup()

    assert code == 1
    assert "an unsigned test event was answered 200, not 401." in output


async def test_callback_settings_without_a_notify_secret_fail(sandbox: Sandbox) -> None:
    line = {"id": "zentrale", "mailbox": POOL, "numbers": ["+4930123456"], "display_name": "Zentrale"}
    code, output = await doctor(sandbox.settings(pool_lines=[line | {"auto_done_on_callback": "reached"}]))

    assert code == 1
    assert f"[FAIL] {PLACETEL_NOTIFY}" in output
    assert "PLACETEL_NOTIFY_SECRET" in output


async def test_invalid_configuration_is_reported_with_its_fix() -> None:
    out = io.StringIO()

    code = await run_doctor_from_env(out, sandbox_mode=True, database_url="mysql://db/x", port=0)

    output = out.getvalue()
    assert code == 1
    assert "[FAIL] configuration" in output
    assert "- problem: DATABASE_URL: must start with sqlite:/// or postgresql://" in output
    assert "Fix: Correct DATABASE_URL (sqlite:///file or postgresql://… (scale-out)) (in the environment" in output
    assert "- problem: PORT: Input should be greater than or equal to 1" in output
    assert "[SKIP] database (skipped: the configuration is invalid)" in output


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, azure = logging.getLogger(), logging.getLogger("azure")
    handlers, root_level, azure_level = root.handlers[:], root.level, azure.level
    yield
    root.handlers[:] = handlers
    root.setLevel(root_level)
    azure.setLevel(azure_level)


def test_cli_reports_an_invalid_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    monkeypatch.setenv("SANDBOX_MODE", "true")
    monkeypatch.setenv("POOL_LINES", '[{"id": "Zentrale!", "mailbox": "nope", "numbers": [], "display_name": "Z"}]')

    code = main(["doctor"])

    output = capsys.readouterr().out
    assert code == 1
    assert "POOL_LINES[0].id: must be a lower-case slug" in output
    assert "POOL_LINES[0].mailbox: 'nope' is not an e-mail address" in output
    assert "Fix: Correct POOL_LINES (JSON list" in output


async def test_wrong_client_secret(sandbox: Sandbox) -> None:
    code, output = await doctor(sandbox.settings(graph_client_secret="wrong-secret-value"))

    assert code == 1
    assert "[FAIL] credentials" in output
    assert f"Graph token for GRAPH_CLIENT_ID {GRAPH_APP.client_id}: AADSTS7000215: Invalid client secret" in output
    assert "Fix: Create a new client secret" in output and "into GRAPH_CLIENT_SECRET" in output
    assert f"[SKIP] {MAILBOXES} (skipped: no Graph token)" in output
    assert f"[SKIP] {SUBSCRIPTIONS} (skipped: no Graph token)" in output
    assert "[OK] database" in output and f"[OK] {PUBLIC_URL}" in output
    assert "wrong-secret-value" not in output


async def test_unknown_client_id(sandbox: Sandbox) -> None:
    code, output = await doctor(sandbox.settings(graph_client_id="0c0c0c0c-2222-4222-8222-0000000000ff"))

    assert code == 1
    assert "AADSTS700016: Application with identifier" in output
    assert "Fix: Check GRAPH_CLIENT_ID and GRAPH_TENANT_ID" in output


async def test_mailbox_unknown_to_graph(sandbox: Sandbox) -> None:
    lines = [{"id": "zentrale", "mailbox": "nobody@example.com", "numbers": ["+4930123456"], "display_name": "Z"}]

    code, output = await doctor(sandbox.settings(pool_lines=lines))

    assert code == 1
    assert f"[FAIL] {MAILBOXES}" in output
    assert "nobody@example.com: Graph answered 404" in output
    assert (
        "Fix: The mailbox nobody@example.com does not exist in this tenant: correct its 'mailbox' in POOL_LINES"
        in output
    )


async def test_graph_refuses_the_mailbox(sandbox: Sandbox) -> None:
    settings = sandbox.settings()
    await sandbox.subscribe(settings)
    sandbox.graph.add_fault("403", path="/users/")

    code, output = await doctor(settings)

    assert code == 1
    assert f"{POOL}: Graph answered 403: Access is denied." in output
    assert "Mail.ReadWrite" in output and "admin consent" in output
    assert f"pwsh infra/scope-mailboxes.ps1 -AppId {GRAPH_APP.client_id} -PoolMailboxes {POOL}" in output
    assert f"[OK] {SUBSCRIPTIONS}" in output


async def test_graph_stand_in_answers_403_for_the_fault(sandbox: Sandbox) -> None:
    token = sandbox.identity.stand_in.issue_access_token(GRAPH_APP, GRAPH_AUDIENCE)
    async with aiohttp.ClientSession() as session:
        added = await session.post(f"{sandbox.graph.base_url}/_control/faults", json={"kind": "403", "count": 1})
        assert added.status == 200
        url = f"{sandbox.graph.base_url}/v1.0/users/{POOL}/messages"
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(url, headers=headers) as refused:
            body = await refused.json()
        async with session.get(url, headers=headers) as allowed:
            allowed_status = allowed.status
    assert refused.status == 403
    assert body["error"]["code"] == "ErrorAccessDenied"
    assert allowed_status == 200


async def test_subscription_missing(sandbox: Sandbox) -> None:
    code, output = await doctor(sandbox.settings())

    assert code == 1
    assert f"[FAIL] {SUBSCRIPTIONS}" in output
    assert f"{POOL}: no Graph subscription, so no mail reaches the bot." in output
    assert "Fix: Start the bot (python -m bot serve" in output


async def test_subscription_expired(sandbox: Sandbox) -> None:
    expired_at = datetime.now(UTC) - timedelta(hours=1)
    await sandbox.store.subscriptions.save_subscription(Subscription(POOL, "sub-expired", expired_at))

    code, output = await doctor(sandbox.settings())

    assert code == 1
    assert f"{POOL}: subscription sub-expired expired at" in output
    assert "Fix: Start the bot" in output


async def test_subscription_unknown_to_graph(sandbox: Sandbox) -> None:
    expires_at = datetime.now(UTC) + timedelta(days=2)
    await sandbox.store.subscriptions.save_subscription(Subscription(POOL, "sub-gone", expires_at))

    code, output = await doctor(sandbox.settings())

    assert code == 1
    assert f"{POOL}: Graph does not know subscription sub-gone" in output
    assert "The bot replaces it at its next renewal" in output


async def test_subscription_expiring_soon(sandbox: Sandbox) -> None:
    settings = sandbox.settings(subscription_lifetime_minutes=60)
    subscription = await sandbox.subscribe(settings)

    code, output = await doctor(settings)

    assert code == 1
    assert f"subscription {subscription.subscription_id} expires at" in output
    assert "in less than 12 hours, and was not renewed" in output
    assert "restarting it renews at once" in output


async def test_database_unreachable(sandbox: Sandbox) -> None:
    code, output = await doctor(sandbox.settings(database_url="postgresql://rufpool:pg-password@127.0.0.1:1/x"))

    assert code == 1
    assert "[FAIL] database" in output
    assert "cannot use the database postgresql://rufpool:***@127.0.0.1:1/x" in output
    assert "Fix: Check DATABASE_URL (host, port" in output
    assert f"[SKIP] {SUBSCRIPTIONS} (skipped: the database is unavailable)" in output
    assert f"[OK] {MAILBOXES}" in output
    assert "pg-password" not in output


async def test_public_url_unreachable(sandbox: Sandbox) -> None:
    code, output = await doctor(sandbox.settings(public_base_url=f"http://127.0.0.1:{free_port()}"))

    assert code == 1
    assert f"[FAIL] {PUBLIC_URL}" in output
    assert f"{NOTIFICATION_PATH}: unreachable" in output
    assert "Fix: Make sure the bot runs" in output and "reverse proxy" in output


async def test_public_url_not_the_bot(sandbox: Sandbox) -> None:
    code, output = await doctor(sandbox.settings(public_base_url=sandbox.graph.base_url))

    assert code == 1
    assert "the validation request was answered 404, not 200." in output


async def test_public_url_echoing_wrongly(sandbox: Sandbox) -> None:
    async def status_page(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post(NOTIFICATION_PATH, status_page)
    runner, base_url = await serve(app)
    try:
        code, output = await doctor(sandbox.settings(public_base_url=base_url))
    finally:
        await runner.cleanup()

    assert code == 1
    assert "the validation token did not come back unchanged as text/plain (got application/json)" in output
    assert "the reverse proxy must pass the query string unchanged" in output


async def test_warnings_alone_do_not_fail(sandbox: Sandbox) -> None:
    await sandbox.subscribe(sandbox.settings())
    code, output = await doctor(sandbox.settings(link_admins=[]))

    assert code == 0, output
    assert "[WARN] configuration" in output
    assert "- warning: LINK_ADMINS is empty" in output
    assert "0 problem(s), 2 warning(s)" in output  # and the local sandbox


def test_what_serve_refuses_is_a_configuration_problem() -> None:
    settings = load_settings(
        sandbox_mode=False,
        app_id=BOT_APP.client_id,
        app_password=BOT_APP.client_secret,
        app_tenant_id=TENANT,
        public_base_url="http://bot.example.com",
        link_admins=["it@example.com"],
    )

    problems = check_configuration(settings)

    assert [(p.message.split(":")[0], p.warning) for p in problems] == [
        ("POOL_LINES", False),
        ("GRAPH_TENANT_ID", False),
        ("GRAPH_CLIENT_ID", False),
        ("GRAPH_CLIENT_SECRET", False),
        ("PUBLIC_BASE_URL http", True),
    ]
    assert (
        problems[-1].message == "PUBLIC_BASE_URL http://bot.example.com is not https: Graph only notifies https URLs."
    )


async def test_missing_graph_credentials(sandbox: Sandbox) -> None:
    code, output = await doctor(sandbox.settings(graph_client_id="", graph_client_secret=""))

    assert code == 1
    assert "- problem: GRAPH_CLIENT_ID: required" in output
    assert "- problem: GRAPH_CLIENT_SECRET: required (or GRAPH_CLIENT_CERTIFICATE_PATH)" in output
    assert "Fix: Set it to the Application (client) ID (Entra admin center > App registrations" in output
    assert f"[SKIP] {MAILBOXES} (skipped: no Graph credentials)" in output


async def test_an_empty_bot_password_is_a_setting_to_fill_not_a_network_problem(sandbox: Sandbox) -> None:
    code, output = await doctor(bot_settings(sandbox, ""))

    assert code == 1
    assert "- problem: MicrosoftAppPassword: required for SingleTenant" in output
    assert "Certificates & secrets > New client secret" in output
    assert "login.microsoftonline.com" not in output
    assert "Bot Framework token" not in output


def bot_settings(sandbox: Sandbox, password: str) -> Settings:
    return sandbox.settings(
        sandbox_mode=False,
        app_id=BOT_APP.client_id,
        app_password=password,
        app_tenant_id=TENANT,
        to_channel_from_bot_login_url=sandbox.identity.authority(TENANT),
        validate_authority=False,
        bot_ca_bundle=sandbox.tls.trust_bundle,
    )


async def test_bot_framework_token(sandbox: Sandbox) -> None:
    assert await check_bot_token(bot_settings(sandbox, BOT_APP.client_secret)) == []

    [problem] = await check_bot_token(bot_settings(sandbox, "wrong-bot-password"))

    assert problem.check == CREDENTIALS
    assert problem.message.startswith(f"Bot Framework token for MicrosoftAppId {BOT_APP.client_id}: AADSTS7000215")
    assert "into MicrosoftAppPassword" in problem.fix


async def test_bot_framework_token_is_part_of_the_report(sandbox: Sandbox) -> None:
    settings = bot_settings(sandbox, "wrong-bot-password")

    results = await diagnose(settings)

    credentials = next(result for result in results if result.check == CREDENTIALS)
    assert credentials.status == "FAIL"
    assert [p.message.split(":")[0] for p in credentials.problems] == [
        f"Bot Framework token for MicrosoftAppId {BOT_APP.client_id}"
    ]
    statuses = {result.check: result.status for result in results}
    assert statuses[MAILBOXES] == "OK" and statuses[SUBSCRIPTIONS] == "FAIL"  # Graph is still checked


def test_secrets_are_masked_in_the_report() -> None:
    settings = load_settings(
        sandbox_mode=True,
        graph_client_secret="graph-secret-1",
        app_password="bot-password-2",
        graph_client_state="client-state-3",
        database_url="postgresql://u:db-password-4@db/x",
    )
    leaky = [CheckResult(DATABASE, []), CheckResult(CONFIGURATION, [])]
    text = format_report(leaky) + " graph-secret-1 bot-password-2 client-state-3 db-password-4 Bearer abc.def"

    masked = secret_masker(settings)(text)

    for secret in ("graph-secret-1", "bot-password-2", "client-state-3", "db-password-4", "abc.def"):
        assert secret not in masked
    assert masked.count("***") == 5


async def test_login_endpoint_unreachable(sandbox: Sandbox) -> None:
    code, output = await doctor(sandbox.settings(graph_authority_host=f"https://127.0.0.1:{free_port()}"))

    assert code == 1
    assert f"Graph token for GRAPH_CLIENT_ID {GRAPH_APP.client_id}: no answer from the login endpoint" in output
    assert "Fix: Allow outbound https to login.microsoftonline.com" in output and "GRAPH_AUTHORITY_HOST" in output


async def test_dead_letters_are_reported(sandbox: Sandbox) -> None:
    settings = sandbox.settings()
    await sandbox.subscribe(settings)
    await sandbox.store.jobs.enqueue("teams.card", {"case_id": "c1"})
    (job,) = await sandbox.store.jobs.lease("w", ["teams.card"], timedelta(minutes=1))
    await sandbox.store.jobs.fail(job, "w", "Teams refused the request (403)", RetryPolicy(max_attempts=1))

    code, output = await doctor(settings)

    assert code == 1
    assert "[FAIL] outbox" in output
    assert "1 job(s) gave up after all retries" in output and "teams.card" in output and "(403)" in output


def _hours_settings(**line: Any) -> Settings:
    base = {"id": "zentrale", "mailbox": "z@praxis.example", "numbers": ["+49301234500"], "display_name": "Zentrale"}
    return Settings(_env_file=None, sandbox_mode=True, graph_client_state="s", pool_lines=[{**base, **line}])  # type: ignore[call-arg]


def test_business_hours_show_each_line_and_its_next_opening() -> None:
    settings = _hours_settings(
        hours={"weekly": "Mo-Fr 08:00-12:00,14:00-18:00", "state": "BY"},
        reminders={"enabled": True, "tag": {"id": "tag-1", "name": "Empfang"}},
    )
    corpus_christi = datetime(2026, 6, 4, 10, 0, tzinfo=UTC)
    result = check_business_hours(settings, corpus_christi)
    assert result.status == "OK"
    [note] = result.notes
    assert "zentrale: Mo-Fr 08:00-12:00,14:00-18:00 (Europe/Berlin, holidays of BY)" in note
    assert "closed now (Fronleichnam)" in note
    assert "next opening Fri 2026-06-05 08:00" in note
    assert "reminders after 30/120 min, no escalation" in note
    open_now = check_business_hours(settings, datetime(2026, 6, 5, 9, 0, tzinfo=UTC)).notes[0]
    assert "open now until Fri 2026-06-05 12:00" in open_now and "next opening Fri 2026-06-05 14:00" in open_now
    assert "[OK] business hours and reminders\n    · zentrale:" in format_report([result])


def test_business_hours_warn_about_reminders_to_nobody_and_a_line_that_never_opens() -> None:
    result = check_business_hours(
        _hours_settings(
            hours={"closed": ["2026-01-01..2026-12-31", "2027-01-01..2027-12-31"]}, reminders={"enabled": True}
        ),
        datetime(2026, 3, 3, 9, 0, tzinfo=UTC),
    )
    assert result.status == "FAIL"
    messages = " ".join(problem.message for problem in result.problems)
    assert "never opens" in messages and "mention nobody" in messages
    assert result.check == BUSINESS_HOURS
