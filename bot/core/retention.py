"""Retention and erasure: personal data leaves the database on time, and on request.

* Retention: cases done more than ``RETENTION_DAYS`` ago are deleted with their events, mail references, card
  reference, voicemail links and pending jobs; finished outbox jobs after ``OUTBOX_RETENTION_DAYS``. Runs hourly on
  one instance (a store lease), in batches, so a large backlog never holds a transaction for long.
* Erasure: ``python -m bot erase --number <E.164>`` or ``@Rufpool vergessen <Nummer>`` (admins) deletes every case and
  event of one number.

Either way each deleted case's Teams card is replaced by a "deleted" card (a ``teams.erased`` job, enqueued in the
deleting transaction) and an audit entry records who, when and how much, never the number. The mails in the shared
Outlook mailbox are not Rufpool's: they follow the mailbox's own retention (Exchange retention policies).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.config import Settings
from bot.core.numbers import normalise_number
from bot.core.ports import ErasedCard, ErasureOutcome, Store
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RETENTION_INTERVAL = timedelta(hours=1)
PURGE_BATCH = 200
MAX_BATCHES_PER_RUN = 50
"""At most 10,000 cases per hourly run: a first run over years of history spreads over a few hours."""
VOICEMAIL_LINK_KEEP = timedelta(days=1)
"""Used and expired voicemail links stay a day (the log of plays), then go."""
RETENTION_LEASE = "privacy-retention"


class NotANumber(ValueError):
    """The text given to erase is no phone number."""


def erasure_number(raw: str) -> str:
    """The E.164 form of ``raw`` (national German spellings accepted); :class:`NotANumber` otherwise."""
    number = normalise_number(raw.strip())
    if number is None:
        raise NotANumber("give the phone number to erase, e.g. +49 30 1234567")
    return number


async def erase_number(store: Store, raw: str, actor: str, now: datetime | None = None) -> ErasureOutcome:
    """Delete every case and event of the number in ``raw``; ``actor`` (no personal data of the caller) is audited."""
    outcome = await store.privacy.erase_caller(erasure_number(raw), now or datetime.now(UTC), actor)
    log.info(
        "erasure by %s: %d case(s), %d event(s) deleted, %d card(s) to replace",
        actor,
        outcome.cases,
        outcome.events,
        len(outcome.cards),
    )
    return outcome


class Retention:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        instance_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._store = store
        self._instance_id = instance_id
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def purge(self) -> ErasureOutcome:
        """One retention pass; returns what it deleted."""
        now = self._clock()
        done_before = now - timedelta(days=self._settings.retention_days)
        cases = events = 0
        cards: list[ErasedCard] = []
        for _ in range(MAX_BATCHES_PER_RUN):
            batch = await self._store.privacy.purge_done_cases(done_before, now, PURGE_BATCH)
            cases, events, cards = cases + batch.cases, events + batch.events, cards + list(batch.cards)
            if batch.cases < PURGE_BATCH:
                break
        total = ErasureOutcome(cases, events, tuple(cards))
        if cases:
            await self._store.privacy.record_purge(now, total)
            log.info("retention: %d case(s) done before %s deleted (%d events)", cases, done_before.date(), events)
        jobs = await self._store.privacy.purge_finished_jobs(now - timedelta(days=self._settings.outbox_retention_days))
        links = await self._store.privacy.purge_voicemail_links(now - VOICEMAIL_LINK_KEEP)
        if jobs or links:
            log.info("retention: %d finished job(s), %d old voicemail link(s) deleted", jobs, links)
        return total

    async def purge_if_leader(self) -> None:
        """The periodic pass, on the one instance holding the lease."""
        if await self._store.leases.try_acquire(RETENTION_LEASE, self._instance_id, RETENTION_INTERVAL, self._clock()):
            await self.purge()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _loop(self) -> None:
        while True:
            try:
                await self.purge_if_leader()
            except Exception:
                log.exception("retention pass failed; next try in %s", RETENTION_INTERVAL)
            await asyncio.sleep(RETENTION_INTERVAL.total_seconds())
