"""The ports of the use cases: what they ask of storage (the one async :class:`Store`, which SQLite and PostgreSQL
implement and pass one contract test suite with), of Graph (mail, attachments, people, subscriptions) and of the
mail parser. Adapters implement these Protocols; the use cases never import an adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from bot.config import PoolLine
from bot.core.values import (
    AudioStream,
    DeltaPage,
    FlagStatus,
    MailMessage,
    MailUpdate,
    ParsedMail,
    PeoplePage,
)
from bot.domain.callbacks import AutoDone
from bot.domain.callers import CallerEntry
from bot.domain.cases import Actor, Case, Contact
from bot.domain.events import CallEvent
from bot.domain.reminders import PlannedReminder
from bot.domain.state_machine import Refusal, Verb

if TYPE_CHECKING:
    from bot.core.effects import Effect, EffectsOf


@dataclass(frozen=True, slots=True)
class EventOutcome:
    case: Case
    event_added: bool
    """False when the event's source id was already stored (duplicate notification, delta overlap)."""
    case_created: bool
    merged: bool = False
    """The event was the second report of a call already recorded (its mail, or its call webhook) and joined it."""


@dataclass(frozen=True, slots=True)
class ContactOutcome:
    case: Case
    """The caller's active case after the contact (done when the contact closed it)."""
    added: bool
    """False when this call was already recorded for the case (a duplicate or a second event of the call)."""
    closed: bool = False


@dataclass(frozen=True, slots=True)
class TransitionOutcome:
    case: Case
    """The case after the attempt: the new state when applied, the current state when refused."""
    refusal: Refusal | None = None
    before: Case | None = None
    """The case just before an applied transition (who held it, for the thread line of a take-over)."""

    @property
    def applied(self) -> bool:
        return self.refusal is None


class CaseRepository(Protocol):
    async def record_event(
        self, event: CallEvent, match_window: timedelta = timedelta(0), *, effects: EffectsOf[EventOutcome]
    ) -> EventOutcome:
        """Store ``event`` idempotently on its source id and group it into its case, atomically, with the outbox
        rows of ``effects(outcome)`` in the same transaction (also for a duplicate: its effects may be lost).

        An event that reports again a call already recorded from the other source (mail or call webhook) within
        ``match_window`` joins that event instead (:mod:`bot.domain.matching`); a call id is recorded once.
        """

    async def record_contact(
        self,
        line_id: str,
        caller: str,
        contact: Contact,
        auto_done: AutoDone,
        now: datetime,
        claim_timeout: timedelta,
        *,
        effects: EffectsOf[ContactOutcome],
    ) -> ContactOutcome | None:
        """Add ``contact`` to the caller's open or claimed case on the line (closing it when it closes the case,
        :mod:`bot.domain.callbacks`), once per call id, atomically with ``effects(outcome)``; None when the caller
        has no such case."""

    async def get(self, case_id: str) -> Case | None: ...

    async def transition(
        self,
        case_id: str,
        verb: Verb,
        actor: Actor,
        now: datetime,
        claim_timeout: timedelta,
        *,
        effects: EffectsOf[TransitionOutcome],
        seen: Case | None = None,
    ) -> TransitionOutcome:
        """Decide with the state machine and compare-and-set on the version, retried on a lost race; an applied
        transition commits with the outbox rows of ``effects(outcome)`` (a refusal writes nothing). ``seen`` is the
        case as the caller just read it: a refusal decided on it needs no read of its own."""

    async def take_in_flag(
        self,
        mailbox: str,
        message_id: str,
        flag: FlagStatus,
        verb: Verb,
        now: datetime,
        claim_timeout: timedelta,
        *,
        effects: EffectsOf[TransitionOutcome],
    ) -> TransitionOutcome:
        """A person's Outlook flag: record it as observed and written (it supersedes the bot's earlier write) and
        apply ``verb`` for Outlook to the mail's case, with ``effects(outcome)``, in one transaction (applied or
        refused: a refused change still needs the mail's flag repaired)."""

    async def list_active(
        self, line_ids: list[str], *, claimed_by: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Case], int]:
        """Open and claimed cases of ``line_ids``, oldest first, and the total count."""

    async def find_by_message(self, mailbox: str, message_id: str) -> Case | None: ...

    async def count_by_state(self) -> dict[str, int]:
        """Number of cases per state (for /metrics)."""


@dataclass(frozen=True, slots=True)
class ChannelLink:
    line_id: str
    tenant_id: str
    team_id: str
    channel_id: str
    service_url: str
    linked_by: str
    linked_at: datetime
    group_id: str | None = None
    """The team's Microsoft 365 group id (``aadGroupId``): where Graph lists the channel's messages."""


class LinkRepository(Protocol):
    async def link_channel(self, link: ChannelLink) -> None:
        """Link ``link.line_id`` to a channel, replacing an earlier link of that line."""

    async def unlink_line(self, line_id: str) -> bool: ...

    async def link_for_line(self, line_id: str) -> ChannelLink | None: ...

    async def links_for_channel(self, channel_id: str) -> list[ChannelLink]: ...


@dataclass(frozen=True, slots=True)
class CardRef:
    case_id: str
    conversation_id: str
    """The thread's conversation id (``<channel>;messageid=<root>``)."""
    activity_id: str
    posted_version: int


class CardRepository(Protocol):
    async def save_card(self, card: CardRef) -> None:
        """Save the case's posted card (and end its post intent)."""

    async def begin_post(self, case_id: str, now: datetime) -> int:
        """Record that a POST of the case's card is under way; returns the attempt's number (1 for the first:
        a higher number means an earlier attempt's outcome is unknown)."""

    async def post_in_doubt(self, case_id: str) -> bool:
        """Whether an earlier POST of the case's card was under way and neither saved nor refused: its card may be
        in the channel."""

    async def forget_post(self, case_id: str) -> None:
        """End the post intent of a POST that Teams answered with a refusal (nothing was posted)."""

    async def get_card(self, case_id: str) -> CardRef | None: ...

    async def case_id_for_activity(self, activity_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class MailState:
    """What the bot knows of one mail's Outlook flag, for echo suppression and reconciliation."""

    mailbox: str
    message_id: str
    case_id: str
    observed_flag: FlagStatus | None
    """The flag last read from Graph."""
    written_flag: FlagStatus | None
    """The flag the bot last PATCHed or took in from Outlook (its own change must not come back as a user action)."""
    observed_read: bool | None = None
    """The read state last read from Graph."""
    written_read: bool | None = None
    """The read state the bot last PATCHed or took in from Outlook (echo suppression, as for the flag)."""


class MailRepository(Protocol):
    async def get_mail(self, mailbox: str, message_id: str) -> MailState | None: ...

    async def set_observed_flag(self, mailbox: str, message_id: str, flag: FlagStatus) -> None: ...

    async def set_written_flag(self, mailbox: str, message_id: str, flag: FlagStatus) -> None: ...

    async def set_observed_read(self, mailbox: str, message_id: str, is_read: bool) -> None: ...

    async def set_written_read(self, mailbox: str, message_id: str, is_read: bool) -> None: ...

    async def unconfirmed_writes(self, mailbox: str, limit: int = 500) -> list[MailState]:
        """Mails of ``mailbox`` whose written flag was never read back (observed differs): reconciliation's list."""


@dataclass(frozen=True, slots=True)
class Subscription:
    mailbox: str
    subscription_id: str
    expires_at: datetime


class SubscriptionRepository(Protocol):
    async def save_subscription(self, subscription: Subscription) -> None: ...

    async def get_subscription(self, mailbox: str) -> Subscription | None: ...

    async def subscription_by_id(self, subscription_id: str) -> Subscription | None: ...

    async def save_delta_link(self, mailbox: str, delta_link: str) -> None:
        """Where the next catch-up starts; the pass is complete, so its resume point is dropped in the same write."""

    async def get_delta_link(self, mailbox: str) -> str | None: ...

    async def save_delta_progress(self, mailbox: str, next_link: str | None) -> None:
        """The nextLink of the last delta page a catch-up completed (None: forget it), where a retry resumes."""

    async def get_delta_progress(self, mailbox: str) -> str | None: ...

    async def watched_since(self, mailbox: str, now: datetime) -> datetime:
        """When the bot first watched ``mailbox`` (recorded as ``now`` on the first call)."""


class CallPeerRepository(Protocol):
    """Who placed an outgoing call (the SIP user of ``OutgoingCall``), for its ``HungUp``, which may not say."""

    async def remember_peer(self, call_id: str, peer: str, now: datetime) -> None: ...

    async def peer_of(self, call_id: str) -> str | None: ...


class LeaseRepository(Protocol):
    """Named leases so that one instance of a deployment owns a mailbox's subscription or a periodic task."""

    async def try_acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool: ...

    async def release(self, name: str, holder: str) -> None: ...


class JobState(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    """Attempts started so far, including the current one."""
    dedupe_key: str | None
    created_at: datetime
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter; a job's reported Retry-After wins when it is longer.

    A transient failure (the remote side throttled, was unavailable, timed out or reset the connection) is not the
    job's fault: it is retried more often and never waits longer than ``transient_ceiling`` times the first delay
    between attempts (30 s with the default 2 s), so that a card is not lost to a bad quarter of an hour of Graph or
    Teams and appears soon after they answer again.
    """

    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(minutes=10)
    transient_attempts: int = 30
    transient_ceiling: float = 15.0

    def for_transient(self) -> RetryPolicy:
        """The policy for a transient failure."""
        ceiling = min(self.max_delay, self.base_delay * self.transient_ceiling)
        return RetryPolicy(self.transient_attempts, self.base_delay, ceiling)

    @property
    def most_attempts(self) -> int:
        """The most attempts a job gets (when its failures were transient)."""
        return max(self.max_attempts, self.transient_attempts)


class JobPriority(IntEnum):
    """Due jobs of a lower value are leased first."""

    LIVE = 0
    BACKLOG = 1
    """Work that may wait for live work: the cards of a catch-up."""


class JobQueue(Protocol):
    async def add(self, effects: Sequence[Effect]) -> None:
        """Queue effects that follow no change of state (a redraw, a refused click on a stale card), in one
        transaction; a card refresh already pending is not written again."""

    async def earlier_unfinished(self, ordering_key: str, sequence: int) -> JobState | None:
        """Whether a job of ``ordering_key`` with a lower sequence is unfinished: ``LEASED`` when one is under way,
        else ``PENDING`` when one waits; None when all are finished."""

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        dedupe_key: str | None = None,
        run_at: datetime | None = None,
        priority: JobPriority = JobPriority.LIVE,
    ) -> int | None:
        """Persist a job. With ``dedupe_key``, a job with the same key still pending is not added (returns None)."""

    async def lease(self, worker_id: str, kinds: list[str], lease_for: timedelta, limit: int = 1) -> list[Job]:
        """Take due jobs (pending, or leased by a worker whose lease expired); SKIP LOCKED on PostgreSQL."""

    async def pending(self, dedupe_key: str) -> bool:
        """Whether a job with this key waits to run (a read: it never waits for writers)."""

    async def extend(self, job: Job, worker_id: str, lease_for: timedelta) -> bool:
        """Renew the lease of a job ``worker_id`` holds to ``lease_for`` from now (the runner's heartbeat);
        False when the worker no longer holds it."""

    async def complete(self, job: Job, worker_id: str) -> None: ...

    async def defer(self, job: Job, worker_id: str, run_at: datetime) -> None:
        """Put a leased job back, not before ``run_at``, without counting the attempt (it waits for a rate limit's
        slot instead of holding a worker)."""

    async def fail(
        self, job: Job, worker_id: str, error: str, policy: RetryPolicy, retry_after: timedelta | None = None
    ) -> JobState:
        """Schedule a retry with backoff (honouring ``retry_after``) or dead-letter after ``policy.max_attempts``."""

    async def depth(self) -> dict[str, int]:
        """Count of jobs per state."""

    async def dead_letters(self, limit: int = 100) -> list[Job]: ...


@dataclass(frozen=True, slots=True)
class VoicemailGrant:
    """One voicemail link: which recording (case and event) for whom, until when."""

    case_id: str
    source_id: str
    user_id: str
    """The Entra object id of the member who clicked "Anhören"."""
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LinkRedemption:
    grant: VoicemailGrant | None = None
    refusal: str | None = None
    """"unknown link", "link already used" or "link expired" when ``grant`` is None."""


@dataclass(frozen=True, slots=True)
class ErasedCard:
    """A Teams card whose case was deleted; a ``teams.erased`` job replaces it."""

    line_id: str
    conversation_id: str
    activity_id: str


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    cases: int
    events: int
    cards: tuple[ErasedCard, ...]


class PrivacyRepository(Protocol):
    async def issue_voicemail_link(self, grant: VoicemailGrant, token_hash: str, now: datetime) -> None: ...

    async def redeem_voicemail_link(self, token_hash: str, now: datetime) -> LinkRedemption:
        """Use the link once: the first redemption before it expires gets the grant, every later one a refusal."""

    async def purge_done_cases(self, done_before: datetime, now: datetime, limit: int = 200) -> ErasureOutcome:
        """Delete up to ``limit`` cases done before ``done_before`` with their events, mails, card and links."""

    async def erase_caller(self, number: str, now: datetime, actor: str) -> ErasureOutcome:
        """Delete every case and event of the E.164 ``number``; audited (actor and counts, never the number)."""

    async def record_purge(self, now: datetime, outcome: ErasureOutcome) -> None: ...

    async def is_forgotten(self, mailbox: str, message_id: str) -> bool:
        """Whether the mail's case was deleted (ingestion must not bring it back)."""

    async def purge_finished_jobs(self, finished_before: datetime) -> int: ...

    async def purge_voicemail_links(self, expired_before: datetime) -> int: ...


class Store(Protocol):
    """All repositories over one database; opened once per process."""

    cases: CaseRepository
    links: LinkRepository
    cards: CardRepository
    mails: MailRepository
    subscriptions: SubscriptionRepository
    leases: LeaseRepository
    jobs: JobQueue
    privacy: PrivacyRepository
    calls: CallPeerRepository
    reminders: ReminderRepository

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise when the database cannot be reached (readiness)."""


@dataclass(frozen=True, slots=True)
class QueuedEffect:
    """An outbox job written in the same transaction as the reminder it belongs to."""

    kind: str
    payload: dict[str, Any]
    dedupe_key: str


@dataclass(frozen=True, slots=True)
class ScheduledReminder:
    case_id: str
    line_id: str
    episode: str
    step: int
    kind: str
    due_at: datetime | None
    case_version: int


class ReminderRepository(Protocol):
    async def cases_to_plan(self, line_ids: Sequence[str], limit: int = 200) -> list[Case]:
        """Open and claimed cases of ``line_ids`` with no plan yet, or changed since they were planned."""

    async def steps_sent(self, episodes: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Reminders sent so far per (case id, episode key)."""

    async def save_plans(self, plans: Sequence[tuple[Case, str, PlannedReminder | None]]) -> None:
        """Record each case's next step (or that it has none) for the case's current version, in one transaction."""

    async def forget_inactive(self, line_ids: Sequence[str]) -> int:
        """Drop plans of done cases and of lines without reminders."""

    async def due(self, now: datetime, line_ids: Sequence[str], limit: int = 100) -> list[ScheduledReminder]:
        """Planned reminders of ``line_ids`` due at ``now``, the longest overdue first."""

    async def fire(
        self,
        reminder: ScheduledReminder,
        now: datetime,
        effects: Sequence[QueuedEffect],
        following: PlannedReminder | None,
    ) -> bool:
        """Record ``reminder`` as sent and queue ``effects``, atomically; False when it was stale or sent already."""

    async def open_cases_between(
        self, line_id: str, since: datetime | None, until: datetime, limit: int
    ) -> tuple[list[Case], int]:
        """Unclaimed open cases of the line that came in within ``[since, until)``, oldest first, and their count."""

    async def record_overview(
        self, line_id: str, opening: datetime, case_count: int, now: datetime, effects: Sequence[QueuedEffect]
    ) -> bool:
        """Record the line's overview for ``opening`` and queue ``effects``, atomically; False if sent already."""


@dataclass(frozen=True, slots=True)
class MailToRepair:
    mailbox: str
    message_id: str
    case_id: str


class MailReader(Protocol):
    """What ingestion needs from a mailbox (implemented by the Graph adapter)."""

    async def get_message(self, mailbox: str, message_id: str) -> MailMessage | None:
        """The mail with the fields the parser needs and its attachment metadata; None when it is gone."""

    def delta(self, mailbox: str, delta_link: str | None) -> AsyncIterator[DeltaPage]:
        """Pages of the Inbox changed since ``delta_link`` (all of it when None); raises :class:`DeltaExpired`."""


class AttachmentSource(Protocol):
    """What the route needs from Graph (:class:`bot.graph.mailbox.GraphMailboxes`)."""

    def attachment_stream(
        self, mailbox: str, message_id: str, attachment_id: str, chunk_size: int
    ) -> AbstractAsyncContextManager[AudioStream | None]:
        """The attachment's bytes in chunks; None when it is not a file attachment."""


class PeopleReader(Protocol):
    """What the cache needs from Graph (:class:`bot.graph.people.GraphPeople`)."""

    def contacts_delta(self, mailbox: str, delta_link: str | None) -> AsyncIterator[PeoplePage]: ...

    def users_delta(self, delta_link: str | None) -> AsyncIterator[PeoplePage]: ...


class MailParser(Protocol):
    """Reads a PBX mail (:class:`bot.placetel.runner.ParserRunner`); never raises."""

    async def parse(self, mail: MailMessage, pool_numbers: Sequence[str]) -> ParsedMail: ...

    def close(self) -> None: ...


class Subscriptions(Protocol):
    """Graph change subscriptions of the pool mailboxes (:class:`bot.graph.subscriptions.SubscriptionManager`)."""

    async def ensure(self, line: PoolLine, now: datetime | None = None) -> Subscription | None: ...

    async def reauthorize(self, line: PoolLine, subscription_id: str, now: datetime | None = None) -> None: ...

    async def recreate(self, line: PoolLine, now: datetime | None = None) -> Subscription: ...


class RepairQueries(Protocol):
    """Finds what the outbox missed (:class:`bot.storage.repair_store.SqlRepairQueries`)."""

    async def cases_without_card(self, since: datetime, limit: int) -> list[str]: ...

    async def cases_with_stale_card(self, since: datetime, limit: int) -> list[str]: ...

    async def mails_with_wrong_flag(self, since: datetime, limit: int) -> list[MailToRepair]: ...


class CallerStore(Protocol):
    """The caller cache per source (:class:`bot.storage.caller_store.CallerCache`)."""

    async def delta_link(self, source: str) -> str | None: ...

    async def apply(
        self,
        source: str,
        entry_ids: Sequence[str],
        entries: Sequence[CallerEntry],
        delta_link: str | None,
        now: datetime,
        *,
        replace_all: bool = False,
    ) -> None: ...

    async def forget(self, source: str) -> None: ...

    async def entries(self) -> list[CallerEntry]: ...


class MailboxClient(Protocol):
    """What the flag sync needs from a mailbox (implemented by :class:`bot.graph.mailbox.GraphMailboxes`)."""

    async def get_message(self, mailbox: str, message_id: str) -> MailMessage | None: ...

    async def update_message(self, mailbox: str, message_id: str, update: MailUpdate) -> None: ...


TeamOwnerCheck = Callable[[str, str], Awaitable[bool]]
"""Whether a user (AAD object id) owns a team's group (its ``aadGroupId``); the Graph directory supplies it."""
