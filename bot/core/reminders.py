"""Reminders, escalations and the morning overview: the use case over the store's durable schedule.

Every instance runs :meth:`ReminderService.tick` periodically. A tick (1) plans the next reminder of each open or
claimed case that changed since it was planned, (2) fires the reminders that are due, each in one transaction with
its effects (see :mod:`bot.storage.reminder_store`), and (3) sends each line's morning overview once per opening.
Replicas may tick at the same time: the store's compare-and-set lets exactly one of them fire a reminder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.config import PoolLine, Settings
from bot.core import effects
from bot.core.ports import CaseRepository, QueuedEffect, ReminderRepository, ScheduledReminder
from bot.domain.cases import Case
from bot.domain.reminders import PlannedReminder, episode_of, next_reminder, overview_window
from bot.logging_setup import mask_number
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

REMINDER = "teams.reminder"
OVERVIEW = "teams.overview"
TICK_INTERVAL = timedelta(seconds=30)
PLAN_BATCH = 200
PLAN_BATCHES_PER_TICK = 10
OVERVIEW_LIMIT = 15
"""Cases listed on an overview card (the count names all of them); keeps the card far below the size budget."""


@dataclass(frozen=True, slots=True)
class TickResult:
    planned: int = 0
    sent: int = 0
    overviews: int = 0


class ReminderService:
    def __init__(
        self,
        settings: Settings,
        cases: CaseRepository,
        reminders: ReminderRepository,
        clock: Clock,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self._cases = cases
        self._reminders = reminders
        self._clock = clock
        self._wake = wake
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def lines(self) -> list[PoolLine]:
        """The lines with reminders switched on."""
        return [line for line in self._settings.pool_lines if line.reminders.enabled]

    def _plan(self, case: Case, line: PoolLine, steps_sent: int, now: datetime) -> PlannedReminder | None:
        """The next step; after downtime only the latest step already due is sent, not a burst of all of them."""
        calendar, policy = line.hours.calendar, line.reminders.policy
        planned = next_reminder(case, calendar, policy, steps_sent)
        while planned is not None and planned.due_at <= now:
            following = next_reminder(case, calendar, policy, planned.step)
            if following is None or following.due_at > now:
                break
            planned = following
        return planned

    async def tick(self) -> TickResult:
        async with self._lock:
            now = self._clock()
            lines = {line.id: line for line in self.lines}
            await self._reminders.forget_inactive(list(lines))
            planned = await self._plan_changed(lines, now)
            sent = await self._fire_due(lines, now)
            overviews = 0
            for line in lines.values():
                overviews += await self._overview(line, now)
        if (sent or overviews) and self._wake is not None:
            self._wake()
        return TickResult(planned, sent, overviews)

    async def _plan_changed(self, lines: dict[str, PoolLine], now: datetime) -> int:
        """Plan every case that changed since it was planned, a batch at a time (bounded per tick)."""
        count = 0
        for _ in range(PLAN_BATCHES_PER_TICK):
            cases = await self._reminders.cases_to_plan(list(lines), PLAN_BATCH)
            episodes = {case.id: episode_of(case) for case in cases}
            steps = await self._reminders.steps_sent(
                [(case_id, episode.key) for case_id, episode in episodes.items() if episode is not None]
            )
            plans: list[tuple[Case, str, PlannedReminder | None]] = []
            for case in cases:
                episode = episodes[case.id]
                if episode is None:
                    plans.append((case, "", None))
                    continue
                sent = steps[(case.id, episode.key)]
                plans.append((case, episode.key, self._plan(case, lines[case.line_id], sent, now)))
            await self._reminders.save_plans(plans)
            count += len(plans)
            if len(cases) < PLAN_BATCH:
                break
        return count

    async def _fire_due(self, lines: dict[str, PoolLine], now: datetime) -> int:
        """Fire the due reminders of the lines open now; one that fell due before a closing waits for the next
        opening (and does not hold up the open lines' reminders)."""
        sent = 0
        open_lines = [line_id for line_id, line in lines.items() if line.hours.calendar.is_open(now)]
        for due in await self._reminders.due(now, open_lines):
            line = lines[due.line_id]
            case = await self._cases.get(due.case_id)
            if case is None:
                continue
            episode = episode_of(case)
            if episode is None or episode.key != due.episode:
                continue  # changed since planned; the next tick plans it again
            following = self._plan(case, line, due.step, now)
            if await self._reminders.fire(due, now, self._effects(due, case, line, now), following):
                sent += 1
                log.info("reminder %s #%d for case %s (%s)", due.kind, due.step, case.id[:8], mask_number(case.caller))
        return sent

    def _effects(self, due: ScheduledReminder, case: Case, line: PoolLine, now: datetime) -> list[QueuedEffect]:
        anchor = episode_of(case)
        waited = line.hours.calendar.business_minutes_between(anchor.anchor, now) if anchor else 0
        claimer = case.claimed_by
        payload = {
            "case_id": case.id,
            "kind": due.kind,
            "step": due.step,
            "waited_minutes": waited,
            "claimer": {"id": claimer.id, "name": claimer.name} if claimer else None,
            "at": now.isoformat(),
        }
        card = effects.outbox_row(effects.RefreshCard(case.id))
        return [
            QueuedEffect(REMINDER, payload, f"reminder:{case.id}:{due.episode}:{due.step}"),
            QueuedEffect(card.kind, card.payload, card.dedupe_key),
        ]

    async def _overview(self, line: PoolLine, now: datetime) -> int:
        if not line.reminders.morning_overview:
            return 0
        window = overview_window(line.hours.calendar, now)
        if window is None:
            return 0
        cases, total = await self._reminders.open_cases_between(
            line.id, window.closed_since, window.opening, OVERVIEW_LIMIT
        )
        if total == 0:
            return 0
        payload = {
            "line_id": line.id,
            "opening": window.opening.isoformat(),
            "closed_since": window.closed_since.isoformat() if window.closed_since else None,
            "case_ids": [case.id for case in cases],
            "total": total,
        }
        effect = QueuedEffect(OVERVIEW, payload, f"overview:{line.id}:{window.opening.isoformat()}")
        if await self._reminders.record_overview(line.id, window.opening, total, now, [effect]):
            log.info("morning overview of %s: %d calls while closed", line.id, total)
            return 1
        return 0

    # The loop -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.lines:
            self._task = asyncio.create_task(self._loop(), name="reminders")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("reminder tick failed; trying again")
            await asyncio.sleep(TICK_INTERVAL.total_seconds())
