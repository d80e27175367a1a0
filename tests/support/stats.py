"""A TeamStats value with known numbers for the card tests and the README picture."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.stats.model import Durations, LineStats, Period, PersonStats, RepeatCaller, TeamStats

PERIOD = Period(datetime(2026, 11, 22, 23, 0, tzinfo=UTC), datetime(2026, 11, 29, 23, 0, tzinfo=UTC))
LINE_NAMES = {"zentrale": "Zentrale", "labor": "Labor"}
MIN = 60.0


def weekday_hours() -> tuple[tuple[int, ...], ...]:
    """Busy mornings on weekdays, a Monday peak and a few calls at lunch and after hours."""
    grid = []
    for day in range(7):
        row = [0] * 24
        if day < 5:
            for hour, calls in {8: 6, 9: 9, 10: 7, 11: 5, 12: 8, 13: 3, 14: 4, 15: 4, 16: 3, 17: 2, 18: 1}.items():
                row[hour] = calls + (5 if day == 0 and hour in (8, 9) else 0) - (2 if day == 4 and hour > 13 else 0)
        elif day == 5:
            row[10] = 2
        grid.append(tuple(max(0, value) for value in row))
    return tuple(grid)


def team_stats(people: int = 4, *, business_hours: bool = False) -> TeamStats:
    names = ["Anna Schmidt", "Ben Weber", "Cem Yilmaz", "Dora Klein"]
    return TeamStats(
        period=PERIOD,
        line_ids=("labor", "zentrale"),
        total=LineStats("*", calls=212, cases=143, done=131, to_claim=Durations(140, 11 * MIN, 47 * MIN),
                        to_done=Durations(131, 38 * MIN, 4 * 60 * MIN + 10 * MIN)),
        lines=(
            LineStats("labor", calls=58, cases=41, done=40, to_claim=Durations(40, 9 * MIN, 31 * MIN)),
            LineStats("zentrale", calls=154, cases=102, done=91, to_claim=Durations(100, 12 * MIN, 52 * MIN)),
        ),
        people=tuple(
            PersonStats(f"aad-{n}", names[n % 4] + ("" if n < 4 else f" {n}"), claimed=60 - 7 * n, done=58 - 7 * n,
                        to_claim=Durations(60 - 7 * n, (8 + 2 * n) * MIN, (30 + 5 * n) * MIN))
            for n in range(people)
        ),
        repeat_callers=(RepeatCaller("+492214710355", 6), RepeatCaller("+4917612345678", 4)),
        repeat_caller_count=3,
        calls_by_weekday_hour=weekday_hours(),
        business_hours=business_hours,
    )  # fmt: skip
