"""``python -m bot report --from … --to … --csv``: one row per case for the manager's spreadsheet.

Times are in the team's time zone (ISO 8601 with offset); numbers are masked unless ``--with-numbers``; cells a
spreadsheet would take for a formula (``=``, ``+``, ``-``, ``@``) get a leading apostrophe: names come from
mails, and numbers (``+49…``) stay text instead of becoming arithmetic.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, TextIO

from bot.domain.cases import CALLBACK_ACTOR, OUTLOOK_ACTOR
from bot.logging_setup import mask_number
from bot.stats.model import Period
from bot.storage.database import Database, Row, to_utc

COLUMNS = (
    "case_id",
    "line",
    "caller",
    "caller_name",
    "first_call",
    "last_call",
    "calls",
    "claimed_at",
    "claimed_by",
    "done_at",
    "done_by",
    "outcome",
    "minutes_to_claim",
    "minutes_to_done",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def period_of_days(first: date, last: date, tz: tzinfo) -> Period:
    """From the start of ``first`` to the end of ``last`` (both included), in ``tz``."""
    if last < first:
        raise ValueError("--to is before --from")
    start = datetime.combine(first, time(0), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
    return Period(start, end)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _local(value: object, tz: tzinfo) -> str:
    moment = to_utc(value)  # type: ignore[arg-type]
    return moment.astimezone(tz).isoformat(timespec="seconds") if moment else ""


def _minutes(start: object, end: object) -> str:
    begin, finish = to_utc(start), to_utc(end)  # type: ignore[arg-type]
    return f"{(finish - begin).total_seconds() / 60:.1f}" if begin and finish else ""


def _row(row: Row, line_names: dict[str, str], with_numbers: bool, tz: tzinfo) -> list[str]:
    caller = row["caller"]
    done_by = {OUTLOOK_ACTOR.id: "Outlook", CALLBACK_ACTOR.id: "callback"}.get(row["done_by_id"], row["done_by_name"])
    outcome = {"done": "done", "claimed": "in progress", "open": "open"}.get(row["state"], row["state"])
    values = [
        row["id"],
        line_names.get(row["line_id"], row["line_id"]),
        caller if with_numbers or caller in (None, "withheld") else mask_number(caller),
        row["caller_name"],
        _local(row["created_at"], tz),
        _local(row["last_call"], tz),
        row["calls"],
        _local(row["claimed_at"], tz),
        row["claimed_by_name"],
        _local(row["done_at"], tz),
        done_by,
        outcome,
        _minutes(row["created_at"], row["claimed_at"]),
        _minutes(row["created_at"], row["done_at"]) if row["state"] == "done" else "",
    ]
    return [_cell(value) for value in values]


async def write_report(
    database: Database,
    period: Period,
    line_names: dict[str, str],
    out: TextIO,
    *,
    lines: Sequence[str] = (),
    with_numbers: bool = False,
    tz: tzinfo,
) -> int:
    """Write the CSV (header first) of the cases created in ``period``; returns the number of cases."""
    where = "c.created_at >= ? AND c.created_at < ?"
    params: list[Any] = [period.start, period.end]
    if lines:
        where += f" AND c.line_id IN ({', '.join('?' * len(lines))})"
        params += list(lines)
    async with database.transaction() as cursor:
        await cursor.execute(
            "SELECT c.id, c.line_id, c.caller, c.caller_name, c.state, c.created_at, c.claimed_at, "  # noqa: S608
            "c.claimed_by_name, c.done_at, c.done_by_id, c.done_by_name, COUNT(e.source_id) AS calls, "
            "MAX(e.received_at) AS last_call FROM cases c LEFT JOIN events e ON e.case_id = c.id "
            f"WHERE {where} GROUP BY c.id ORDER BY c.created_at, c.id",
            params,
        )
        rows = await cursor.fetchall()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(_row(row, line_names, with_numbers, tz))
    return len(rows)
