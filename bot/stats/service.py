"""Builds the stats card for a set of lines and a period: the ``statistik`` command and the weekly digest share it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.config import Settings
from bot.stats.chart import ChartLinks
from bot.stats.model import Period
from bot.stats.queries import StatsQueries
from cards.i18n import BERLIN, Lang
from cards.stats_card import StatsCardView, build_stats_card

Json = dict[str, Any]

DEFAULT_DAYS = 7
MAX_DAYS = 366
_PERIOD_WORDS = {"woche": 7, "week": 7, "w": 7, "monat": 30, "month": 30, "m": 30}


class BadPeriod(ValueError):
    """The command's period argument is neither a known word nor a number of days."""


def parse_days(argument: str) -> int:
    """``""`` → 7, ``woche``/``week`` → 7, ``monat``/``month`` → 30, ``"14"`` → 14 (1 to 366 days)."""
    word = argument.strip().lower().rstrip(".")
    if not word:
        return DEFAULT_DAYS
    if word in _PERIOD_WORDS:
        return _PERIOD_WORDS[word]
    match = re.fullmatch(r"(\d{1,3})\s*(?:d|t|tage|days?)?", word)
    if match and 1 <= int(match.group(1)) <= MAX_DAYS:
        return int(match.group(1))
    raise BadPeriod(argument.strip()[:40])


class StatsService:
    def __init__(
        self,
        settings: Settings,
        queries: StatsQueries,
        chart_links: ChartLinks | None,
        caller_name: Callable[[str], str | None] | None = None,
    ) -> None:
        self._settings = settings
        self._queries = queries
        self._chart_links = chart_links
        self._caller_name = caller_name

    async def card(
        self, line_ids: Sequence[str], period: Period, lang: Lang, *, you: str | None = None, digest: bool = False
    ) -> Json:
        stats = await self._queries.team_stats(line_ids, period, BERLIN)
        names = {}
        if self._caller_name is not None:
            names = {r.number: name for r in stats.repeat_callers if (name := self._caller_name(r.number))}
        chart = (
            self._chart_links.url(stats.calls_by_weekday_hour, lang) if self._chart_links and stats.line_ids else None
        )
        view = StatsCardView(
            stats=stats,
            lang=lang,
            line_names={line.id: line.display_name for line in self._settings.pool_lines},
            chart_url=chart,
            you=you,
            digest=digest,
            caller_names=names,
        )
        return build_stats_card(view)

    @staticmethod
    def last_days(days: int, now: datetime) -> Period:
        return Period(now - timedelta(days=days), now)
