"""Values the use cases and the adapters share: a mail as the bot reads it, what the parser found in it, a flag, a
page of a delta, a Placetel call event. Plain data, no I/O: adapters fill them in, use cases read them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain.events import EventKind

MailHeaders = tuple[tuple[str, str], ...]
"""Internet message headers as Graph lists them (``internetMessageHeaders``), topmost first."""


MAX_HEADERS = 500


@dataclass(frozen=True, slots=True)
class MailAttachment:
    id: str
    name: str
    content_type: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True)
class MailMessage:
    """What the parser needs of one mail; the Graph adapter fills it from a Graph message."""

    mailbox: str
    message_id: str
    subject: str
    sender_address: str
    body: str
    received_at: datetime
    body_type: str = "text"
    """``html`` or ``text``."""
    sender_name: str = ""
    internet_message_id: str | None = None
    web_link: str | None = None
    attachments: tuple[MailAttachment, ...] = ()
    categories: tuple[str, ...] = ()
    flag_status: str = "notFlagged"
    is_read: bool = False
    headers: MailHeaders | None = None
    """Internet message headers, topmost first; None when they were not fetched (sender authentication fails)."""
    message_class: str = ""
    """Outlook's message class (``IPM.Note``, ``IPM.Note.Rules.OofTemplate.Microsoft``, ``REPORT.…``) when known."""


@dataclass(frozen=True, slots=True)
class ParsedMail:
    kind: EventKind
    call_time: datetime
    """Aware; from the mail text when given (naive times read as Europe/Berlin), else the received time."""
    is_pbx_mail: bool
    subject: str = ""
    """Decoded subject (RFC 2047 words resolved)."""
    caller: str | None = None
    """E.164, :data:`bot.domain.events.WITHHELD`, or None when no number was found (shown as "unbekannt")."""
    caller_raw: str | None = None
    caller_as_written: str | None = None
    """The caller exactly as the mail wrote it, set when ``phonenumbers`` deems the number invalid."""
    ignored: bool = False
    """Not even an unrecognised item: the bot's own mail, an automatic reply or a bounce (see the notes)."""
    caller_name: str | None = None
    pool_number: str | None = None
    voicemail_attachment_id: str | None = None
    voicemail_file_name: str | None = None
    voicemail_duration_seconds: int | None = None
    fax_attachment_id: str | None = None
    profile: str | None = None
    notes: tuple[str, ...] = ()


class FlagStatus(StrEnum):
    NOT_FLAGGED = "notFlagged"
    FLAGGED = "flagged"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class MailUpdate:
    """One PATCH of a mail: its flag, and optionally its read state and the bot's own categories."""

    flag: FlagStatus
    flag_at: datetime
    """When the case was done (``completedDateTime`` of a complete flag)."""
    is_read: bool | None = None
    """None leaves the read state as it is."""
    own_categories: tuple[str, ...] | None = None
    """The bot's categories (all starting with ``category_prefix``); None leaves the categories as they are."""
    category_prefix: str = ""


class DeltaExpired(Exception):
    """Graph no longer knows the delta state (410 SyncStateNotFound): the catch-up must start over."""


@dataclass(frozen=True, slots=True)
class DeltaPage:
    messages: list[MailMessage]
    delta_link: str | None
    """Set on the last page only: where the next catch-up starts."""
    next_link: str | None = None
    """Set on every other page: where a catch-up interrupted after this page resumes."""


@dataclass(frozen=True, slots=True)
class AudioStream:
    content_type: str
    chunks: AsyncIterator[bytes]
    length: int | None = None


@dataclass(frozen=True, slots=True)
class Person:
    """A contact or a user as Graph returns it: phone fields as typed by people, not yet normalised."""

    id: str
    display_name: str
    detail: str | None
    phones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PeoplePage:
    people: list[Person]
    removed_ids: list[str]
    delta_link: str | None
    """Set on the last page only."""


GLOBAL_SCOPE = "*"
"""The scope of the global secret: it may speak for every line."""


class NotifyEventName(StrEnum):
    INCOMING_CALL = "IncomingCall"
    OUTGOING_CALL = "OutgoingCall"
    CALL_ACCEPTED = "CallAccepted"
    HUNG_UP = "HungUp"


class HangUpType(StrEnum):
    VOICEMAIL = "voicemail"
    MISSED = "missed"
    BLOCKED = "blocked"
    ACCEPTED = "accepted"
    BUSY = "busy"
    CANCELED = "canceled"
    UNAVAILABLE = "unavailable"
    CONGESTION = "congestion"


class NotifyEvent(BaseModel):
    """One call event as Placetel sends it; fields it does not document are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    event: NotifyEventName
    call_id: str = Field(pattern=r"^[0-9A-Za-z_.:-]{1,128}$")
    from_: str = Field(default="", alias="from", max_length=256)
    to: str = Field(default="", max_length=256)
    direction: Literal["in", "out"] | None = None
    peer: str | None = Field(default=None, max_length=256)
    type: HangUpType | None = None
    duration: int = Field(default=0, ge=0, le=7 * 24 * 3600)

    @field_validator("type", mode="before")
    @classmethod
    def _british_spelling(cls, value: object) -> object:
        """One integration spells it ``cancelled``; an empty type is no type."""
        if value == "cancelled":
            return HangUpType.CANCELED
        return value or None

    @field_validator("direction", "peer", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None

    @field_validator("duration", mode="before")
    @classmethod
    def _empty_duration(cls, value: object) -> object:
        return 0 if value in ("", None) else value

    @property
    def dedupe_key(self) -> str:
        """Placetel retries: one job per call and event."""
        return f"placetel:{self.call_id}:{self.event.value}"
