"""Shared pytest set-up. With FORBID_SKIPS=1 (CI) a skipped test fails the run: required parts must run."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.storage_fixtures", "tests.sandbox_teams_fixtures", "tests.e2e_fixtures"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        names = ", ".join(report.nodeid for report in skipped[:10])
        print(f"\nFORBID_SKIPS=1 but {len(skipped)} test(s) were skipped: {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
