"""How the time to claim and to done is measured.

Wall-clock time today. A business-hours calendar plugs in through :class:`WorkingTime`: it returns no SQL expression
and the statistics then measure each case in Python with :meth:`WorkingTime.elapsed` (opening hours, weekends and
holidays cannot be expressed portably in SQL).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from bot.storage.database import Dialect
from bot.storage.stats_rollups import elapsed_seconds_sql


class WorkingTime(Protocol):
    business_hours: bool
    """True when the measure counts only opening hours (the card says which one it used)."""

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """The time between ``start`` and ``end`` that counts."""

    def sql_seconds(self, dialect: Dialect, start: str, end: str) -> str | None:
        """An SQL expression for :meth:`elapsed` in seconds between two timestamp columns, or None."""


class WallClock:
    business_hours = False

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        return max(end - start, timedelta(0))

    def sql_seconds(self, dialect: Dialect, start: str, end: str) -> str | None:
        return elapsed_seconds_sql(dialect, start, end)
