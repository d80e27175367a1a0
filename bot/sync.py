"""Two-way sync between cases and the Outlook flags of their mails (``docs/sync.md`` has the rules as a table).

Rules:
- The case in Rufpool's store is the source of truth. Every applied transition, from Teams or from Outlook, is
  followed by writing the case's flag to every mail of the case, through the outbox: claimed → flagged, done →
  complete (with completedDateTime), open → notFlagged, open again after done (reopen) → flagged. A mail that
  joins a claimed case is flagged like the others.
- Echo suppression: a flag read from Graph counts as a person's change only when it differs both from the flag
  last observed and from the flag the bot last wrote (or took in from Outlook). The bot records what it writes
  *before* the PATCH (its echo may arrive before the PATCH returns), and reads and writes of one mail are
  serialised, so a read that started before one of the bot's writes finished is read again before it is believed.
- Outlook changes: complete → done ("in Outlook erledigt"; Graph does not say who, so the actor is unknown);
  cleared → open; flagged while done → reopened; flagged while open or claimed → no change (a flag alone is not a
  claim: nobody would be named as holder); the mail keeps its flag, which an open case allows.
- Conflicts: transitions are compare-and-set in the order Rufpool processes them, so the later one wins and the
  rewrite after it brings every mail to the winning state. An Outlook change that Graph overwrote with the bot's
  PATCH before Rufpool read it is never seen (Rufpool reads the flag when it processes a notification): then the
  Teams action wins. Either way both sides end in the same state.
- Reconciliation: the periodic delta pass sees every mail changed since the last pass (flags changed while
  notifications were lost) and feeds them through :meth:`FlagSync.observe`; then :meth:`FlagSync.reconcile` reads
  again every mail whose last write was never confirmed (a dead-lettered PATCH) and writes it again where it
  disagrees with its case.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot import effects
from bot.config import PoolLine, Settings
from bot.domain.cases import OUTLOOK_ACTOR, Case, CaseState
from bot.domain.state_machine import Verb
from bot.jobs import PermanentFailure
from bot.placetel.parser import MailMessage
from bot.storage.interface import FlagStatus, MailState, Store

log = logging.getLogger(__name__)

CATEGORY_PREFIX = "Rufpool: "


class MailboxClient(Protocol):
    """What the flag sync needs from a mailbox (implemented by :class:`bot.graph.mailbox.GraphMailboxes`)."""

    async def get_message(self, mailbox: str, message_id: str) -> MailMessage | None: ...

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


def own_categories(case: Case) -> list[str]:
    """The categories the bot puts on a case's mails when categories are switched on."""
    if case.state is CaseState.CLAIMED and case.claimed_by:
        return [f"{CATEGORY_PREFIX}In Bearbeitung – {case.claimed_by.name}"]
    if case.state is CaseState.DONE and case.done_by:
        return [f"{CATEGORY_PREFIX}Erledigt – {case.done_by.name}"]
    return []


OUTLOOK_VERB = {
    FlagStatus.COMPLETE: Verb.OUTLOOK_COMPLETE,
    FlagStatus.NOT_FLAGGED: Verb.OUTLOOK_CLEAR,
    FlagStatus.FLAGGED: Verb.OUTLOOK_FLAG,
}


def _flag_of(mail: MailMessage) -> FlagStatus | None:
    try:
        return FlagStatus(mail.flag_status)
    except ValueError:
        log.warning("mail %s has an unknown flag status %r", mail.message_id[-12:], mail.flag_status)
        return None


class FlagSync:
    def __init__(self, settings: Settings, store: Store, mailboxes: MailboxClient) -> None:
        self._settings = settings
        self._store = store
        self._mailboxes = mailboxes
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()

    @property
    def _claim_timeout(self) -> timedelta:
        return timedelta(minutes=self._settings.claim_timeout_minutes)

    def _mail_lock(self, mailbox: str, message_id: str) -> asyncio.Lock:
        """One lock per mail: a read is never judged while one of the bot's writes to that mail is under way."""
        key = (mailbox.lower(), message_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def case_changed(self, case: Case) -> None:
        """After an applied transition: bring every mail of the case to the case's flag (through the outbox)."""
        for mail in await self._store.mails.mails_of_case(case.id):
            await effects.write_flag(self._store.jobs, mail.mailbox, mail.message_id, case.id)

    async def observe(self, line: PoolLine, mail: MailMessage) -> None:
        """An ``updated`` notification (or a delta pass) showed a mail the bot knows: sync Outlook → Teams."""
        flag = _flag_of(mail)
        if flag is None:
            return
        async with self._mail_lock(mail.mailbox, mail.message_id):
            state = await self._store.mails.get_mail(mail.mailbox, mail.message_id)
            if state is None:
                return
            if flag not in (state.observed_flag, state.written_flag):
                # The read may predate a write of ours that finished meanwhile; none is under way now.
                fresh = await self._mailboxes.get_message(mail.mailbox, mail.message_id)
                if fresh is None:
                    return
                flag = _flag_of(fresh)
                if flag is None:
                    return
            await self._store.mails.set_observed_flag(mail.mailbox, mail.message_id, flag)
            if flag in (state.observed_flag, state.written_flag):
                await self._repair(state, flag)
                return
            # The person's flag supersedes the bot's earlier write: going back to that value later is a change too.
            await self._store.mails.set_written_flag(mail.mailbox, mail.message_id, flag)
            await self._outlook_change(line, state, flag)

    async def _repair(self, mail: MailState, flag: FlagStatus) -> None:
        """Not a person's change: write the mail again only when it disagrees with its case (drift)."""
        case = await self._store.cases.get(mail.case_id)
        if case is not None and not flag_agrees(case, flag):
            log.info("mail %s of case %s shows %s; writing it again", mail.message_id[-12:], case.id[:8], flag)
            await effects.write_flag(self._store.jobs, mail.mailbox, mail.message_id, case.id)

    async def _outlook_change(self, line: PoolLine, mail: MailState, flag: FlagStatus) -> None:
        now = datetime.now(UTC)
        before = await self._store.cases.get(mail.case_id)
        before_claimer = before.claimed_by if before is not None and before.state is CaseState.CLAIMED else None
        outcome = await self._store.cases.transition(
            mail.case_id, OUTLOOK_VERB[flag], OUTLOOK_ACTOR, now, self._claim_timeout
        )
        if not outcome.applied:
            reason = outcome.refusal.code if outcome.refusal else None
            log.info("Outlook flag %s on case %s changes nothing (%s)", flag, mail.case_id[:8], reason)
            await self._repair(mail, flag)
            return
        case = outcome.case
        log.info("Outlook flag %s on %s moved case %s to %s", flag, line.id, case.id[:8], case.state)
        await effects.refresh_card(self._store.jobs, case.id)
        released = before_claimer if outcome.case.state is CaseState.OPEN else None
        await effects.reply_in_thread(
            self._store.jobs,
            case.id,
            case.version,
            {
                "key": "state_change",
                "verb": OUTLOOK_VERB[flag].value,
                "actor": {"id": OUTLOOK_ACTOR.id, "name": OUTLOOK_ACTOR.name},
                "previous_holder": {"id": released.id, "name": released.name} if released else None,
                "at": now.isoformat(),
            },
        )
        await self.case_changed(case)

    async def reconcile(self, line: PoolLine) -> int:
        """Read again the mails whose last write was never confirmed and repair them; returns how many were read.

        Runs after the delta pass, which has already taken in the flags people changed while notifications were
        lost; what is left is the bot's own writes that never arrived (a dead-lettered PATCH).
        """
        checked = 0
        for mail in await self._store.mails.unconfirmed_writes(line.mailbox):
            case = await self._store.cases.get(mail.case_id)
            if case is None or (mail.observed_flag is not None and flag_agrees(case, mail.observed_flag)):
                continue
            current = await self._mailboxes.get_message(mail.mailbox, mail.message_id)
            if current is not None:
                await self.observe(line, current)
                checked += 1
        return checked

    async def handle_write_flag(self, payload: dict[str, Any]) -> None:
        """The outbox job: PATCH one mail's flag to what its case says now."""
        mailbox, message_id = str(payload["mailbox"]), str(payload["message_id"])
        async with self._mail_lock(mailbox, message_id):
            case = await self._store.cases.get(str(payload["case_id"]))
            if case is None:
                raise PermanentFailure(f"case {payload['case_id']} does not exist")
            flag = desired_flag(case)
            # Record the intent first: the notification of our own PATCH may arrive before the PATCH returns.
            try:
                await self._store.mails.set_written_flag(mailbox, message_id, flag)
            except LookupError as unknown:
                raise PermanentFailure(str(unknown)) from unknown
            await self._mailboxes.set_flag(mailbox, message_id, flag, case.done_at or datetime.now(UTC))
            await self._store.mails.set_observed_flag(mailbox, message_id, flag)
            if self._settings.outlook_categories_enabled:
                # Categories are shared by everyone using the mailbox: only the bot's own (prefixed) ones change.
                await self._mailboxes.set_own_categories(mailbox, message_id, CATEGORY_PREFIX, own_categories(case))
