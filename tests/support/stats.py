"""Statistics test data: a TeamStats value with known numbers for the card tests and the README picture, and a store
seeded with cases whose statistics are known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.effects import no_effects
from bot.domain.cases import Actor
from bot.domain.events import WITHHELD
from bot.domain.state_machine import Verb
from bot.stats.model import Durations, LineStats, Period, PersonStats, RepeatCaller, TeamStats
from bot.storage.sql_store import SqlStore
from tests.support.storage import ALICE, BOB, CAROL, CLAIM_TIMEOUT, T0, make_event

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
        total=LineStats("*", calls=212, cases=143, done=131, to_claim=Durations(140, 10 * MIN, 45 * MIN),
                        to_done=Durations(131, 35 * MIN, 4 * 60 * MIN)),
        lines=(
            LineStats("labor", calls=58, cases=41, done=40, to_claim=Durations(40, 9 * MIN, 30 * MIN)),
            LineStats("zentrale", calls=154, cases=102, done=91, to_claim=Durations(100, 10 * MIN, 50 * MIN)),
        ),
        people=tuple(
            PersonStats(f"aad-{n}", names[n % 4] + ("" if n < 4 else f" {n}"), claimed=60 - 7 * n, done=58 - 7 * n,
                        to_claim=Durations(60 - 7 * n, min(8 + 2 * n, 10) * MIN, (30 + 5 * n) * MIN))
            for n in range(people)
        ),
        repeat_callers=(RepeatCaller("+492214710355", 6), RepeatCaller("+4917612345678", 4)),
        repeat_caller_count=3,
        calls_by_weekday_hour=weekday_hours(),
        business_hours=business_hours,
    )  # fmt: skip


async def case_with(store: SqlStore, *event_minutes: float, caller: str, line_id: str = "line-1") -> str:
    outcome = None
    for n, minutes in enumerate(event_minutes):
        outcome = await store.cases.record_event(
            make_event(f"{caller}-{line_id}-{n}", caller, line_id=line_id, minutes=minutes), effects=no_effects
        )
    assert outcome is not None
    return outcome.case.id


async def act(store: SqlStore, case_id: str, verb: Verb, actor: Actor, minutes: float) -> None:
    outcome = await store.cases.transition(
        case_id, verb, actor, T0 + timedelta(minutes=minutes), CLAIM_TIMEOUT, effects=no_effects
    )
    assert outcome.applied, outcome.refusal


async def seed(store: SqlStore) -> None:
    a = await case_with(store, 0, 10, 20, caller="+4930111")
    await act(store, a, Verb.CLAIM, ALICE, 5)
    await act(store, a, Verb.DONE, ALICE, 65)
    b = await case_with(store, 60, caller="+4930222")
    await act(store, b, Verb.CLAIM, BOB, 80)
    await act(store, b, Verb.DONE, BOB, 140)
    c = await case_with(store, 120, caller="+4930333")
    await act(store, c, Verb.DONE, ALICE, 150)
    d = await case_with(store, 24 * 60, caller="+4930444", line_id="line-2")
    await act(store, d, Verb.CLAIM, CAROL, 24 * 60 + 40)
    await case_with(store, 30, caller=WITHHELD)
    old = await case_with(store, -2 * 24 * 60, caller="+4930555")  # before the period
    await act(store, old, Verb.DONE, ALICE, -2 * 24 * 60 + 1)
    await case_with(store, 15, 16, 17, caller="+4930666", line_id="line-3")  # a line not asked for
