"""The weekly digest: exactly once per line and week, across restarts and instances; posted as a stats card."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import ConfigError, load_settings
from bot.stats.digest import DIGEST_JOB, DigestRuns, DigestScheduler, digest_period
from bot.stats.schedule import parse_schedule
from bot.storage.database import Database
from bot.storage.factory import open_database
from bot.storage.sql_store import SqlStore
from cards.i18n import BERLIN
from tests.support.bot_stack import CHANNEL_ID, BotStack
from tests.support.cards import card_texts

MONDAY_0800_BERLIN = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def settings(**digest: str):  # type: ignore[no-untyped-def]
    lines = [
        {"id": "zentrale", "mailbox": "z@praxis.example", "numbers": ["+49301234500"], "display_name": "Zentrale"},
        {"id": "labor", "mailbox": "l@praxis.example", "numbers": ["+49301234501"], "display_name": "Labor"},
    ]
    return load_settings(
        _env_file=None, sandbox_mode=True, graph_client_state="s", pool_lines=lines, weekly_digest=digest
    )


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def digest_jobs(database: Database) -> list[tuple[str, str]]:
    async with database.transaction() as cursor:
        await cursor.execute("SELECT payload FROM jobs WHERE kind = ? ORDER BY id", (DIGEST_JOB,))
        rows = await cursor.fetchall()
    from bot.storage.database import from_json

    return [(from_json(row["payload"])["line_id"], from_json(row["payload"])["week"]) for row in rows]


async def finish_jobs(database: Database) -> None:
    """The outbox ran the posting jobs (so its pending-job dedupe no longer hides a second enqueue)."""
    async with database.transaction() as cursor:
        await cursor.execute("UPDATE jobs SET state = 'done'")


def scheduler(database: Database, clock: Clock, **digest: str) -> DigestScheduler:
    return DigestScheduler(settings(**digest), DigestRuns(database, clock), BERLIN, clock)


async def test_digest_exactly_once_per_week_across_restarts(database_url: str) -> None:
    clock = Clock(MONDAY_0800_BERLIN - timedelta(minutes=1))
    database = await open_database(database_url)
    await SqlStore(database).migrate()
    try:
        first = scheduler(database, clock, zentrale="mo 08:00")
        assert await first.tick() == []  # not yet due
        clock.now = MONDAY_0800_BERLIN
        assert await first.tick() == ["zentrale"]
        await finish_jobs(database)
        clock.now += timedelta(minutes=1)
        assert await first.tick() == []
    finally:
        await database.close()

    # A restart: new process, new scheduler, same database.
    database = await open_database(database_url)
    try:
        clock.now = MONDAY_0800_BERLIN + timedelta(hours=3)
        second, third = scheduler(database, clock, zentrale="mo 08:00"), scheduler(database, clock, zentrale="mo 8:00")
        assert await second.tick() == [] and await third.tick() == []
        clock.now = MONDAY_0800_BERLIN + timedelta(days=7)
        assert await second.tick() == ["zentrale"]
        await finish_jobs(database)
        assert await third.tick() == []  # a second instance in the same minute
        assert await digest_jobs(database) == [("zentrale", "2026-11-30"), ("zentrale", "2026-12-07")]
    finally:
        await database.close()


async def test_off_by_default_and_late_digests_within_a_day(database: Database) -> None:
    clock = Clock(MONDAY_0800_BERLIN + timedelta(hours=23))
    assert await scheduler(database, clock).tick() == []  # no WEEKLY_DIGEST: nothing, ever
    assert await scheduler(database, clock, labor="Montag 08:00").tick() == ["labor"]  # down at 08:00, up at 07:00
    clock.now = MONDAY_0800_BERLIN + timedelta(days=8, hours=1)
    assert await scheduler(database, clock, labor="mo 08:00").tick() == []  # more than a day late: skipped


def test_the_digest_covers_the_seven_days_before_it_also_over_a_clock_change() -> None:
    due = parse_schedule("mo 08:00").due_at(datetime(2026, 11, 2, 9, 0, tzinfo=UTC), BERLIN)
    period = digest_period(due)
    assert period.end == datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
    assert period.start == datetime(2026, 10, 26, 7, 0, tzinfo=UTC)  # the week after the switch to CET
    assert parse_schedule("So 23:30").due_at(datetime(2026, 11, 30, 7, 0, tzinfo=UTC), BERLIN).weekday() == 6


@pytest.mark.parametrize("bad", ['{"zentrale": "someday"}', '{"zentrale": "mo 25:00"}', '{"nowhere": "mo 08:00"}'])
def test_bad_digest_settings_are_refused_at_start(bad: str) -> None:
    with pytest.raises(ConfigError, match="WEEKLY_DIGEST"):
        load_settings(_env_file=None, sandbox_mode=True, graph_client_state="s", weekly_digest=bad)


async def test_the_digest_job_posts_the_stats_card_to_the_line_channel_once(bot_stack: BotStack) -> None:
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.settle()
    from bot.storage.factory import sql_database

    runs = DigestRuns(sql_database(bot_stack.services.store))
    due = parse_schedule("mo 08:00").due_at(datetime.now(UTC), BERLIN) + timedelta(days=7)
    assert await runs.schedule_once("zentrale", due)
    assert not await runs.schedule_once("zentrale", due)
    await bot_stack.settle()

    # The same job again, as after a worker died between posting and completing it: nothing is posted twice.
    period = digest_period(due)
    retry = {"line_id": "zentrale", "week": due.date().isoformat(), "start": period.start.isoformat(),
             "end": period.end.isoformat()}  # fmt: skip
    await bot_stack.services.store.jobs.enqueue(DIGEST_JOB, retry)
    await bot_stack.settle()

    digests = [record for record in bot_stack.channel_cards() if "Wochenrückblick" in str(record.current)]
    assert len(digests) == 1
    shown = card_texts(digests[0].current["attachments"][0]["content"])
    assert "Wochenrückblick – Zentrale" in shown and "Anrufe: 1" in shown
    assert await runs.posted_activity("zentrale", due.date().isoformat()) == digests[0].activity_id
    assert digests[0].conversation_id.startswith(CHANNEL_ID)
