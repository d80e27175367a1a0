"""What a callback or an answered repeat call does to a case.

Every reported contact goes into the case's history (the card shows the last callback attempt). A callback that
reached the caller closes the case ("Erledigt – durch Rückruf") when the line is configured so; an unreached one
never closes anything. Closing goes through the state machine like every other change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.cases import CALLBACK_ACTOR, Case, Contact, ContactKind
from bot.domain.state_machine import Verb, decide


class AutoDone(StrEnum):
    """Per line: whether a callback that reached the caller marks the case done."""

    REACHED = "reached"
    NEVER = "never"


def closes_case(contact: Contact, auto_done: AutoDone) -> bool:
    return contact.kind is ContactKind.CALLBACK and contact.reached and auto_done is AutoDone.REACHED


def apply_contact(case: Case, contact: Contact, auto_done: AutoDone, now: datetime, claim_timeout: timedelta) -> Case:
    """The case with ``contact`` recorded and, when it closes the case, done by :data:`CALLBACK_ACTOR`."""
    updated = case.with_contact(contact)
    if not closes_case(contact, auto_done):
        return updated
    decided = decide(updated, Verb.CALLBACK_REACHED, CALLBACK_ACTOR, now, claim_timeout)
    return decided if isinstance(decided, Case) else updated
