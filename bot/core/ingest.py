"""Mail ingestion: every notification mail in a watched mailbox becomes exactly one call event.

The same steps serve change notifications and delta catch-up: parse the mail, store the event idempotently on the
mail's id (a duplicate notification or a delta overlap adds nothing), group it into its case and enqueue the card.
Updates of mails the bot already knows are flag changes made in Outlook and go to the flag sync.

Catch-up reads the Inbox by delta query from the stored delta link; without one (first start), or when Graph has
forgotten it (410), it reads the whole Inbox, and the idempotent store makes that safe.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from bot import metrics
from bot.config import PoolLine, Settings
from bot.core import effects
from bot.core.ports import EventOutcome, JobPriority, MailParser, MailReader, Store
from bot.core.sync import flag_agrees
from bot.core.values import DeltaExpired, FlagStatus, MailMessage, ParsedMail
from bot.domain.cases import Case
from bot.domain.events import CallEvent, EventKind, MailSource, Voicemail
from bot.logging_setup import mask_number

log = logging.getLogger(__name__)

BACKLOG_SUMMARY_AFTER = 10
"""A catch-up that opens more new cases than this on a line also posts one summary card there."""


FlagObserver = Callable[[PoolLine, MailMessage], Awaitable[None]]


def to_call_event(line: PoolLine, mail: MailMessage, parsed: ParsedMail) -> CallEvent:
    voicemail = None
    if parsed.voicemail_attachment_id:
        voicemail = Voicemail(
            attachment_id=parsed.voicemail_attachment_id,
            file_name=parsed.voicemail_file_name or "voicemail",
            duration_seconds=parsed.voicemail_duration_seconds,
        )
    recognised = parsed.kind is not EventKind.UNRECOGNISED
    return CallEvent(
        source_id=CallEvent.source_id_for(mail.mailbox, mail.message_id),
        kind=parsed.kind,
        line_id=line.id,
        # An unrecognised item never names a caller: no call link, and it never joins a caller's case.
        caller=parsed.caller if recognised else None,
        caller_name=parsed.caller_name if recognised else None,
        caller_as_written=parsed.caller_as_written if recognised else None,
        called_number=parsed.pool_number if recognised and parsed.pool_number in line.numbers else None,
        received_at=parsed.call_time or mail.received_at,
        mail=MailSource(
            mailbox=mail.mailbox,
            message_id=mail.message_id,
            web_link=mail.web_link,
            subject=parsed.subject or mail.subject,
            sender=mail.sender_address,
        ),
        voicemail=voicemail,
    )


def event_effects(
    outcome: EventOutcome, event: CallEvent, mail: MailMessage, priority: JobPriority, not_before: datetime | None
) -> list[effects.Effect]:
    """What recording a mail's event causes, committed with it: the card shows the call; another call in a case
    adds a thread line; a mail joining a case whose flag it does not show is flagged like the case's other mails
    (the mail of a call the call webhook reported first, too: a callback may have closed its case meanwhile)."""
    case = outcome.case
    if not outcome.merged and not outcome.event_added:
        return []
    caused: list[effects.Effect] = [
        effects.RefreshCard(case.id) if outcome.merged else effects.RefreshCard(case.id, priority, not_before)
    ]
    if outcome.event_added and not outcome.case_created:
        message = effects.RepeatCall(event.source_id, event.received_at, case.call_count)
        caused.append(effects.ThreadReply(case.id, case.version, message, priority))
    if not outcome.case_created and not _shows_case_flag(mail, case):
        caused.append(effects.WriteFlag(mail.mailbox, mail.message_id, case.id))
    return caused


def _shows_case_flag(mail: MailMessage, case: Case) -> bool:
    try:
        return flag_agrees(case, FlagStatus(mail.flag_status))
    except ValueError:
        return False


class MailIngestor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        reader: MailReader,
        parser: MailParser,
        on_flag_change: FlagObserver,
    ) -> None:
        self._settings = settings
        self._store = store
        self._reader = reader
        self._parser = parser
        self._on_flag_change = on_flag_change
        self._watched_since: dict[str, datetime] = {}

    def close(self) -> None:
        """Stop the parser's worker process."""
        self._parser.close()

    async def on_mail_changed(self, line: PoolLine, message_id: str) -> None:
        """A change notification for one mail: fetch it and take it through the pipeline."""
        mail = await self._reader.get_message(line.mailbox, message_id)
        if mail is None:
            log.info("mail %s in %s is gone; nothing to do", message_id[-12:], line.id)
            return
        await self.process(line, mail)

    async def process(self, line: PoolLine, mail: MailMessage, *, backlog: bool = False) -> bool:
        """Take one mail through the pipeline; True when it opened a new case. ``backlog``: the mail comes from a
        catch-up: its Teams effects wait for live ones, and its card comes in call order (oldest first)."""
        priority = JobPriority.BACKLOG if backlog else JobPriority.LIVE
        known = await self._store.mails.get_mail(mail.mailbox, mail.message_id)
        if known is not None:
            await self._on_flag_change(line, mail)
            return False
        if await self._before_baseline(mail):
            log.debug("mail %s predates watching %s; history, not work", mail.message_id[-12:], line.id)
            return False
        if await self._store.privacy.is_forgotten(mail.mailbox, mail.message_id):
            log.info("mail %s in %s belonged to a deleted case; it stays deleted", mail.message_id[-12:], line.id)
            return False
        if mail.headers is None:  # a delta page without the headers: sender authentication needs them
            fetched = await self._reader.get_message(line.mailbox, mail.message_id)
            if fetched is None:
                return False
            mail = fetched
        parsed = await self._parser.parse(mail, line.numbers)
        if parsed.ignored:
            log.info("ignored mail %s in %s: %s", mail.message_id[-12:], line.id, parsed.notes[-1])
            return False
        event = to_call_event(line, mail, parsed)
        window = timedelta(seconds=self._settings.placetel_match_window_seconds)
        # Due since the call came in: the card goes before work queued after the call (in a burst of mails, the
        # cards of the first ones go out while the later ones are still being read; Teams' pace is the limit).
        not_before = min(event.received_at, datetime.now(UTC))
        outcome = await self._store.cases.record_event(
            event, window, effects=lambda outcome: event_effects(outcome, event, mail, priority, not_before)
        )
        if outcome.merged:
            log.info(
                "mail %s in %s joined the call webhook's event of case %s",
                mail.message_id[-12:],
                line.id,
                outcome.case.id[:8],
            )
            if mail.flag_status:
                await self._store.mails.set_observed_flag(mail.mailbox, mail.message_id, FlagStatus(mail.flag_status))
            return False
        if not outcome.event_added:
            return False
        metrics.EVENTS.labels(event.kind.value).inc()
        if mail.flag_status:
            await self._store.mails.set_observed_flag(mail.mailbox, mail.message_id, FlagStatus(mail.flag_status))
        log.info(
            "%s from %s on %s → case %s (%s)",
            event.kind.value,
            mask_number(event.caller),
            line.id,
            outcome.case.id[:8],
            "new" if outcome.case_created else f"call {outcome.case.call_count}",
        )
        if event.kind is EventKind.UNRECOGNISED:
            log.info("mail %s in %s was not understood; shown as an unrecognised item", mail.message_id[-12:], line.id)
        return outcome.case_created

    async def _before_baseline(self, mail: MailMessage) -> bool:
        """A mailbox's existing Inbox is history: only mail from ``INITIAL_IMPORT_HOURS`` before the bot first
        watched it becomes items (later notifications about older mail, e.g. a flag change, are ignored too)."""
        since = self._watched_since.get(mail.mailbox)
        if since is None:  # recorded once per mailbox, so one read per process is enough
            since = await self._store.subscriptions.watched_since(mail.mailbox, datetime.now(UTC))
            self._watched_since[mail.mailbox] = since
        return mail.received_at < since - timedelta(hours=self._settings.initial_import_hours)

    async def catch_up(self, line: PoolLine) -> int:
        """Run the delta query from where an interrupted pass stopped, else from the stored delta link; returns
        how many mails were looked at."""
        links = self._store.subscriptions
        resume = await links.get_delta_progress(line.mailbox)
        if resume is not None:
            try:
                return await self._delta_pass(line, resume)
            except DeltaExpired:
                log.info("the interrupted catch-up of %s can no longer resume; starting it again", line.id)
                await links.save_delta_progress(line.mailbox, None)
        start = await links.get_delta_link(line.mailbox)
        try:
            return await self._delta_pass(line, start)
        except DeltaExpired:
            if start is None:
                raise
            log.info("the delta state of %s expired; reading the whole Inbox again", line.id)
            return await self._delta_pass(line, None)

    async def _delta_pass(self, line: PoolLine, start: str | None) -> int:
        seen = created = 0
        async for page in self._reader.delta(line.mailbox, start):
            # Oldest first, within a page and (through the cards' not-before times) among the waiting cards.
            for mail in sorted(page.messages, key=lambda mail: mail.received_at):
                created += await self.process(line, mail, backlog=True)
                seen += 1
            # Progress per page: a retry after a transient error resumes after the last completed page.
            if page.delta_link:
                await self._store.subscriptions.save_delta_link(line.mailbox, page.delta_link)
            elif page.next_link:
                await self._store.subscriptions.save_delta_progress(line.mailbox, page.next_link)
        if created > BACKLOG_SUMMARY_AFTER:
            await self._store.jobs.add([effects.BacklogSummary(line.id, created, uuid.uuid4().hex)])
        return seen
