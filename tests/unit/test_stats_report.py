"""``python -m bot report``: one CSV row per case with times, line, claimant and outcome; numbers masked."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from bot.core.effects import no_effects
from bot.domain.cases import OUTLOOK_ACTOR
from bot.domain.state_machine import Verb
from bot.stats.report import COLUMNS, period_of_days, write_report
from bot.storage.database import Database
from bot.storage.factory import open_store
from bot.storage.sql_store import SqlStore
from cards.i18n import BERLIN
from tests.support.stats import act, case_with, seed
from tests.support.storage import REPO_ROOT, T0, make_event

NAMES = {"line-1": "Zentrale", "line-2": "Labor"}
MARCH_3 = period_of_days(date(2025, 3, 3), date(2025, 3, 3), BERLIN)


async def report(database: Database, **options: object) -> list[dict[str, str]]:
    out = io.StringIO()
    count = await write_report(database, options.pop("period", MARCH_3), NAMES, out, tz=BERLIN, **options)  # type: ignore[arg-type]
    out.seek(0)
    rows = list(csv.DictReader(out))
    assert len(rows) == count
    return rows


async def test_csv_columns_and_rows(database: Database) -> None:
    store = SqlStore(database)
    await seed(store)
    out = io.StringIO()
    await write_report(database, MARCH_3, NAMES, out, tz=BERLIN)
    assert out.getvalue().splitlines()[0] == ",".join(COLUMNS)

    rows = await report(database)
    assert len(rows) == 5  # Monday: not Tuesday's case, not the one two days before
    first = rows[0]
    assert first["line"] == "Zentrale" and first["caller"] == "'+49…111" and first["calls"] == "3"
    assert first["first_call"] == "2025-03-03T10:00:00+01:00" and first["last_call"] == "2025-03-03T10:20:00+01:00"
    assert (first["claimed_by"], first["done_by"], first["outcome"]) == ("Alice", "Alice", "done")
    assert (first["minutes_to_claim"], first["minutes_to_done"]) == ("5.0", "65.0")
    withheld = next(row for row in rows if row["caller"] == "withheld")
    assert (withheld["outcome"], withheld["claimed_by"], withheld["minutes_to_claim"]) == ("open", "", "")
    assert {row["caller"] for row in await report(database, with_numbers=True)} >= {"'+4930111", "'+4930222"}
    assert [row["line"] for row in await report(database, lines=["line-2"], period=period_of_days(
        date(2025, 3, 1), date(2025, 3, 31), BERLIN))] == ["Labor"]  # fmt: skip


async def test_untrusted_names_cannot_become_formulas_and_outlook_is_named(database: Database) -> None:
    store = SqlStore(database)
    outcome = await store.cases.record_event(
        make_event("m1", "+4930999", caller_name='=HYPERLINK("http://x")'), effects=no_effects
    )
    await act(store, outcome.case.id, Verb.OUTLOOK_COMPLETE, OUTLOOK_ACTOR, 3)
    [row] = await report(database)
    assert row["caller_name"] == '\'=HYPERLINK("http://x")'
    assert (row["done_by"], row["outcome"], row["minutes_to_done"]) == ("Outlook", "done", "3.0")


async def test_the_command_line(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'report.sqlite3'}"
    store = await open_store(database_url)
    try:
        await case_with(store, 0, 1, caller="+4930111")  # type: ignore[arg-type]
    finally:
        await store.close()
    lines = [{"id": "line-1", "mailbox": "l1@example.com", "numbers": ["+49301234500"], "display_name": "Zentrale"}]
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": str(REPO_ROOT),
        "DATABASE_URL": database_url,
        "SANDBOX_MODE": "true",
        "GRAPH_CLIENT_STATE": "secret",
        "POOL_LINES": json.dumps(lines),
    }
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "report", "--from", "2025-03-03", "--to", "2025-03-03", "--csv"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [(row["line"], row["caller"], row["calls"]) for row in rows] == [("Zentrale", "'+49…111", "2")]
    assert T0.date() == date(2025, 3, 3)
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "report", "--from", "2025-03-04", "--to", "2025-03-03", "--csv"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "before" in refused.stderr
