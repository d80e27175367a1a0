"""Effects on Teams and Graph as typed values, and how each becomes an outbox row.

A change of state and the effects it causes are committed together: the store calls that change a case take the
effects (or a function of their outcome that yields them) and insert their outbox rows in the change's own
transaction (:func:`bot.storage.sql_store.insert_effects`). Effects that follow no change of state (a refused
click on a stale card, a redraw after the caller directory learnt a name, a repair) go through
:meth:`bot.core.ports.JobQueue.add`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from bot.core.ports import JobPriority, TransitionOutcome
from bot.domain.cases import Actor, CaseState
from bot.domain.state_machine import OUTLOOK_VERBS, Verb

POST_CARD = "teams.card"
THREAD_REPLY = "teams.reply"
SET_FLAG = "graph.flag"
RESYNC_MAILBOX = "graph.resync"
BACKLOG_SUMMARY = "teams.backlog_summary"
ERASED_CARD = "teams.erased"
"""Replace the card of a deleted case (retention, erasure); enqueued by the store in the deleting transaction."""


# Thread lines ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepeatCall:
    """Another call joined the case (``source_id`` names the event: two calls may land in the same second)."""

    source_id: str
    at: datetime
    count: int


@dataclass(frozen=True, slots=True)
class StateChange:
    verb: Verb
    actor: Actor
    at: datetime
    previous_holder: Actor | None = None
    """Who held the case before a take-over or an Outlook release."""


@dataclass(frozen=True, slots=True)
class ContactLine:
    """A callback or the caller reached again (the contact is found on the case by its call id)."""

    call_id: str


ReplyMessage = RepeatCall | StateChange | ContactLine


def _person(actor: Actor | None) -> dict[str, str] | None:
    return {"id": actor.id, "name": actor.name} if actor is not None else None


def message_payload(message: ReplyMessage) -> dict[str, Any]:
    """The JSON form the ``teams.reply`` job reads back (:meth:`bot.teams.posting.CardPoster.handle_reply`)."""
    match message:
        case RepeatCall(source_id, at, count):
            return {"key": "repeat_call", "source_id": source_id, "at": at.isoformat(), "count": count}
        case StateChange(verb, actor, at, previous_holder):
            return {
                "key": "state_change",
                "verb": verb.value,
                "actor": _person(actor),
                "previous_holder": _person(previous_holder),
                "at": at.isoformat(),
            }
        case ContactLine(call_id):
            return {"key": "contact", "call_id": call_id}


# Effects ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshCard:
    """Post the case's card, or update it to the case's current state; pending refreshes coalesce (one job per
    case waits at a time: it has not started, so it will show every change committed before it runs).

    The cards of a catch-up are ``BACKLOG``: a live call's card goes first. A new call's card has the call's time as
    ``not_before``, which puts the cards in call order (oldest first) among the due jobs of their priority. ``redraw``
    updates a card already at the case's version (what it shows besides the case changed: the caller's name).
    """

    case_id: str
    priority: JobPriority = JobPriority.LIVE
    not_before: datetime | None = None
    redraw: bool = False


@dataclass(frozen=True, slots=True)
class RepostCard:
    """Post the case's card again as a new channel message (the demo's Teams client forgets what it showed)."""

    case_id: str


@dataclass(frozen=True, slots=True)
class ThreadReply:
    """One line in the case's thread, for the case's ``version`` that caused it. Lines of one case are posted in
    version order (the job waits while an earlier line of its case is unfinished)."""

    case_id: str
    version: int
    message: ReplyMessage
    priority: JobPriority = JobPriority.LIVE


@dataclass(frozen=True, slots=True)
class WriteFlag:
    """Bring the mail's Outlook flag in line with its case; the job reads the case when it runs, so pending writes
    of one mail coalesce into one PATCH of the latest state."""

    mailbox: str
    message_id: str
    case_id: str


@dataclass(frozen=True, slots=True)
class WriteCaseFlags:
    """:class:`WriteFlag` for every mail of the case (the store expands it in the transaction, so a mail that
    joined the case in the same transaction is included)."""

    case_id: str


@dataclass(frozen=True, slots=True)
class BacklogSummary:
    """One card in the line's channel saying how many calls a catch-up brought (live priority: before them)."""

    line_id: str
    count: int
    run_id: str


Effect = RefreshCard | RepostCard | ThreadReply | WriteFlag | WriteCaseFlags | BacklogSummary

OutcomeT = TypeVar("OutcomeT")
EffectsOf = Callable[[OutcomeT], Sequence[Effect]]
"""The effects of a store call's outcome, computed inside its transaction from what was committed."""


def transition_effects(outcome: TransitionOutcome, verb: Verb, actor: Actor, at: datetime) -> list[Effect]:
    """What an applied transition causes: everyone's card, one thread line (naming the holder a take-over or an
    Outlook release displaced), and every mail's flag."""
    case, before = outcome.case, outcome.before
    displaced = before.claimed_by if before is not None and before.state is CaseState.CLAIMED else None
    by_outlook = verb in OUTLOOK_VERBS
    previous = displaced if verb is Verb.TAKE_OVER or (by_outlook and case.state is CaseState.OPEN) else None
    return [
        RefreshCard(case.id),
        ThreadReply(case.id, case.version, StateChange(verb, actor, at, previous)),
        WriteCaseFlags(case.id),
    ]


def no_effects(_outcome: object) -> Sequence[Effect]:
    """For a change that causes nothing outside the store (tests of the store, imports)."""
    return ()


@dataclass(frozen=True, slots=True)
class OutboxRow:
    kind: str
    payload: dict[str, Any]
    dedupe_key: str
    priority: JobPriority = JobPriority.LIVE
    run_at: datetime | None = None
    ordering: tuple[str, int] | None = None
    """(key, sequence): jobs of one key run in sequence order (the thread lines of a case)."""


def _backlog(priority: JobPriority) -> dict[str, Any]:
    # Paced as backlog: a live card keeps its reserve.
    return {"backlog": True} if priority is JobPriority.BACKLOG else {}


def reply_order_key(case_id: str) -> str:
    return f"reply:{case_id}"


def outbox_row(effect: Effect) -> OutboxRow:
    """The outbox row of one effect. :class:`WriteCaseFlags` is expanded by the store first (it needs the mails)."""
    match effect:
        case RefreshCard(case_id, priority, not_before, redraw):
            payload = {"case_id": case_id, **({"redraw": True} if redraw else {}), **_backlog(priority)}
            return OutboxRow(POST_CARD, payload, f"card:{case_id}", priority, not_before)
        case RepostCard(case_id):
            return OutboxRow(POST_CARD, {"case_id": case_id, "repost": True}, f"repost:{case_id}")
        case ThreadReply(case_id, version, message, priority):
            payload = {
                "case_id": case_id,
                "version": version,
                "message": message_payload(message),
                **_backlog(priority),
            }
            return OutboxRow(
                THREAD_REPLY,
                payload,
                f"reply:{case_id}:{version}",
                priority,
                ordering=(reply_order_key(case_id), version),
            )
        case WriteFlag(mailbox, message_id, case_id):
            payload = {"mailbox": mailbox, "message_id": message_id, "case_id": case_id}
            return OutboxRow(SET_FLAG, payload, f"flag:{mailbox.lower()}:{message_id}")
        case BacklogSummary(line_id, count, run_id):
            return OutboxRow(
                BACKLOG_SUMMARY, {"line_id": line_id, "count": count}, f"backlog-summary:{line_id}:{run_id}"
            )
        case WriteCaseFlags():
            raise ValueError("WriteCaseFlags is expanded into WriteFlag by the store")
