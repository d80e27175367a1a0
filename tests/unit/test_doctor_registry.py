"""doctor as a registry of small checks: run in order, one crash reported without stopping the others, and the
database opened without being migrated."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.doctor import (
    BUSINESS_HOURS,
    CONFIGURATION,
    DATABASE,
    REGISTRY,
    CheckResult,
    Context,
    RegisteredCheck,
    diagnose,
)
from bot.storage.factory import open_store, pending_migrations


def _settings(tmp_path: Path) -> Settings:
    database_url = f"sqlite:///{tmp_path / 'doctor.sqlite3'}"
    return Settings(_env_file=None, sandbox_mode=True, graph_client_state="s", database_url=database_url)  # type: ignore[call-arg]


def test_the_registry_holds_each_check_once_in_report_order() -> None:
    names = [check.name for check in REGISTRY]
    assert names[:2] == [CONFIGURATION, BUSINESS_HOURS]
    assert len(names) == len(set(names))


async def test_a_crashing_check_is_reported_and_the_next_one_still_runs(tmp_path: Path) -> None:
    async def crashes(context: Context) -> CheckResult:
        raise RuntimeError("boom")

    async def passes(context: Context) -> CheckResult:
        return CheckResult("after")

    results = await diagnose(
        _settings(tmp_path), checks=[RegisteredCheck("crash", crashes), RegisteredCheck("after", passes)]
    )
    assert [(result.check, result.status) for result in results] == [("crash", "FAIL"), ("after", "OK")]


async def test_doctor_does_not_migrate_the_database(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    database = [check for check in REGISTRY if check.name == DATABASE]
    [result] = await diagnose(settings, checks=database)
    assert result.status == "WARN" and "not applied yet" in result.problems[0].message
    store = await open_store(settings.database_url, migrate=False)
    try:
        assert await pending_migrations(store)  # still all pending: doctor only looked
    finally:
        await store.close()
    migrated = await open_store(settings.database_url)
    await migrated.close()
    [result] = await diagnose(settings, checks=database)
    assert result.status == "OK"
