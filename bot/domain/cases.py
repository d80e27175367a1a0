"""Cases: the unit the team works on. One open case per caller per pool line."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from bot.domain.events import CallEvent


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


OUTLOOK_ACTOR = Actor(id="outlook", name="Outlook")
"""Stand-in actor for changes made in Outlook, where Graph does not tell us who made them."""


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
