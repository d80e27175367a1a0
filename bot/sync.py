"""Two-way sync between cases and the Outlook flags of their mails.

Rules (the README has them as a table):
- The case in Rufpool's store is the source of truth. Every applied transition, from Teams or from Outlook, is
  followed by writing the case's flag to every mail of the case: claimed → flagged, done → complete (with
  completedDateTime), open → notFlagged, open again after done (reopen) → flagged.
- A flag read from Graph counts as a person's change only when it differs both from the flag last observed and
  from the flag the bot last wrote; the bot's own PATCH coming back as an ``updated`` notification is an echo.
- Outlook changes: complete → done ("in Outlook erledigt", actor unknown); cleared → open; flagged while done →
  reopened; flagged while open or claimed → no change (Outlook does not tell us who, and a flag alone is not a
  claim).
- Conflicts: transitions are compare-and-set in the order Rufpool processes them, so the later one wins, and the
  rewrite after it brings every mail to the winning state. Both sides end the same.
- Reconciliation: the periodic delta pass re-reads every mail; a mail whose flag is unchanged since last observed
  but differs from its case gets its flag written again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot import effects
from bot.config import PoolLine, Settings
from bot.domain.cases import OUTLOOK_ACTOR, Case, CaseState
from bot.domain.state_machine import Verb
from bot.jobs import PermanentFailure
from bot.placetel.parser import MailMessage
from bot.storage.interface import FlagStatus, Store

log = logging.getLogger(__name__)

CATEGORY_PREFIX = "Rufpool: "


class FlagWriter(Protocol):
    async def set_flag(self, mailbox: str, message_id: str, flag: FlagStatus, at: datetime) -> None: ...

    async def set_own_categories(self, mailbox: str, message_id: str, prefix: str, ours: list[str]) -> None: ...


def desired_flag(case: Case) -> FlagStatus:
    match case.state:
        case CaseState.CLAIMED:
            return FlagStatus.FLAGGED
        case CaseState.DONE:
            return FlagStatus.COMPLETE
        case CaseState.OPEN:
            return FlagStatus.FLAGGED if case.reopened else FlagStatus.NOT_FLAGGED


def flag_agrees(case: Case, flag: FlagStatus) -> bool:
    """Whether a mail's flag is consistent with its case (an open case may show flagged after a reopen)."""
    if case.state is CaseState.OPEN:
        return flag in (FlagStatus.NOT_FLAGGED, FlagStatus.FLAGGED)
    return flag == desired_flag(case)


OUTLOOK_VERB = {
    FlagStatus.COMPLETE: Verb.OUTLOOK_COMPLETE,
    FlagStatus.NOT_FLAGGED: Verb.OUTLOOK_CLEAR,
    FlagStatus.FLAGGED: Verb.OUTLOOK_FLAG,
}


class FlagSync:
    def __init__(self, settings: Settings, store: Store, writer: FlagWriter) -> None:
        self._settings = settings
        self._store = store
        self._writer = writer

    @property
    def _claim_timeout(self) -> timedelta:
        return timedelta(minutes=self._settings.claim_timeout_minutes)

    async def case_changed(self, case: Case) -> None:
        """After an applied transition: bring every mail of the case to the case's flag (through the outbox)."""
        for mail in await self._store.mails.mails_of_case(case.id):
            await effects.write_flag(self._store.jobs, mail.mailbox, mail.message_id, case.id)

    async def observe(self, line: PoolLine, mail: MailMessage) -> None:
        """An ``updated`` notification (or a delta pass) showed a mail the bot knows: sync Outlook → Teams."""
        state = await self._store.mails.get_mail(mail.mailbox, mail.message_id)
        if state is None:
            return
        try:
            flag = FlagStatus(mail.flag_status)
        except ValueError:
            log.warning("mail %s has an unknown flag status %r", mail.message_id[-12:], mail.flag_status)
            return
        if flag in (state.observed_flag, state.written_flag):
            await self._store.mails.set_observed_flag(mail.mailbox, mail.message_id, flag)
            case = await self._store.cases.get(state.case_id)
            if case is not None and not flag_agrees(case, flag):
                await effects.write_flag(self._store.jobs, mail.mailbox, mail.message_id, case.id)
            return
        await self._store.mails.set_observed_flag(mail.mailbox, mail.message_id, flag)
        outcome = await self._store.cases.transition(
            state.case_id, OUTLOOK_VERB[flag], OUTLOOK_ACTOR, datetime.now(UTC), self._claim_timeout
        )
        if not outcome.applied:
            log.info("Outlook flag %s on case %s changes nothing (%s)", flag, state.case_id[:8], outcome.refusal)
            if not flag_agrees(outcome.case, flag):
                await self.case_changed(outcome.case)
            return
        log.info("Outlook flag %s moved case %s to %s", flag, state.case_id[:8], outcome.case.state)
        await effects.refresh_card(self._store.jobs, outcome.case.id)
        await effects.reply_in_thread(
            self._store.jobs,
            outcome.case.id,
            outcome.case.version,
            {"key": f"outlook_{outcome.case.state.value}", "at": datetime.now(UTC).isoformat()},
        )
        await self.case_changed(outcome.case)

    async def handle_write_flag(self, payload: dict[str, Any]) -> None:
        """The outbox job: PATCH one mail's flag to what its case says now."""
        mailbox, message_id = str(payload["mailbox"]), str(payload["message_id"])
        case = await self._store.cases.get(str(payload["case_id"]))
        if case is None:
            raise PermanentFailure(f"case {payload['case_id']} does not exist")
        flag = desired_flag(case)
        # Record the intent first: the notification of our own PATCH may arrive before the PATCH returns.
        await self._store.mails.set_written_flag(mailbox, message_id, flag)
        await self._writer.set_flag(mailbox, message_id, flag, case.done_at or datetime.now(UTC))
        await self._store.mails.set_observed_flag(mailbox, message_id, flag)
        if self._settings.outlook_categories_enabled:
            await self._write_category(mailbox, message_id, case)

    async def _write_category(self, mailbox: str, message_id: str, case: Case) -> None:
        """Optional (off by default): categories are shared by everyone using the mailbox, so only ours change."""
        ours = []
        if case.state is CaseState.CLAIMED and case.claimed_by:
            ours = [f"{CATEGORY_PREFIX}In Bearbeitung – {case.claimed_by.name}"]
        elif case.state is CaseState.DONE and case.done_by:
            ours = [f"{CATEGORY_PREFIX}Erledigt – {case.done_by.name}"]
        await self._writer.set_own_categories(mailbox, message_id, CATEGORY_PREFIX, ours)
