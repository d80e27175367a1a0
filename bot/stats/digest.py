"""The weekly digest: each configured line's stats card, posted to its channel once per week.

"Once" holds across restarts and instances: the week's ``digest_runs`` row and the posting job are written in one
transaction, and the row's primary key (line, week) admits one. The job records the posted message on the row, so a
retried job does not post again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from bot.config import Settings
from bot.stats.model import Period
from bot.stats.schedule import GRACE, parse_schedule
from bot.storage.database import Database, IntegrityConflict, to_json
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DIGEST_JOB = "teams.digest"
CHECK_INTERVAL = timedelta(minutes=1)


def digest_period(due: datetime) -> Period:
    """The seven days before the scheduled moment (wall-clock days in the team's zone, so DST weeks are right)."""
    return Period((due - timedelta(days=7)).astimezone(UTC), due.astimezone(UTC))


class DigestRuns:
    """The ``digest_runs`` table."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = database
        self._clock = clock

    async def schedule_once(self, line_id: str, due: datetime) -> bool:
        """Record the week of ``due`` for the line and enqueue its posting job, atomically; False if it was done."""
        week = due.date().isoformat()
        period = digest_period(due)
        payload = {"line_id": line_id, "week": week, "start": period.start.isoformat(), "end": period.end.isoformat()}
        now = self._clock()
        try:
            async with self._db.transaction() as cursor:
                inserted = await cursor.execute(
                    "INSERT INTO digest_runs (line_id, week, scheduled_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (line_id, week) DO NOTHING",
                    (line_id, week, due),
                )
                if inserted != 1:
                    return False
                # The outbox row, in this same transaction (JobQueue.enqueue opens a transaction of its own).
                await cursor.execute(
                    "INSERT INTO jobs (kind, payload, state, attempts, dedupe_key, run_at, created_at, updated_at) "
                    "VALUES (?, ?, 'pending', 0, ?, ?, ?, ?)",
                    (DIGEST_JOB, to_json(payload), f"digest:{line_id}:{week}", now, now, now),
                )
        except IntegrityConflict:
            return False
        return True

    async def posted_activity(self, line_id: str, week: str) -> str | None:
        async with self._db.transaction() as cursor:
            await cursor.execute("SELECT activity_id FROM digest_runs WHERE line_id = ? AND week = ?", (line_id, week))
            row = await cursor.fetchone()
        return row["activity_id"] if row else None

    async def mark_posted(self, line_id: str, week: str, activity_id: str) -> None:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "UPDATE digest_runs SET activity_id = ? WHERE line_id = ? AND week = ?", (activity_id, line_id, week)
            )


class DigestScheduler:
    """Checks every minute whether a line's digest is due; every instance may check, the table decides."""

    def __init__(
        self,
        settings: Settings,
        runs: DigestRuns,
        tz: tzinfo,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._schedules = {line_id: parse_schedule(when) for line_id, when in settings.weekly_digest.items()}
        self._runs = runs
        self._tz = tz
        self._clock = clock
        self._wake = wake
        self._tasks: list[asyncio.Task[None]] = []

    async def tick(self) -> list[str]:
        """Enqueue the digests that are due now and not yet sent; returns their line ids."""
        now = self._clock()
        scheduled = []
        for line_id, schedule in self._schedules.items():
            due = schedule.due_at(now, self._tz)
            if now - due > GRACE:
                continue
            if await self._runs.schedule_once(line_id, due):
                log.info("weekly digest of %s for the week of %s scheduled", line_id, due.date().isoformat())
                scheduled.append(line_id)
        if scheduled and self._wake is not None:
            self._wake()
        return scheduled

    def start(self) -> None:
        if self._schedules:
            self._tasks = [asyncio.create_task(self._forever(), name="weekly-digest")]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def _forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("checking the weekly digests failed")
            await asyncio.sleep(CHECK_INTERVAL.total_seconds())


def digest_payload_period(payload: dict[str, Any]) -> Period:
    return Period(datetime.fromisoformat(str(payload["start"])), datetime.fromisoformat(str(payload["end"])))
