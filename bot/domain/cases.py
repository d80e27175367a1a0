"""Cases: the unit the team works on. One open case per caller per pool line."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from bot.domain.events import CallEvent


class ContactKind(StrEnum):
    CALLBACK = "callback"
    """Someone of the team called the caller back (an outgoing call from the line or a team extension)."""
    CALLER_REACHED = "caller_reached"
    """The caller called again and someone answered."""


@dataclass(frozen=True, slots=True)
class Contact:
    """A call between the team and the caller of a case, reported by the phone system; one per call id."""

    call_id: str
    kind: ContactKind
    at: datetime
    reached: bool
    duration_seconds: int = 0
    agent: str | None = None
    """Who called back: the configured name of the extension or SIP user, or the extension itself."""


class CaseState(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Actor:
    """Someone who acts on a case: a Teams user (AAD object id) or the mailbox itself (Outlook)."""

    id: str
    name: str
    teams_id: str | None = field(default=None, compare=False)
    """The user's id in Teams conversations (``from.id``, ``29:…``): a card's ``refresh.userIds`` needs it. Not part
    of the identity: the same person with or without it is the same actor."""

    @property
    def is_outlook(self) -> bool:
        return self.id == OUTLOOK_ACTOR.id

    @property
    def is_callback(self) -> bool:
        return self.id == CALLBACK_ACTOR.id


OUTLOOK_ACTOR = Actor(id="outlook", name="Outlook")
"""Stand-in actor for changes made in Outlook, where Graph does not tell us who made them."""

CALLBACK_ACTOR = Actor(id="callback", name="Rückruf")
"""Stand-in actor for a case the phone system closed: a callback reached the caller ("Erledigt – durch Rückruf")."""


@dataclass(frozen=True, slots=True)
class PreviousCase:
    """The caller's last finished case on the same line, linked from a new case."""

    case_id: str
    done_by: Actor | None
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    line_id: str
    caller: str | None
    created_at: datetime
    state: CaseState = CaseState.OPEN
    version: int = 1
    events: tuple[CallEvent, ...] = field(default_factory=tuple)
    caller_name: str | None = None
    claimed_by: Actor | None = None
    claimed_at: datetime | None = None
    done_by: Actor | None = None
    done_at: datetime | None = None
    previous: PreviousCase | None = None
    updated_at: datetime | None = None
    reopened: bool = False
    """Open again after being done (Outlook shows such mails flagged, not cleared)."""
    contacts: tuple[Contact, ...] = field(default_factory=tuple)
    """Callbacks and answered repeat calls the phone system reported, oldest first."""

    @property
    def holder(self) -> Actor | None:
        """Who holds the case right now (the claimer while claimed, the finisher when done)."""
        if self.state is CaseState.CLAIMED:
            return self.claimed_by
        if self.state is CaseState.DONE:
            return self.done_by
        return None

    @property
    def held_since(self) -> datetime | None:
        if self.state is CaseState.CLAIMED:
            return self.claimed_at
        if self.state is CaseState.DONE:
            return self.done_at
        return None

    @property
    def call_count(self) -> int:
        return len(self.events)

    @property
    def first_event(self) -> CallEvent | None:
        return self.events[0] if self.events else None

    @property
    def last_event(self) -> CallEvent | None:
        return self.events[-1] if self.events else None

    @property
    def last_callback(self) -> Contact | None:
        return next((c for c in reversed(self.contacts) if c.kind is ContactKind.CALLBACK), None)

    @property
    def last_contact(self) -> Contact | None:
        return self.contacts[-1] if self.contacts else None

    def with_contact(self, contact: Contact) -> Case:
        """The case with one more contact, kept in time order, and a new version (the card shows it)."""
        contacts = tuple(sorted((*self.contacts, contact), key=lambda c: (c.at, c.call_id)))
        return replace(self, contacts=contacts, version=self.version + 1, updated_at=contact.at)

    def with_merged_event(self, event: CallEvent) -> Case:
        """The case with ``event`` in place of its stored event of the same source id (a second report of a call
        joined it), and a new version."""
        events = tuple(event if e.source_id == event.source_id else e for e in self.events)
        return replace(self, events=events, caller_name=self.caller_name or event.caller_name, version=self.version + 1)

    def with_event(self, event: CallEvent) -> Case:
        """The case with one more event, kept in call-time order, and a new version."""
        events = tuple(sorted((*self.events, event), key=lambda e: (e.received_at, e.source_id)))
        return replace(
            self,
            events=events,
            caller_name=self.caller_name or event.caller_name,
            version=self.version + 1,
            updated_at=event.received_at,
        )
