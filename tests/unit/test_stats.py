"""Statistics on a seeded store with known answers, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.effects import no_effects
from bot.domain.events import WITHHELD
from bot.domain.state_machine import Verb
from bot.stats.model import Durations, Period
from bot.stats.queries import StatsQueries, percentile_of_histogram
from bot.storage.database import Database, Dialect
from bot.storage.sql_store import SqlStore
from cards.i18n import BERLIN
from tests.support.stats import act, case_with, seed
from tests.support.storage import ALICE, BOB, T0, make_event

MIN = 60.0
WEEK = Period(T0 - timedelta(days=1), T0 + timedelta(days=6))  # T0 is Monday 10:00 in Berlin


async def test_stats_on_a_seeded_store(database: Database) -> None:
    store = SqlStore(database)
    await seed(store)
    stats = await StatsQueries(database).team_stats(["line-1", "line-2"], WEEK, BERLIN)

    line1, line2 = stats.lines
    assert (line1.calls, line1.cases, line1.done, line1.handled_share) == (6, 4, 3, 0.75)
    assert line1.to_claim == Durations(2, 5 * MIN, 20 * MIN)
    assert line1.to_done == Durations(3, 60 * MIN, 75 * MIN)  # 65, 80 and 30 minutes, in 15- and 5-minute buckets
    assert (line2.calls, line2.cases, line2.done) == (1, 1, 0)
    assert line2.to_claim == Durations(1, 40 * MIN, 40 * MIN)
    assert line2.to_done == Durations()
    assert (stats.total.calls, stats.total.cases, stats.total.done) == (7, 5, 3)
    assert stats.total.to_claim == Durations(3, 20 * MIN, 40 * MIN)

    people = {person.name: person for person in stats.people}
    assert [person.name for person in stats.people] == ["Alice", "Bob", "Carol"]
    assert (people["Alice"].claimed, people["Alice"].done) == (1, 2)
    assert people["Alice"].to_done == Durations(2, 30 * MIN, 60 * MIN)
    assert people["Bob"].to_claim == Durations(1, 20 * MIN, 20 * MIN)
    assert (people["Carol"].claimed, people["Carol"].done) == (1, 0)

    assert [(r.number, r.calls) for r in stats.repeat_callers] == [("+4930111", 3)]
    assert stats.repeat_caller_count == 1
    grid = stats.calls_by_weekday_hour
    assert (grid[0][10], grid[0][11], grid[0][12], grid[1][10]) == (4, 1, 1, 1)  # Berlin time, withheld included
    assert sum(map(sum, grid)) == 7
    assert stats.unreached_callbacks is None and not stats.business_hours


async def test_withheld_and_unknown_callers_are_not_repeat_callers(database: Database) -> None:
    store = SqlStore(database)
    for n in range(3):
        await store.cases.record_event(make_event(f"w{n}", WITHHELD, minutes=n), effects=no_effects)
        await store.cases.record_event(make_event(f"u{n}", None, minutes=n), effects=no_effects)
    stats = await StatsQueries(database).team_stats(["line-1"], WEEK, BERLIN)
    assert stats.total.calls == 6 and stats.repeat_caller_count == 0 and stats.repeat_callers == ()


async def test_no_lines_no_numbers(database: Database) -> None:
    await seed(SqlStore(database))
    stats = await StatsQueries(database).team_stats([], WEEK, BERLIN)
    assert stats.total.cases == 0 and stats.lines == () and stats.people == ()


class OfficeHours:
    """A test calendar: Monday to Friday, 09:00–17:00 in Berlin."""

    business_hours = True

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        counted, moment = timedelta(0), start
        while moment < end:
            local = moment.astimezone(BERLIN)
            step = min(end, moment + timedelta(minutes=1))
            if local.weekday() < 5 and 9 <= local.hour < 17:
                counted += step - moment
            moment = step
        return counted

    def sql_seconds(self, dialect: Dialect, start: str, end: str) -> str | None:
        return None


async def test_medians_in_business_hours(database: Database) -> None:
    store = SqlStore(database)
    friday_1630 = -(2 * 24 + 17) * 60 - 30  # minutes from T0 (Monday 10:00 Berlin) to Friday 16:30 Berlin
    x = await case_with(store, friday_1630, caller="+4930701")
    await act(store, x, Verb.CLAIM, ALICE, -30)  # Monday 09:30: 30 min on Friday + 30 min on Monday
    y = await case_with(store, 0, caller="+4930702")
    await act(store, y, Verb.CLAIM, BOB, 13)  # 13 minutes: in the bucket of 10 to 14
    z = await case_with(store, 6 * 60 + 55, caller="+4930703")  # Monday 16:55
    await act(store, z, Verb.CLAIM, BOB, 23 * 60 + 5)  # Tuesday 09:05
    period = Period(T0 - timedelta(days=7), T0 + timedelta(days=7))

    business = await StatsQueries(database, OfficeHours()).team_stats(["line-1"], period, BERLIN)
    assert business.business_hours
    assert business.total.to_claim == Durations(3, 10 * MIN, 60 * MIN)
    assert [(p.name, p.to_claim) for p in business.people] == [
        ("Bob", Durations(2, 10 * MIN, 10 * MIN)),
        ("Alice", Durations(1, 60 * MIN, 60 * MIN)),
    ]

    wall = await StatsQueries(database).team_stats(["line-1"], period, BERLIN)
    # 16 h 10 min and 2 days 17 hours, rounded down to the hour.
    assert wall.total.to_claim == Durations(3, 16 * 60 * MIN, (2 * 24 * 60 + 17 * 60) * MIN)


@pytest.mark.parametrize(
    ("values", "median", "p90"),
    [([], None, None), ([7], 7, 7), ([1, 2], 1, 2), (list(range(1, 11)), 5, 9), ([3, 3, 3, 9], 3, 9)],
)
def test_nearest_rank(values: list[int], median: int | None, p90: int | None) -> None:
    histogram = Counter(values)
    assert (percentile_of_histogram(histogram, 0.5), percentile_of_histogram(histogram, 0.9)) == (median, p90)


def test_period_days() -> None:
    assert Period(datetime(2026, 3, 23, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC)).days == 7
