"""The stats' daily roll-ups answer exactly what the rows answer, over random histories, on SQLite and PostgreSQL.

Each history records calls (mails, call webhooks merged with their mails, faxes), claims, releases, take-overs, dones,
reopens and reached callbacks on two lines around a DST change, purges done cases and erases callers; after each
stretch the stats of several periods (whole Berlin days, the 23- and 25-hour DST days, partial days at both ends,
less than a day) are computed from the roll-ups and from the rows, and must be equal. At the end the roll-ups kept by
the writes must equal a recount from the rows (the migrations' backfill), and no caller row may outlive its calls.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.effects import no_effects
from bot.domain.callbacks import AutoDone
from bot.domain.cases import Actor, Contact, ContactKind
from bot.domain.events import WITHHELD, CallEvent, EventKind, MailSource
from bot.domain.state_machine import Verb
from bot.stats.model import Period
from bot.stats.queries import StatsQueries
from bot.storage import stats_rollups
from bot.storage.database import Database, require_utc
from bot.storage.migrations import migrate
from bot.storage.sql_store import SqlStore
from cards.i18n import BERLIN
from tests.support.storage import ALICE, BOB, CAROL, CLAIM_TIMEOUT, T0, make_event

LINES = ("line-1", "line-2")
CALLERS = ("+4930111", "+4930222", "+4930333", "+4930444", WITHHELD, None)
PEOPLE = (ALICE, BOB, CAROL, Actor("aad-alice", "Alice Renamed"))
VERBS = (Verb.CLAIM, Verb.DONE, Verb.RELEASE, Verb.TAKE_OVER, Verb.REOPEN)
SPRING = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # summer time starts Sunday 29 March, 01:00 UTC
AUTUMN = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)  # and ends Sunday 25 October, 01:00 UTC
SPAN = timedelta(days=5)
WINDOW = timedelta(minutes=3)


def berlin(day: datetime, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).astimezone(UTC)


def periods(base: datetime) -> list[Period]:
    sunday = base + timedelta(days=2)
    return [
        Period(base - timedelta(days=1), base + SPAN + timedelta(days=1)),  # whole days and both edges
        Period(berlin(sunday), berlin(sunday + timedelta(days=1))),  # the DST day alone (23 or 25 hours)
        Period(berlin(base), berlin(base + timedelta(days=4))),  # whole days only
        Period(base + timedelta(hours=5, minutes=17), base + timedelta(days=3, hours=1, seconds=7)),
        Period(base + timedelta(hours=1), base + timedelta(hours=9)),  # less than a day
        Period(berlin(sunday, 1), berlin(sunday, 4)),  # across the switch itself, whole hours
    ]


class History:
    def __init__(self, store: SqlStore, rng: random.Random, base: datetime) -> None:
        self.store, self.rng, self.base = store, rng, base
        self.case_ids: list[str] = []
        self.n = 0

    def moment(self) -> datetime:
        # Whole and half minutes too, so that rounding ties come up.
        seconds = self.rng.choice([self.rng.randrange(0, 86400 * 5), self.rng.randrange(0, 7200) * 30])
        return self.base + timedelta(seconds=seconds, microseconds=self.rng.choice([0, 0, 250_000]))

    async def call(self) -> None:
        self.n += 1
        line, caller, at = self.rng.choice(LINES), self.rng.choice(CALLERS), self.moment()
        kind = self.rng.choice([EventKind.MISSED_CALL, EventKind.MISSED_CALL, EventKind.VOICEMAIL, EventKind.FAX])
        mailbox = f"{line}@example.com"
        mail = MailSource(mailbox, f"m{self.n}", subject="Anruf", sender="noreply@placetel.de")
        if kind is not EventKind.FAX and self.rng.random() < 0.3:
            # The call webhook first, then its mail: the mail's report is merged into the call's event.
            call_id = f"call-{self.n}"
            webhook = CallEvent(CallEvent.source_id_for_call(call_id), kind, line, caller, at, None, call_id=call_id)
            await self.store.cases.record_event(webhook, WINDOW, effects=no_effects)
            at += timedelta(seconds=40)
        event = CallEvent(CallEvent.source_id_for(mailbox, mail.message_id), kind, line, caller, at, mail)
        outcome = await self.store.cases.record_event(event, WINDOW, effects=no_effects)
        if outcome.case.id not in self.case_ids:
            self.case_ids.append(outcome.case.id)

    async def act(self) -> None:
        if not self.case_ids:
            return
        case_id = self.rng.choice(self.case_ids)
        case = await self.store.cases.get(case_id)
        if case is None:
            return
        now = case.created_at + timedelta(seconds=self.rng.choice([self.rng.randrange(0, 3 * 86400), 90, 30 * 60]))
        await self.store.cases.transition(
            case_id, self.rng.choice(VERBS), self.rng.choice(PEOPLE), now, CLAIM_TIMEOUT, effects=no_effects
        )

    async def callback(self) -> None:
        self.n += 1
        contact = Contact(f"cb-{self.n}", ContactKind.CALLBACK, self.moment(), self.rng.random() < 0.7, 60, "Anna")
        await self.store.cases.record_contact(
            self.rng.choice(LINES),
            self.rng.choice(CALLERS[:4]),
            contact,
            AutoDone.REACHED,
            contact.at,
            CLAIM_TIMEOUT,
            effects=no_effects,
        )

    async def forget(self) -> None:
        if self.rng.random() < 0.5:
            await self.store.privacy.purge_done_cases(self.moment(), self.base + SPAN, limit=2)
        else:
            await self.store.privacy.erase_caller(self.rng.choice(CALLERS[:4]), self.base + SPAN, "test")

    async def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.4:
            await self.call()
        elif roll < 0.85:
            await self.act()
        elif roll < 0.95:
            await self.callback()
        else:
            await self.forget()


async def assert_rollups_answer_like_rows(database: Database, base: datetime) -> None:
    with_rollups, from_rows = StatsQueries(database), StatsQueries(database, rollups=False)
    for period in periods(base):
        for lines in (LINES, LINES[:1]):
            assert await with_rollups.team_stats(lines, period, BERLIN) == await from_rows.team_stats(
                lines, period, BERLIN
            ), (period, lines)


async def rollup_rows(database: Database) -> dict[str, set[tuple[object, ...]]]:
    """The roll-ups' rows that count something (rows taken down to zero are kept by the writes), and every caller row:
    those taken down to zero must be gone."""
    tables = {
        "stats_case_days": "cases <> 0 OR done <> 0",
        "stats_durations": "n <> 0",
        "stats_call_hours": "calls <> 0",
        "stats_caller_days": "1 = 1",
    }
    found = {}
    async with database.transaction() as cursor:
        for table, counting in tables.items():
            await cursor.execute(f"SELECT * FROM {table} WHERE {counting}")
            found[table] = {tuple(row.values()) for row in await cursor.fetchall()}
    return found


@pytest.mark.parametrize("seed", range(4))
async def test_rollups_answer_like_the_rows_over_random_histories(database: Database, seed: int) -> None:
    base = SPRING if seed % 2 == 0 else AUTUMN
    history = History(SqlStore(database), random.Random(seed), base)
    for _stretch in range(4):
        for _ in range(25):
            await history.step()
        await assert_rollups_answer_like_rows(database, base)
    kept = await rollup_rows(database)
    async with database.transaction() as cursor:
        await stats_rollups.rebuild(cursor, database.dialect)
    assert await rollup_rows(database) == kept


async def test_the_migration_backfills_the_rollups(database: Database) -> None:
    """A store that had cases before migrations 0014 and 0015 gets roll-ups that answer like its rows."""
    history = History(SqlStore(database), random.Random(99), AUTUMN)
    for _ in range(80):
        await history.step()
    kept = await rollup_rows(database)
    async with database.transaction() as cursor:
        for table in stats_rollups.ROLLUP_TABLES:
            await cursor.execute(f"DROP TABLE {table}")
        await cursor.execute("DELETE FROM schema_migrations WHERE version IN (14, 15)")
    assert await migrate(database) == [14, 15]
    backfilled = await rollup_rows(database)
    assert all(backfilled.values()) and backfilled == kept
    await assert_rollups_answer_like_rows(database, AUTUMN)


async def test_an_erased_number_leaves_no_rollup_row(database: Database) -> None:
    store = SqlStore(database)
    for n in range(4):
        await store.cases.record_event(make_event(f"e{n}", "+4930111", minutes=n * 600), effects=no_effects)
    await store.cases.record_event(make_event("kept", "+4930222"), effects=no_effects)
    await store.privacy.erase_caller("+4930111", T0 + timedelta(days=1), "test")
    async with database.transaction() as cursor:
        await cursor.execute("SELECT caller, calls FROM stats_caller_days")
        assert [(row["caller"], row["calls"]) for row in await cursor.fetchall()] == [("+4930222", 1)]


@pytest.mark.parametrize("minutes", [range(-3, 24 * 60 * 40, 7), [0, 9, 10, 59, 60, 239, 240, 10079, 10080, 10081]])
async def test_the_sql_buckets_durations_like_python(database: Database, minutes: range | list[int]) -> None:
    """The bucket the writes file a duration under in SQL is the one the business-hours path computes in Python."""
    values = list(minutes)
    found = []
    async with database.transaction() as cursor:
        for first in range(0, len(values), 500):
            chunk = values[first : first + 500]
            rows = ", ".join(["(CAST(? AS INTEGER))"] * len(chunk))
            bucket = stats_rollups.bucket_sql("m")
            await cursor.execute(f"WITH t(m) AS (VALUES {rows}) SELECT m, {bucket} AS b FROM t", chunk)
            found += [(int(row["m"]), int(row["b"])) for row in await cursor.fetchall()]
    assert sorted(found) == [(m, stats_rollups.duration_bucket(m)) for m in sorted(values)]
    assert {stats_rollups.duration_bucket(m) for m in range(24 * 60)} >= {0, 9, 10, 55, 60, 225, 240, 1380}


async def test_the_rollups_day_is_the_berlin_calendar_day(database: Database) -> None:
    """The SQL that files a case under its day agrees with the time zone database around every DST change."""
    instants = []
    for year in range(2024, 2031):
        for month, day in ((3, 24), (10, 24)):
            start = datetime(year, month, day, tzinfo=UTC)
            instants += [start + timedelta(minutes=30 * n) for n in range(9 * 48)]
    timestamp = database.dialect.ddl_types["timestamp"]
    day = stats_rollups.local_day_sql(database.dialect, "at")
    found = {}
    async with database.transaction() as cursor:
        for first in range(0, len(instants), 500):
            chunk = instants[first : first + 500]
            values = ", ".join([f"(CAST(? AS {timestamp}))"] * len(chunk))
            await cursor.execute(f"WITH t(at) AS (VALUES {values}) SELECT at, {day} AS day FROM t", chunk)
            found.update({require_utc(row["at"]): row["day"] for row in await cursor.fetchall()})
    assert found == {moment: moment.astimezone(BERLIN).date().isoformat() for moment in instants}
