"""Placetel's call events, taken from the durable queue: cards in real time and callbacks detected by themselves.

- ``HungUp`` of an incoming call of type ``missed`` or ``voicemail`` on a pool line's number opens (or joins) the
  caller's case at once. The notification mail that follows joins the same event (:mod:`bot.domain.matching`)
  instead of counting a second call, and still brings the voicemail audio; a mail that came first is joined by the
  webhook the same way.
- ``HungUp`` of an outgoing call from the line's numbers or the team's extensions to a caller with an open or
  claimed case is a callback: a thread line, the last attempt on the card, and — when the line says so
  (``auto_done_on_callback=reached``) — the case done "durch Rückruf" if the callee answered.
- ``CallAccepted`` (or ``HungUp`` ``accepted``) of an incoming call from a caller with an open case: they called
  again and someone answered; the card offers Done first.
- ``OutgoingCall`` names the SIP user who placed a call; it is remembered for the call's ``HungUp``.

Every step is idempotent per call id (the event's call id, the contact's call id), so a redelivered or duplicated
webhook changes nothing; events may come in any order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from bot import metrics
from bot.config import PoolLine, Settings
from bot.core import effects
from bot.core.jobs import PermanentFailure
from bot.core.numbers import normalise_number
from bot.core.ports import ContactOutcome, EventOutcome, Store
from bot.core.values import GLOBAL_SCOPE, HangUpType, NotifyEvent, NotifyEventName
from bot.domain.cases import Contact, ContactKind
from bot.domain.events import WITHHELD, WITHHELD_KEYWORDS, CallEvent, EventKind
from bot.logging_setup import mask_number

log = logging.getLogger(__name__)

OUTBOUND_ONLY_TYPES = (HangUpType.BUSY, HangUpType.CANCELED, HangUpType.UNAVAILABLE, HangUpType.CONGESTION)
MISSED_TYPES = {HangUpType.MISSED: EventKind.MISSED_CALL, HangUpType.VOICEMAIL: EventKind.VOICEMAIL}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One queued call event: what Placetel sent, when it arrived and which lines its signature may speak for."""

    event: NotifyEvent
    received_at: datetime
    scopes: frozenset[str]

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Delivery:
        try:
            event = NotifyEvent.model_validate(payload["event"])
            received_at = datetime.fromisoformat(str(payload["received_at"]))
            scopes = frozenset(str(scope) for scope in payload["scopes"])
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise PermanentFailure(f"not a queued Placetel call event: {exc}") from exc
        if received_at.tzinfo is None:
            raise PermanentFailure("received_at must be timezone-aware")
        return cls(event, received_at, scopes)

    def may_concern(self, line: PoolLine) -> bool:
        return GLOBAL_SCOPE in self.scopes or line.id in self.scopes


def webhook_caller(raw: str) -> str | None:
    """The caller as events store it: E.164, :data:`WITHHELD`, or None for what is no phone number (a SIP id)."""
    text = raw.strip()
    if not text or text.lower() in WITHHELD_KEYWORDS:
        return WITHHELD
    return normalise_number(text)


class LiveCalls:
    def __init__(self, settings: Settings, store: Store, wake_workers: Callable[[], None] = lambda: None) -> None:
        self._settings = settings
        self._store = store
        # Idle job workers start on the card and the thread line at once: the card is meant to change in real
        # time, not at the workers' next poll.
        self._wake_workers = wake_workers

    @property
    def _match_window(self) -> timedelta:
        return timedelta(seconds=self._settings.placetel_match_window_seconds)

    @property
    def _claim_timeout(self) -> timedelta:
        return timedelta(minutes=self._settings.claim_timeout_minutes)

    async def handle_notification(self, payload: dict[str, Any]) -> None:
        """The ``placetel.notify`` job."""
        delivery = Delivery.from_payload(payload)
        event = delivery.event
        match event.event:
            case NotifyEventName.HUNG_UP if self._is_outgoing(delivery):
                await self._callback(delivery)
            case NotifyEventName.HUNG_UP if event.type in MISSED_TYPES:
                await self._missed(delivery, MISSED_TYPES[event.type])
            case NotifyEventName.HUNG_UP if event.type is HangUpType.ACCEPTED:
                await self._caller_reached(delivery)
            case NotifyEventName.CALL_ACCEPTED if not self._is_outgoing(delivery):
                await self._caller_reached(delivery)
            case NotifyEventName.OUTGOING_CALL if event.peer:
                await self._store.calls.remember_peer(event.call_id, event.peer, delivery.received_at)
            case _:
                log.debug("Placetel %s (%s) needs nothing", event.event.value, event.type)

    # Lines ------------------------------------------------------------------------------------------------------

    def _line_called(self, delivery: Delivery) -> PoolLine | None:
        """The pool line an incoming call went to, when the signature may speak for it."""
        number = normalise_number(delivery.event.to)
        line = next((line for line in self._settings.pool_lines if number in line.numbers), None) if number else None
        if line is None or not delivery.may_concern(line):
            return None
        return line

    def _calling_lines(self, delivery: Delivery, peer: str | None) -> list[PoolLine]:
        """The pool lines an outgoing call was placed from: one of their numbers, or one of their team's
        extensions or SIP users, and the signature may speak for them."""
        event = delivery.event
        number = normalise_number(event.from_)
        return [
            line
            for line in self._settings.pool_lines
            if delivery.may_concern(line)
            and (
                (number is not None and number in line.numbers)
                or line.extension_name(peer) is not None
                or line.extension_name(event.from_) is not None
            )
        ]

    def _is_outgoing(self, delivery: Delivery) -> bool:
        event = delivery.event
        if event.direction is not None:
            return event.direction == "out"
        if event.type in OUTBOUND_ONLY_TYPES or event.event is NotifyEventName.OUTGOING_CALL:
            return True
        return bool(self._calling_lines(delivery, event.peer)) and self._line_called(delivery) is None

    # Cases ------------------------------------------------------------------------------------------------------

    async def _missed(self, delivery: Delivery, kind: EventKind) -> None:
        event = delivery.event
        line = self._line_called(delivery)
        caller = webhook_caller(event.from_)
        if line is None or caller is None:
            log.info("Placetel %s to a number of no pool line (or from an internal id); ignored", event.type)
            return
        call_event = CallEvent(
            source_id=CallEvent.source_id_for_call(event.call_id),
            kind=kind,
            line_id=line.id,
            caller=caller,
            received_at=delivery.received_at,
            mail=None,
            call_id=event.call_id,
            called_number=normalise_number(event.to),
        )
        outcome = await self._store.cases.record_event(
            call_event, self._match_window, effects=lambda outcome: _call_effects(outcome, call_event)
        )
        if outcome.merged:
            log.info("call webhook joined the mail's event of case %s", outcome.case.id[:8])
            return
        if not outcome.event_added:
            return
        metrics.EVENTS.labels(kind.value).inc()
        log.info(
            "%s from %s on %s (call webhook) → case %s (%s)",
            kind.value,
            mask_number(caller),
            line.id,
            outcome.case.id[:8],
            "new" if outcome.case_created else f"call {outcome.case.call_count}",
        )
        self._wake_workers()

    async def _callback(self, delivery: Delivery) -> None:
        event = delivery.event
        callee = webhook_caller(event.to)
        if callee is None or callee == WITHHELD:
            return
        peer = event.peer or await self._store.calls.peer_of(event.call_id)
        reached = event.type is HangUpType.ACCEPTED
        for line in self._calling_lines(delivery, peer):
            contact = Contact(
                call_id=event.call_id,
                kind=ContactKind.CALLBACK,
                at=delivery.received_at - timedelta(seconds=event.duration),
                reached=reached,
                duration_seconds=event.duration if reached else 0,
                agent=line.extension_name(peer) or line.extension_name(event.from_) or line.display_name,
            )
            await self._record(line, callee, contact)

    async def _caller_reached(self, delivery: Delivery) -> None:
        event = delivery.event
        line = self._line_called(delivery)
        caller = webhook_caller(event.from_)
        if line is None or caller is None or caller == WITHHELD:
            return
        at = delivery.received_at
        if event.event is NotifyEventName.HUNG_UP:
            at -= timedelta(seconds=event.duration)
        contact = Contact(call_id=event.call_id, kind=ContactKind.CALLER_REACHED, at=at, reached=True)
        await self._record(line, caller, contact)

    async def _record(self, line: PoolLine, caller: str, contact: Contact) -> ContactOutcome | None:
        outcome = await self._store.cases.record_contact(
            line.id,
            caller,
            contact,
            self._settings.auto_done_for(line),
            call_end(contact),
            self._claim_timeout,
            effects=lambda outcome: _contact_effects(outcome, contact),
        )
        if outcome is None:
            log.info("%s to/from %s on %s: no open case; nothing to do", contact.kind, mask_number(caller), line.id)
            return None
        if not outcome.added:
            return outcome
        metrics.CONTACTS.labels(contact.kind.value).inc()
        log.info(
            "%s (%s) on case %s%s",
            contact.kind.value,
            "reached" if contact.reached else "not reached",
            outcome.case.id[:8],
            ": done by callback" if outcome.closed else "",
        )
        self._wake_workers()
        return outcome


def _call_effects(outcome: EventOutcome, event: CallEvent) -> list[effects.Effect]:
    """The card shows the call, and another call in a case adds a thread line. A redelivery (or a retry after a
    crash) refreshes the card too: refreshes coalesce, and it may be the only one."""
    caused: list[effects.Effect] = [effects.RefreshCard(outcome.case.id)]
    if outcome.event_added and not outcome.case_created:
        message = effects.RepeatCall(event.source_id, event.received_at, outcome.case.call_count)
        caused.append(effects.ThreadReply(outcome.case.id, outcome.case.version, message))
    return caused


def _contact_effects(outcome: ContactOutcome, contact: Contact) -> list[effects.Effect]:
    """The card shows the contact, with a thread line; a contact that closed the case also completes its mails'
    flags."""
    case = outcome.case
    if not outcome.added:
        return [effects.RefreshCard(case.id)]
    caused: list[effects.Effect] = [
        effects.RefreshCard(case.id),
        effects.ThreadReply(case.id, case.version, effects.ContactLine(contact.call_id)),
    ]
    if outcome.closed:
        caused.append(effects.WriteCaseFlags(case.id))
    return caused


def call_end(contact: Contact) -> datetime:
    """When the call of a contact ended (its start plus its duration): when a callback closes a case."""
    return contact.at + timedelta(seconds=contact.duration_seconds)
