"""Reminders in business hours with a fake clock: due times, holidays, exactly once across restarts and replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import Settings
from bot.core.effects import no_effects
from bot.core.ports import QueuedEffect
from bot.core.reminders import OVERVIEW, REMINDER, ReminderService
from bot.domain.cases import Actor
from bot.domain.events import CallEvent, EventKind, MailSource
from bot.domain.state_machine import Verb
from bot.domain.zone import BERLIN
from bot.storage.database import Database, from_json
from bot.storage.factory import open_database
from bot.storage.sql_store import SqlStore
from tests.support.store_probes import next_due, sent_reminders

ANNA = Actor("aad-anna", "Anna Schmidt")


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN).astimezone(UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def line(line_id: str, state: str | None = "BY", **reminders: Any) -> dict[str, Any]:
    return {
        "id": line_id,
        "mailbox": f"{line_id}@praxis.example",
        "numbers": ["+49 30 1234500"],
        "display_name": line_id.title(),
        "hours": {"weekly": "Mo-Fr 08:00-18:00", "state": state, "closed": ["12-24", "12-31"]},
        "reminders": {"enabled": True, "mention": [{"id": "aad-team", "name": "Empfang"}], **reminders},
    }


def settings_for(*lines: dict[str, Any]) -> Settings:
    return Settings(_env_file=None, sandbox_mode=True, graph_client_state="s", pool_lines=list(lines))  # type: ignore[call-arg]


_calls = 0


async def call(store: SqlStore, line_id: str, at: datetime, caller: str | None = None) -> str:
    global _calls
    _calls += 1
    mailbox = f"{line_id}@praxis.example"
    event = CallEvent(
        source_id=CallEvent.source_id_for(mailbox, f"m{_calls}"),
        kind=EventKind.MISSED_CALL,
        line_id=line_id,
        caller=caller or f"+4917100000{_calls:02d}",
        received_at=at,
        mail=MailSource(mailbox, f"m{_calls}", subject="Anruf", sender="no-reply@placetel.de"),
    )
    return (await store.cases.record_event(event, effects=no_effects)).case.id


async def queued(database: Database, kind: str) -> list[dict[str, Any]]:
    async with database.transaction() as cursor:
        await cursor.execute("SELECT payload FROM jobs WHERE kind = ? ORDER BY id", (kind,))
        return [from_json(row["payload"]) for row in await cursor.fetchall()]


async def sent_out(database: Database) -> None:
    """The job runner did its work: queued jobs no longer hide a duplicate behind their dedupe key."""
    async with database.transaction() as cursor:
        await cursor.execute("UPDATE jobs SET state = 'done' WHERE state = 'pending'")


def service(settings: Settings, store: SqlStore, clock: FakeClock) -> ReminderService:
    return ReminderService(settings, store.cases, store.reminders, clock)


async def run_until(svc: ReminderService, clock: FakeClock, moments: Sequence[datetime]) -> None:
    for moment in moments:
        clock.now = moment
        await svc.tick()


async def test_friday_evening_call_reminds_monday_0820(store: SqlStore, database: Database) -> None:
    clock = FakeClock(berlin(2026, 6, 12, 17, 50))
    svc = service(settings_for(line("zentrale")), store, clock)
    case_id = await call(store, "zentrale", clock.now)
    await run_until(svc, clock, [berlin(2026, 6, 12, 17, 59), berlin(2026, 6, 13, 10), berlin(2026, 6, 15, 8, 19)])
    assert await queued(database, REMINDER) == []
    clock.now = berlin(2026, 6, 15, 8, 20)
    assert (await svc.tick()).sent == 1
    [reminder] = await queued(database, REMINDER)
    assert reminder["case_id"] == case_id and reminder["kind"] == "unclaimed" and reminder["waited_minutes"] == 30
    [sent] = await sent_reminders(store, case_id)
    assert sent.due_at == berlin(2026, 6, 15, 8, 20)
    assert {job["case_id"] for job in await queued(database, "teams.card")} == {case_id}


async def test_fronleichnam_in_bavaria_but_not_in_hamburg(store: SqlStore, database: Database) -> None:
    clock = FakeClock(berlin(2026, 6, 3, 17, 50))  # Wednesday before Corpus Christi
    lines = line("muenchen", "BY", escalate_after=1), line("hamburg", "HH", escalate_after=1)
    svc = service(settings_for(*lines), store, clock)
    munich = await call(store, "muenchen", clock.now)
    hamburg = await call(store, "hamburg", clock.now)
    await run_until(svc, clock, [berlin(2026, 6, 4, 8, 20), berlin(2026, 6, 4, 16, 0)])
    assert [job["case_id"] for job in await queued(database, REMINDER)] == [hamburg]
    await run_until(svc, clock, [berlin(2026, 6, 5, 8, 19)])
    assert [job["case_id"] for job in await queued(database, REMINDER)] == [hamburg]
    await run_until(svc, clock, [berlin(2026, 6, 5, 8, 20)])
    assert [job["case_id"] for job in await queued(database, REMINDER)] == [hamburg, munich]


async def test_christmas_and_new_year_are_skipped(store: SqlStore, database: Database) -> None:
    clock = FakeClock(berlin(2026, 12, 23, 17, 45))
    svc = service(settings_for(line("zentrale", "NW")), store, clock)
    await call(store, "zentrale", clock.now)
    days = [berlin(2026, 12, day, 10) for day in (24, 25, 26, 27)] + [berlin(2026, 12, 28, 8, 14)]
    await run_until(svc, clock, days)
    assert await queued(database, REMINDER) == []
    await run_until(svc, clock, [berlin(2026, 12, 28, 8, 15)])
    assert len(await queued(database, REMINDER)) == 1
    clock.now = berlin(2026, 12, 30, 17, 50)
    second = await call(store, "zentrale", clock.now)

    async def reminded() -> list[dict[str, Any]]:
        return [job for job in await queued(database, REMINDER) if job["case_id"] == second]

    await run_until(svc, clock, [berlin(2026, 12, 31, 12), berlin(2027, 1, 1, 12), berlin(2027, 1, 4, 8, 19)])
    assert await reminded() == []
    await run_until(svc, clock, [berlin(2027, 1, 4, 8, 20)])
    assert len(await reminded()) == 1
    # Nothing at all is sent while the line is closed, not even reminders that fell due before.
    assert all(
        datetime.fromisoformat(job["at"]).astimezone(BERLIN).day not in (31, 1)
        for job in await queued(database, REMINDER)
    )


@pytest.mark.parametrize(
    ("friday", "monday_utc_hour"),
    [((2026, 3, 27), 6), ((2026, 10, 23), 7)],
    ids=["spring-forward", "fall-back"],
)
async def test_daylight_saving_weekend(
    store: SqlStore, database: Database, friday: tuple[int, int, int], monday_utc_hour: int
) -> None:
    clock = FakeClock(berlin(*friday, 17, 50))
    svc = service(settings_for(line("zentrale")), store, clock)
    case_id = await call(store, "zentrale", clock.now)
    await svc.tick()
    [sent_plan] = [plan for plan in [await next_due(store, "zentrale")] if plan]
    assert sent_plan.hour == monday_utc_hour and sent_plan.minute == 20
    await run_until(svc, clock, [sent_plan - timedelta(minutes=1)])
    assert await queued(database, REMINDER) == []
    await run_until(svc, clock, [sent_plan])
    assert [job["case_id"] for job in await queued(database, REMINDER)] == [case_id]


async def test_steps_claim_nudge_and_escalation(store: SqlStore, database: Database) -> None:
    start = berlin(2026, 3, 10, 9, 0)
    clock = FakeClock(start)
    rules = {"escalate_after": 2, "escalate_to": {"user": {"id": "aad-chef", "name": "Chefin"}}}
    svc = service(settings_for(line("zentrale", **rules)), store, clock)
    case_id = await call(store, "zentrale", start)
    minutes = [29, 30, 31, 59, 60, 61, 89, 90, 91, 200]
    await run_until(svc, clock, [start + timedelta(minutes=m) for m in minutes])
    kinds = [(job["kind"], job["step"]) for job in await queued(database, REMINDER)]
    assert kinds == [("unclaimed", 1), ("unclaimed", 2), ("escalation", 3)]
    # A claim starts a new episode: nudges after 120 and 240 minutes, then the escalation.
    claimed_at = start + timedelta(minutes=200)
    outcome = await store.cases.transition(
        case_id, Verb.CLAIM, ANNA, claimed_at, timedelta(hours=2), effects=no_effects
    )
    assert outcome.applied
    moments = [claimed_at + timedelta(minutes=m) for m in (119, 120, 121, 239, 240)]
    await run_until(svc, clock, [*moments, berlin(2026, 3, 10, 18, 30), berlin(2026, 3, 11, 8, 19)])
    assert len(await queued(database, REMINDER)) == 5
    await run_until(svc, clock, [berlin(2026, 3, 11, 8, 20), berlin(2026, 3, 11, 12, 0)])
    claimed = [job for job in await queued(database, REMINDER) if job["kind"] != "unclaimed"][1:]
    assert [(job["kind"], job["step"]) for job in claimed] == [("claimed", 1), ("claimed", 2), ("escalation", 3)]
    assert claimed[0]["claimer"] == {"id": ANNA.id, "name": ANNA.name}
    await store.cases.transition(case_id, Verb.DONE, ANNA, clock.now, timedelta(hours=2), effects=no_effects)
    await run_until(svc, clock, [clock.now + timedelta(days=3)])
    assert len(await queued(database, REMINDER)) == 6


async def test_after_downtime_only_the_latest_due_step_is_sent(store: SqlStore, database: Database) -> None:
    start = berlin(2026, 3, 10, 9, 0)
    clock = FakeClock(start)
    await call(store, "zentrale", start)
    svc = service(settings_for(line("zentrale", escalate_after=3)), store, clock)
    await run_until(svc, clock, [start + timedelta(minutes=75)])
    assert [(job["kind"], job["step"]) for job in await queued(database, REMINDER)] == [("unclaimed", 2)]


async def test_reminders_off_by_default(store: SqlStore, database: Database) -> None:
    plain = line("zentrale")
    plain.pop("reminders")
    clock = FakeClock(berlin(2026, 3, 10, 9, 0))
    svc = service(settings_for(plain), store, clock)
    await call(store, "zentrale", clock.now)
    await run_until(svc, clock, [clock.now + timedelta(hours=h) for h in (1, 2, 3, 30)])
    assert await queued(database, REMINDER) == []
    assert await queued(database, OVERVIEW) == []


async def test_exactly_once_across_restarts(database_url: str) -> None:
    """Each tick runs in a freshly opened store and service, as after a restart; every step is sent once."""
    start = berlin(2026, 3, 10, 9, 0)
    clock = FakeClock(start)
    settings = settings_for(line("zentrale", escalate_after=2))

    async def restarted_tick(moment: datetime) -> None:
        database = await open_database(database_url)
        try:
            store = SqlStore(database)
            clock.now = moment
            await service(settings, store, clock).tick()
        finally:
            await database.close()

    database = await open_database(database_url)
    try:
        store = SqlStore(database)
        await store.migrate()
        case_id = await call(store, "zentrale", start)
    finally:
        await database.close()
    for minute in (30, 30, 31, 45, 60, 60, 61, 90, 120):
        await restarted_tick(start + timedelta(minutes=minute))
        database = await open_database(database_url)
        await sent_out(database)
        await database.close()
    database = await open_database(database_url)
    try:
        sent = await sent_reminders(SqlStore(database), case_id)
        jobs = await queued(database, REMINDER)
    finally:
        await database.close()
    assert [reminder.step for reminder in sent] == [1, 2]
    assert [job["step"] for job in jobs] == [1, 2]


async def test_two_replicas_send_each_reminder_once(database_url: str) -> None:
    """Two replicas (separate connection pools) tick at the same moments; on PostgreSQL they really race."""
    start = berlin(2026, 3, 10, 9, 0)
    settings = settings_for(line("zentrale", escalate_after=3, escalate_to={"channel_id": "19:chefs"}))
    databases = [await open_database(database_url) for _ in range(2)]
    try:
        stores = [SqlStore(database) for database in databases]
        await stores[0].migrate()
        case_ids = [await call(stores[0], "zentrale", start + timedelta(seconds=n)) for n in range(20)]
        clocks = [FakeClock(start), FakeClock(start)]
        replicas = [service(settings, store, clock) for store, clock in zip(stores, clocks, strict=True)]
        for minute in range(0, 140, 5):
            for clock in clocks:
                clock.now = start + timedelta(minutes=minute, seconds=30)
            await asyncio.gather(*(replica.tick() for replica in replicas for _ in range(3)))
            await sent_out(databases[0])
        jobs = await queued(databases[0], REMINDER)
        sent = await sent_reminders(stores[0])
    finally:
        for database in databases:
            await database.close()
    expected = sorted((case_id, step) for case_id in case_ids for step in (1, 2, 3, 4))
    assert sorted((job["case_id"], job["step"]) for job in jobs) == expected
    assert sorted((reminder.case_id, reminder.step) for reminder in sent) == expected


async def test_morning_overview_once_per_opening(store: SqlStore, database: Database) -> None:
    clock = FakeClock(berlin(2026, 3, 10, 17, 0))
    svc = service(settings_for(line("zentrale")), store, clock)
    await call(store, "zentrale", berlin(2026, 3, 10, 17, 30))  # during opening hours: not in the overview
    night = [await call(store, "zentrale", berlin(2026, 3, 10, hour, 15)) for hour in (21, 19)]
    early = await call(store, "zentrale", berlin(2026, 3, 11, 7, 40))
    claimed = await call(store, "zentrale", berlin(2026, 3, 10, 20, 0))
    await store.cases.transition(
        claimed, Verb.CLAIM, ANNA, berlin(2026, 3, 10, 20, 5), timedelta(hours=2), effects=no_effects
    )
    await run_until(svc, clock, [berlin(2026, 3, 10, 18, 30), berlin(2026, 3, 11, 7, 59)])
    assert await queued(database, OVERVIEW) == []
    for moment in (berlin(2026, 3, 11, 8, 0), berlin(2026, 3, 11, 8, 1), berlin(2026, 3, 11, 9, 0)):
        await run_until(svc, clock, [moment])
        await sent_out(database)
    [overview] = await queued(database, OVERVIEW)
    assert overview["case_ids"] == [night[1], night[0], early]  # oldest first, claimed one left out
    assert overview["total"] == 3
    assert overview["closed_since"] == berlin(2026, 3, 10, 18, 0).isoformat()
    await run_until(svc, clock, [berlin(2026, 3, 12, 8, 0)])  # next morning: nothing came in overnight
    assert len(await queued(database, OVERVIEW)) == 1


async def test_overview_after_a_holiday_weekend_covers_all_closed_days(store: SqlStore, database: Database) -> None:
    clock = FakeClock(berlin(2026, 12, 23, 18, 30))
    svc = service(settings_for(line("zentrale", "NW")), store, clock)
    calls = [await call(store, "zentrale", berlin(2026, 12, day, 11)) for day in (24, 25, 27)]
    await run_until(svc, clock, [berlin(2026, 12, 28, 8, 5)])
    [overview] = await queued(database, OVERVIEW)
    assert overview["case_ids"] == calls
    assert overview["closed_since"] == berlin(2026, 12, 23, 18, 0).isoformat()


async def test_a_reminder_read_by_two_replicas_is_fired_by_one(database_url: str) -> None:
    """Both replicas saw the same due reminder before either fired it (the race the schedule must survive)."""
    start = berlin(2026, 3, 10, 9, 0)
    settings = settings_for(line("zentrale"))
    databases = [await open_database(database_url) for _ in range(2)]
    try:
        stores = [SqlStore(database) for database in databases]
        await stores[0].migrate()
        case_id = await call(stores[0], "zentrale", start)
        clock = FakeClock(start + timedelta(minutes=1))
        await service(settings, stores[0], clock).tick()  # plans step 1 for 09:30
        moment = start + timedelta(minutes=31)
        [due_a] = await stores[0].reminders.due(moment, ["zentrale"])
        [due_b] = await stores[1].reminders.due(moment, ["zentrale"])
        effect = QueuedEffect(REMINDER, {"case_id": case_id, "step": 1}, f"reminder:{case_id}:1")
        fired = await asyncio.gather(
            stores[0].reminders.fire(due_a, moment, [effect], None),
            stores[1].reminders.fire(due_b, moment, [effect], None),
        )
        await sent_out(databases[0])
        fired_again = await stores[1].reminders.fire(due_b, moment, [effect], None)
        jobs = await queued(databases[0], REMINDER)
        sent = await sent_reminders(stores[0], case_id)
    finally:
        for database in databases:
            await database.close()
    assert sorted(fired) == [False, True]
    assert not fired_again
    assert len(jobs) == 1
    assert [reminder.step for reminder in sent] == [1]


async def test_two_replicas_send_one_morning_overview(database_url: str) -> None:
    settings = settings_for(line("zentrale"))
    databases = [await open_database(database_url) for _ in range(2)]
    try:
        stores = [SqlStore(database) for database in databases]
        await stores[0].migrate()
        for hour in (19, 20, 21):
            await call(stores[0], "zentrale", berlin(2026, 3, 10, hour))
        clock = FakeClock(berlin(2026, 3, 11, 8, 0))
        replicas = [service(settings, store, clock) for store in stores]
        results = await asyncio.gather(*(replica.tick() for replica in replicas for _ in range(3)))
        overviews = await queued(databases[0], OVERVIEW)
    finally:
        for database in databases:
            await database.close()
    assert sum(result.overviews for result in results) == 1
    assert len(overviews) == 1 and overviews[0]["total"] == 3


async def test_overdue_reminders_of_a_closed_line_do_not_hold_up_an_open_line(
    store: SqlStore, database: Database
) -> None:
    short = {**line("kurz"), "hours": {"weekly": "Mo-Fr 08:00-08:40"}}
    always = {**line("immer"), "hours": {"weekly": "Mo-So 00:00-24:00"}}
    clock = FakeClock(berlin(2026, 3, 10, 8, 0))
    svc = service(settings_for(short, always), store, clock)
    for n in range(120):
        await call(store, "kurz", berlin(2026, 3, 10, 8, 0) + timedelta(seconds=n))
    await svc.tick()
    urgent = await call(store, "immer", berlin(2026, 3, 10, 8, 5))
    await run_until(svc, clock, [berlin(2026, 3, 10, 8, 45)])  # "kurz" closed at 08:40 with 120 reminders due
    assert [job["case_id"] for job in await queued(database, REMINDER)] == [urgent]
    # They go out at the next opening, at most 100 per tick (a tick runs every 30 seconds).
    await run_until(svc, clock, [berlin(2026, 3, 11, 8, 0), berlin(2026, 3, 11, 8, 0, 30)])
    assert len([job for job in await queued(database, REMINDER) if job["case_id"] != urgent]) == 120
