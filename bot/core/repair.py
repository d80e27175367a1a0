"""The repair sweep: queues what a case's state requires but is neither done nor on its way.

A change and its effects are meant to be committed together; the sweep is the safety net for whatever still slips
through (a process killed between two writes, a job dead-lettered during an outage): a case without its card, a
card older than its case, a mail whose flag disagrees with its case. It runs at start-up and with every periodic
pass. It is idempotent (what a pending or running job already does is skipped, and the jobs are deduplicated on
their keys) and bounded (at most ``limit`` repairs of each kind per pass, newest cases first; the rest follow in
the next pass).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from bot import metrics
from bot.clock import Clock, system_clock
from bot.core import effects
from bot.core.ports import JobPriority, RepairQueries, Store

log = logging.getLogger(__name__)

REPAIR_LIMIT = 200
"""Repairs of each kind queued per pass at most."""
REPAIR_HORIZON = timedelta(days=7)
"""Cases changed within this long are checked; older ones have long been seen by earlier passes."""


@dataclass(frozen=True, slots=True)
class Repairs:
    missing_cards: int
    stale_cards: int
    flags: int


class RepairSweep:
    def __init__(
        self,
        store: Store,
        queries: RepairQueries,
        *,
        clock: Clock = system_clock,
        limit: int = REPAIR_LIMIT,
        horizon: timedelta = REPAIR_HORIZON,
    ) -> None:
        self._store = store
        self._queries = queries
        self._clock = clock
        self._limit = limit
        self._horizon = horizon

    async def run(self) -> Repairs:
        since = self._clock() - self._horizon
        queue = self._store.jobs
        missing = await self._queries.cases_without_card(since, self._limit)
        stale = await self._queries.cases_with_stale_card(since, self._limit)
        mails = await self._queries.mails_with_wrong_flag(since, self._limit)
        # Backlog: live cards and clicks go first.
        await queue.add(
            [
                *(effects.RefreshCard(case_id, JobPriority.BACKLOG) for case_id in [*missing, *stale]),
                *(effects.WriteFlag(mail.mailbox, mail.message_id, mail.case_id) for mail in mails),
            ]
        )
        repairs = Repairs(len(missing), len(stale), len(mails))
        metrics.REPAIRS.labels("card_missing").inc(repairs.missing_cards)
        metrics.REPAIRS.labels("card_stale").inc(repairs.stale_cards)
        metrics.REPAIRS.labels("flag").inc(repairs.flags)
        if missing or stale or mails:
            log.warning(
                "repair sweep queued %d missing cards, %d stale cards and %d flag writes",
                repairs.missing_cards,
                repairs.stale_cards,
                repairs.flags,
            )
        return repairs
