"""Set-up for every kind of test. With FORBID_SKIPS=1 (CI) a skipped test fails the run: required parts must run.

The tests are sorted by kind, each folder with its own conftest.py: ``unit/`` (in-process, PostgreSQL at most),
``contract/`` (the stand-ins against Microsoft's contracts) and ``e2e/`` (the bot behind the stand-ins, the demo
through the Agents Playground and a browser). Helpers live in the ``support/`` package. The database fixtures
(unit and e2e) and the identity and Bot Connector stand-ins (contract and e2e) are registered here, once per session:
pytest takes ``pytest_plugins`` from this top-level conftest only.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.support.storage", "tests.support.teams_standins"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        names = ", ".join(report.nodeid for report in skipped[:10])
        print(f"\nFORBID_SKIPS=1 but {len(skipped)} test(s) were skipped: {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
