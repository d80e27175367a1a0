"""Call events: one per missed call, voicemail, fax or unrecognised mail.

An event comes from a notification mail, from the phone system's call webhook (Placetel Notify), or from both: the
mail of a call the webhook reported first joins that call's event instead of counting a second call, and vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

WITHHELD = "withheld"
"""Caller value for calls whose number was suppressed (anonymous, unbekannt, unterdrückt)."""


class EventKind(StrEnum):
    MISSED_CALL = "missed_call"
    VOICEMAIL = "voicemail"
    FAX = "fax"
    UNRECOGNISED = "unrecognised"


@dataclass(frozen=True, slots=True)
class Voicemail:
    attachment_id: str
    file_name: str
    duration_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class MailSource:
    """Where an event came from: the mail in the line's shared mailbox."""

    mailbox: str
    message_id: str
    """Graph immutable id of the mail."""
    web_link: str | None = None
    subject: str = ""
    sender: str = ""


@dataclass(frozen=True, slots=True)
class CallEvent:
    source_id: str
    """Idempotency key: the same mail always yields the same source id."""
    kind: EventKind
    line_id: str
    caller: str | None
    """E.164 number, :data:`WITHHELD`, or None when the mail named no number."""
    received_at: datetime
    mail: MailSource | None
    """The notification mail; None while only the call webhook has reported the call."""
    caller_name: str | None = None
    voicemail: Voicemail | None = None
    caller_as_written: str | None = None
    """The caller as the mail wrote it, kept when the number is not valid under the numbering plan: shown as is."""
    called_number: str | None = None
    """Which of the line's numbers was called (E.164), when the mail says."""
    call_id: str | None = None
    """The phone system's id of the call (Placetel Notify ``call_id``) once its webhook reported it."""

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("CallEvent.received_at must be timezone-aware")

    @property
    def grouping_key(self) -> str | None:
        """Events with the same key on the same line fold into one case.

        Withheld and unknown callers never group: two anonymous calls are not the same person.
        """
        if self.caller is None or self.caller == WITHHELD or self.kind is EventKind.UNRECOGNISED:
            return None
        return self.caller

    @staticmethod
    def source_id_for(mailbox: str, message_id: str) -> str:
        return f"mail:{mailbox.lower()}:{message_id}"

    @staticmethod
    def source_id_for_call(call_id: str) -> str:
        return f"call:{call_id}"


WITHHELD_KEYWORDS = (
    "anonymous",
    "anonym",
    "unbekannt",
    "unknown",
    "unterdrückt",
    "unterdrueckt",
    "withheld",
    "private",
    "privat",
    "restricted",
    "nicht übermittelt",
    "keine rufnummer",
    "no caller id",
)
