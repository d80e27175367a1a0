"""/healthz and /metrics of the real app (sandbox mode, SQLite in a temporary directory, no pool lines)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bot.app import SERVICES, create_app
from bot.config import Settings, load_settings
from bot.graph.subscriptions import NOTIFICATION_PATH
from tests.support.bot_stack import free_port
from tests.support.teams_standins import GRAPH_APP, TENANT

AppClient = TestClient[web.Request, web.Application]
CLIENT_STATE = "health-client-state"
METRICS_TOKEN = "metrics-token-0123456789"
EXPECTED_METRICS = {
    "rufpool_notifications_received",
    "rufpool_call_events",
    "rufpool_cases",
    "rufpool_outbox_jobs",
    "rufpool_dead_letters",
    "rufpool_remote_errors",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Graph is never called without pool lines, but the app builds its credential at start.
    return load_settings(
        sandbox_mode=True,
        database_url=f"sqlite:///{tmp_path / 'rufpool.sqlite3'}",
        graph_tenant_id=TENANT,
        graph_client_id=GRAPH_APP.client_id,
        graph_client_secret=GRAPH_APP.client_secret,
        graph_client_state=CLIENT_STATE,
        pool_lines=[],
        metrics_token=METRICS_TOKEN,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AppClient]:
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


async def samples(client: AppClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Metric family name -> {sorted labels: value}, read through /metrics."""
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(await response.text()):
        families[family.name] = {
            tuple(sorted(sample.labels.items())): sample.value
            for sample in family.samples
            if not sample.name.endswith("_created")
        }
    return families


async def test_healthz_ready_with_the_database(client: AppClient) -> None:
    for path in ("/healthz", "/healthz?probe=ready"):
        response = await client.get(path)

        assert response.status == 200
        assert await response.json() == {
            "live": True,
            "ready": True,
            "checks": {"database": True},
            "local_sandbox": ["SANDBOX_MODE"],
        }


async def test_healthz_alive_but_not_ready_without_the_database(client: AppClient) -> None:
    await client.app[SERVICES].store.close()

    liveness = await client.get("/healthz")
    readiness = await client.get("/healthz?probe=ready")

    assert liveness.status == 200
    assert readiness.status == 503
    assert (await readiness.json())["checks"] == {"database": False}


async def test_metrics_lists_every_figure(client: AppClient) -> None:
    families = await samples(client)

    assert set(families) >= EXPECTED_METRICS
    assert set(families["rufpool_outbox_jobs"]) == {
        (("state", state),) for state in ("pending", "leased", "done", "dead")
    }


async def test_a_notification_moves_the_counter_and_the_outbox(client: AppClient) -> None:
    before = await samples(client)
    notification = {
        "subscriptionId": "sub-health",
        "changeType": "created",
        "resource": "Users/u-1/Messages/m-1",
        "clientState": CLIENT_STATE,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": "m-1"},
    }

    response = await client.post(NOTIFICATION_PATH, json={"value": [notification]})

    assert response.status == 202
    after = await samples(client)
    accepted = (("outcome", "accepted"),)
    notifications_before = before.get("rufpool_notifications_received", {}).get(accepted, 0.0)
    assert after["rufpool_notifications_received"][accepted] == notifications_before + 1
    assert sum(after["rufpool_outbox_jobs"].values()) == sum(before["rufpool_outbox_jobs"].values()) + 1


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer wrong-token", 401), (f"Basic {METRICS_TOKEN}", 401), (f"Bearer {METRICS_TOKEN}", 200)],
    ids=["none", "wrong", "not-bearer", "right"],
)
async def test_metrics_on_the_main_port_need_the_token(
    client: AppClient, authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = await client.get("/metrics", headers=headers)

    assert response.status == status
    assert ("rufpool_cases" in await response.text()) is (status == 200)


async def test_metrics_without_a_token_are_only_on_the_metrics_port(settings: Settings) -> None:
    port = free_port()
    separate = settings.model_copy(update={"metrics_token": SecretStr(""), "metrics_port": port})
    async with TestClient(TestServer(create_app(separate))) as main, aiohttp.ClientSession() as http:
        on_main = await main.get("/metrics")
        main_body = await on_main.text()
        async with http.get(f"http://127.0.0.1:{port}/metrics") as on_metrics_port:
            body = await on_metrics_port.text()
            assert on_metrics_port.status == 200
        async with http.get(f"http://127.0.0.1:{port}/healthz") as nothing_else:
            assert nothing_else.status == 404

    assert on_main.status == 404
    assert "rufpool_cases" in body and "rufpool_cases" not in main_body


async def test_healthz_shows_nothing_sensitive(client: AppClient) -> None:
    body = await (await client.get("/healthz")).text()

    for secret in (
        CLIENT_STATE,
        METRICS_TOKEN,
        GRAPH_APP.client_secret,
        str(client.app[SERVICES].settings.database_url),
    ):
        assert secret not in body


async def test_every_start_of_a_local_sandbox_says_so_in_the_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(2):
        caplog.clear()
        async with TestClient(TestServer(create_app(settings))):
            pass
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(m.startswith("LOCAL SANDBOX, NOT PRODUCTION: SANDBOX_MODE in effect") for m in warnings), warnings
