"""The durable reminder schedule, the ledger of reminders and morning overviews sent, over one SQL text for both
engines.

Exactly once, across restarts and replicas: a reminder is fired in ONE transaction that (1) bumps the case's
version with a compare-and-set against the version it was planned for (a claim or a second replica that got there
first makes it a no-op), (2) records it in ``reminders_sent`` (primary key: case, episode, step), (3) queues its
effects in the outbox and (4) plans the next step. An overview is recorded under (line, opening) the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.core.ports import QueuedEffect, ReminderRepository, ScheduledReminder
from bot.domain.cases import Case
from bot.domain.reminders import PlannedReminder
from bot.storage.database import Cursor, Database, IntegrityConflict, Row, to_json, to_utc

if TYPE_CHECKING:
    from bot.storage.sql_store import SqlCaseRepository

Clock = Callable[[], datetime]


def _placeholders(values: Sized) -> str:
    return ", ".join("?" * len(values))


def _scheduled(row: Row) -> ScheduledReminder:
    return ScheduledReminder(
        row["case_id"],
        row["line_id"],
        row["episode"],
        int(row["step"]),
        row["kind"],
        to_utc(row["due_at"]),
        int(row["case_version"]),
    )


class SqlReminderRepository(ReminderRepository):
    def __init__(self, database: Database, cases: SqlCaseRepository, clock: Clock) -> None:
        self._db = database
        self._cases = cases
        self._clock = clock
        """The outbox's clock: queued effects are due at once by the job queue's time."""

    async def cases_to_plan(self, line_ids: Sequence[str], limit: int = 200) -> list[Case]:
        """Without their events: planning reads only the case's state, times and version."""
        from bot.storage.sql_store import case_from_row

        if not line_ids:
            return []
        async with self._db.transaction() as cursor:
            await cursor.execute(
                f"SELECT * FROM cases WHERE state IN ('open', 'claimed') AND line_id IN ({_placeholders(line_ids)}) "  # noqa: S608
                "AND NOT EXISTS (SELECT 1 FROM reminder_schedule s WHERE s.case_id = cases.id "
                "AND s.case_version = cases.version) ORDER BY created_at, id LIMIT ?",
                [*line_ids, limit],
            )
            return [case_from_row(row, ()) for row in await cursor.fetchall()]

    async def steps_sent(self, episodes: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        if not episodes:
            return {}
        case_ids = sorted({case_id for case_id, _ in episodes})
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "SELECT case_id, episode, MAX(step) AS step FROM reminders_sent "  # noqa: S608
                f"WHERE case_id IN ({_placeholders(case_ids)}) GROUP BY case_id, episode",
                case_ids,
            )
            sent = {(row["case_id"], row["episode"]): int(row["step"]) for row in await cursor.fetchall()}
        return {episode: sent.get(episode, 0) for episode in episodes}

    async def save_plans(self, plans: Sequence[tuple[Case, str, PlannedReminder | None]]) -> None:
        async with self._db.transaction() as cursor:
            for case, episode, planned in plans:
                await self._save_plan(cursor, case.id, case.line_id, case.version, episode, planned)

    @staticmethod
    async def _save_plan(
        cursor: Cursor, case_id: str, line_id: str, version: int, episode: str, planned: PlannedReminder | None
    ) -> None:
        """Upsert the case's plan; without a next step the row stays (due_at NULL) so the case is not planned again
        until it changes."""
        await cursor.execute(
            "INSERT INTO reminder_schedule (case_id, line_id, episode, step, kind, due_at, case_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET line_id = excluded.line_id, "
            "episode = excluded.episode, step = excluded.step, kind = excluded.kind, due_at = excluded.due_at, "
            "case_version = excluded.case_version",
            (
                case_id,
                line_id,
                episode,
                planned.step if planned else 0,
                planned.kind.value if planned else "",
                planned.due_at if planned else None,
                version,
            ),
        )

    async def forget_inactive(self, line_ids: Sequence[str]) -> int:
        line_filter = f"line_id NOT IN ({_placeholders(line_ids)}) OR " if line_ids else ""
        async with self._db.transaction() as cursor:
            return await cursor.execute(
                f"DELETE FROM reminder_schedule WHERE {line_filter}"  # noqa: S608 - fixed SQL fragments
                "EXISTS (SELECT 1 FROM cases WHERE cases.id = reminder_schedule.case_id AND cases.state = 'done')",
                list(line_ids),
            )

    async def due(self, now: datetime, line_ids: Sequence[str], limit: int = 100) -> list[ScheduledReminder]:
        if not line_ids:
            return []
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "SELECT * FROM reminder_schedule WHERE due_at IS NOT NULL AND due_at <= ? "  # noqa: S608
                f"AND line_id IN ({_placeholders(line_ids)}) ORDER BY due_at LIMIT ?",
                (now, *line_ids, limit),
            )
            return [_scheduled(row) for row in await cursor.fetchall()]

    async def fire(
        self,
        reminder: ScheduledReminder,
        now: datetime,
        effects: Sequence[QueuedEffect],
        following: PlannedReminder | None,
    ) -> bool:
        try:
            async with self._db.transaction() as cursor:
                bumped = await cursor.execute(
                    "UPDATE cases SET version = version + 1 WHERE id = ? AND version = ? "
                    "AND state IN ('open', 'claimed')",
                    (reminder.case_id, reminder.case_version),
                )
                if bumped != 1:
                    return False
                await cursor.execute(
                    "INSERT INTO reminders_sent (case_id, episode, step, kind, line_id, due_at, sent_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        reminder.case_id,
                        reminder.episode,
                        reminder.step,
                        reminder.kind,
                        reminder.line_id,
                        reminder.due_at or now,
                        now,
                    ),
                )
                await self._enqueue(cursor, effects)
                await self._save_plan(
                    cursor,
                    reminder.case_id,
                    reminder.line_id,
                    reminder.case_version + 1,
                    reminder.episode,
                    following,
                )
        except IntegrityConflict:
            return False
        return True

    async def _enqueue(self, cursor: Cursor, effects: Sequence[QueuedEffect]) -> None:
        """Queue ``effects`` inside the caller's transaction; a pending job with the same key does the work."""
        queued_at = self._clock()
        for effect in effects:
            await cursor.execute(
                "INSERT INTO jobs (kind, payload, state, attempts, dedupe_key, run_at, created_at, updated_at) "
                "VALUES (?, ?, 'pending', 0, ?, ?, ?, ?) "
                "ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING",
                (effect.kind, to_json(effect.payload), effect.dedupe_key, queued_at, queued_at, queued_at),
            )

    async def open_cases_between(
        self, line_id: str, since: datetime | None, until: datetime, limit: int
    ) -> tuple[list[Case], int]:
        where = "line_id = ? AND state = 'open' AND created_at < ?"
        params: list[Any] = [line_id, until]
        if since is not None:
            where += " AND created_at >= ?"
            params.append(since)
        async with self._db.transaction() as cursor:
            await cursor.execute(f"SELECT COUNT(*) AS total FROM cases WHERE {where}", params)  # noqa: S608
            counted = await cursor.fetchone()
            cases = await self._cases._load_cases(cursor, where, [*params, limit], "ORDER BY created_at, id LIMIT ?")
        return cases, int(counted["total"]) if counted else 0

    async def record_overview(
        self, line_id: str, opening: datetime, case_count: int, now: datetime, effects: Sequence[QueuedEffect]
    ) -> bool:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO overviews_sent (line_id, opening, case_count, sent_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (line_id, opening) DO NOTHING RETURNING line_id",
                (line_id, opening, case_count, now),
            )
            if await cursor.fetchone() is None:
                return False
            await self._enqueue(cursor, effects)
        return True
