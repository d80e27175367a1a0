"""The ``report`` command line: reads the settings, opens the database, writes the CSV to standard output."""

from __future__ import annotations

import sys
from datetime import date

from bot.config import ConfigError, load_settings
from bot.stats.report import period_of_days, write_report
from bot.storage.factory import open_store, sql_database
from cards.i18n import BERLIN


async def run_report(first: date, last: date, lines: list[str], with_numbers: bool) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    unknown = sorted(set(lines) - set(settings.lines_by_id))
    if unknown:
        print(f"unknown line(s): {', '.join(unknown)}; configured: {', '.join(settings.lines_by_id)}", file=sys.stderr)
        return 2
    try:
        period = period_of_days(first, last, BERLIN)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    store = await open_store(settings.database_url)
    try:
        names = {line.id: line.display_name for line in settings.pool_lines}
        count = await write_report(
            sql_database(store), period, names, sys.stdout, lines=lines, with_numbers=with_numbers, tz=BERLIN
        )
    finally:
        await store.close()
    print(f"{count} case(s)", file=sys.stderr)
    return 0
