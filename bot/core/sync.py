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
- Read state (``OUTLOOK_READ_SYNC``, on by default): the team reads the shared Inbox's unread count as "calls
  nobody has touched", so claimed and done cases' mails are marked read and released or reopened ones unread again,
  in the same PATCH as the flag. Reading is not handling: read/unread set in Outlook never moves a case. A
  person's read state is left alone unless ``OUTLOOK_READ_REPAIR`` is on; the bot's own writes that never arrived
  are always repaired. Unrecognised items nobody has taken on keep the read state Outlook gives them.
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
from typing import Any

from bot.config import PoolLine, Settings
from bot.core import effects
from bot.core.jobs import PermanentFailure
from bot.core.ports import MailboxClient, MailState, Store, TransitionOutcome
from bot.core.values import FlagStatus, MailMessage, MailUpdate
from bot.domain.cases import OUTLOOK_ACTOR, Case, CaseState
from bot.domain.events import EventKind
from bot.domain.state_machine import Verb

log = logging.getLogger(__name__)

CATEGORY_PREFIX = "Rufpool: "


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


def desired_read(case: Case) -> bool | None:
    """Read once someone has taken the case on, unread while it waits; None: leave it (untouched unrecognised item)."""
    if case.state is not CaseState.OPEN:
        return True
    first = case.first_event
    if first is not None and first.kind is EventKind.UNRECOGNISED:
        return None
    return False


def _known_read_states(state: MailState) -> set[bool]:
    """The read states the bot last read or wrote for a mail (empty before its first sighting)."""
    return {value for value in (state.observed_read, state.written_read) if value is not None}


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


def outlook_change_effects(
    outcome: TransitionOutcome, mail: MailState, flag: FlagStatus, verb: Verb, at: datetime
) -> list[effects.Effect]:
    """A person's Outlook flag that moved the case causes what any transition does; one that changes nothing
    only has the mail written again where it disagrees with its case."""
    if outcome.applied:
        return effects.transition_effects(outcome, verb, OUTLOOK_ACTOR, at)
    if flag_agrees(outcome.case, flag):
        return []
    return [effects.WriteFlag(mail.mailbox, mail.message_id, outcome.case.id)]


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

    async def observe(self, line: PoolLine, mail: MailMessage) -> None:
        """An ``updated`` notification (or a delta pass) showed a mail the bot knows: sync Outlook → Teams."""
        flag = _flag_of(mail)
        if flag is None:
            return
        async with self._mail_lock(mail.mailbox, mail.message_id):
            state = await self._store.mails.get_mail(mail.mailbox, mail.message_id)
            if state is None:
                return
            if flag not in (state.observed_flag, state.written_flag) or not self._read_is_known(state, mail.is_read):
                # The read may predate a write of ours that finished meanwhile; none is under way now.
                fresh = await self._mailboxes.get_message(mail.mailbox, mail.message_id)
                if fresh is None:
                    return
                mail = fresh
                flag = _flag_of(fresh)
                if flag is None:
                    return
            await self._observe_read(state, mail.is_read)
            if flag in (state.observed_flag, state.written_flag):
                await self._store.mails.set_observed_flag(mail.mailbox, mail.message_id, flag)
                await self._repair(state, flag)
                return
            await self._outlook_change(line, state, flag)

    def _read_is_known(self, state: MailState, is_read: bool) -> bool:
        """Whether a read state is one the bot has seen or written already (so not news worth reading again)."""
        known = _known_read_states(state)
        return not self._settings.outlook_read_sync or not known or is_read in known

    async def _observe_read(self, state: MailState, is_read: bool) -> None:
        """Outlook's read state never moves a case; this only tells the bot's echo from drift and people's changes."""
        if not self._settings.outlook_read_sync:
            return
        if is_read == state.observed_read and state.written_read in (None, is_read):
            return  # nothing new, and no write of ours is unconfirmed
        if is_read != state.observed_read:
            await self._store.mails.set_observed_read(state.mailbox, state.message_id, is_read)
        case = await self._store.cases.get(state.case_id)
        wanted = desired_read(case) if case is not None else None
        if wanted is None or is_read == wanted:
            return
        known = _known_read_states(state)
        if known and is_read not in known:
            # A person marked it read or unread in Outlook: that supersedes the bot's earlier write.
            await self._store.mails.set_written_read(state.mailbox, state.message_id, is_read)
            if not self._settings.outlook_read_repair:
                return
        elif state.written_read != wanted and not self._settings.outlook_read_repair:
            return  # the bot never asked for this state (first sighting, a person's earlier choice, a pending write)
        log.info("mail %s of case %s read=%s; writing it again", state.message_id[-12:], state.case_id[:8], is_read)
        await self._store.jobs.add([effects.WriteFlag(state.mailbox, state.message_id, state.case_id)])

    async def _repair(self, mail: MailState, flag: FlagStatus) -> None:
        """Not a person's change: write the mail again only when it disagrees with its case (drift)."""
        case = await self._store.cases.get(mail.case_id)
        if case is not None and not flag_agrees(case, flag):
            log.info("mail %s of case %s shows %s; writing it again", mail.message_id[-12:], case.id[:8], flag)
            await self._store.jobs.add([effects.WriteFlag(mail.mailbox, mail.message_id, case.id)])

    async def _outlook_change(self, line: PoolLine, mail: MailState, flag: FlagStatus) -> None:
        """A person's flag: taken in, and the case moved, with the card, the thread line and the other mails' flags
        (or this mail's repair when nothing moves) in one transaction."""
        now = datetime.now(UTC)
        verb = OUTLOOK_VERB[flag]
        outcome = await self._store.cases.take_in_flag(
            mail.mailbox,
            mail.message_id,
            flag,
            verb,
            now,
            self._claim_timeout,
            effects=lambda outcome: outlook_change_effects(outcome, mail, flag, verb, now),
        )
        if outcome.refusal is not None:
            log.info("Outlook flag %s on case %s changes nothing (%s)", flag, mail.case_id[:8], outcome.refusal.code)
        else:
            log.info(
                "Outlook flag %s on %s moved case %s to %s", flag, line.id, outcome.case.id[:8], outcome.case.state
            )

    async def reconcile(self, line: PoolLine) -> int:
        """Read again the mails whose last write was never confirmed and repair them; returns how many were read.

        Runs after the delta pass, which has already taken in the flags people changed while notifications were
        lost; what is left is the bot's own writes that never arrived (a dead-lettered PATCH).
        """
        checked = 0
        for mail in await self._store.mails.unconfirmed_writes(line.mailbox):
            case = await self._store.cases.get(mail.case_id)
            if case is None or (
                mail.observed_flag is not None
                and flag_agrees(case, mail.observed_flag)
                and mail.observed_read == mail.written_read
            ):
                continue
            current = await self._mailboxes.get_message(mail.mailbox, mail.message_id)
            if current is not None:
                await self.observe(line, current)
                checked += 1
        return checked

    async def handle_write_flag(self, payload: dict[str, Any]) -> None:
        """The outbox job: PATCH one mail's flag (and read state, categories) to what its case says now."""
        mailbox, message_id = str(payload["mailbox"]), str(payload["message_id"])
        async with self._mail_lock(mailbox, message_id):
            case = await self._store.cases.get(str(payload["case_id"]))
            if case is None:
                raise PermanentFailure(f"case {payload['case_id']} does not exist")
            update = MailUpdate(
                flag=desired_flag(case),
                flag_at=case.done_at or datetime.now(UTC),
                is_read=desired_read(case) if self._settings.outlook_read_sync else None,
                # Categories are shared by everyone using the mailbox: only the bot's own (prefixed) ones change.
                own_categories=tuple(own_categories(case)) if self._settings.outlook_categories_enabled else None,
                category_prefix=CATEGORY_PREFIX,
            )
            # Record the intent first: the notification of our own PATCH may arrive before the PATCH returns.
            try:
                await self._store.mails.set_written_flag(mailbox, message_id, update.flag)
                if update.is_read is not None:
                    await self._store.mails.set_written_read(mailbox, message_id, update.is_read)
            except LookupError as unknown:
                raise PermanentFailure(str(unknown)) from unknown
            await self._mailboxes.update_message(mailbox, message_id, update)
            await self._store.mails.set_observed_flag(mailbox, message_id, update.flag)
            if update.is_read is not None:
                await self._store.mails.set_observed_read(mailbox, message_id, update.is_read)
