"""Mailbox state of the Graph stand-in: messages, attachments, change tracking and Graph's JSON shapes.

Pure data and serialisation; the HTTP side lives in `sandbox.graph`.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

FLAG_STATUSES = ("notFlagged", "complete", "flagged")
FLAG_DATE_FIELDS = ("completedDateTime", "dueDateTime", "startDateTime")
WRITABLE_MESSAGE_PROPERTIES = ("flag", "categories", "isRead")
MESSAGE_PROPERTIES = (
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "isRead",
    "isDraft",
    "webLink",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "flag",
    "internetMessageHeaders",
)
SELECT_ONLY_PROPERTIES = frozenset({"internetMessageHeaders", "singleValueExtendedProperties"})
"""Properties Graph returns only when ``$select`` (or, for extended properties, ``$expand``) names them."""
MESSAGE_CLASS_PROPERTY = "String 0x001A"
"""MAPI PidTagMessageClass as a Graph extended property id (``IPM.Note``, ``IPM.Note.Rules.OofTemplate.Microsoft``)."""
ATTACHMENT_PROPERTIES = (
    "id",
    "lastModifiedDateTime",
    "name",
    "contentType",
    "size",
    "isInline",
    "contentId",
    "contentLocation",
    "contentBytes",
)
# Exchange ids are URL-safe base64 of an entry id; this prefix makes ours look alike (and long).
_ID_PREFIX = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"


class GraphError(Exception):
    """An OData error Graph would answer with; turned into a response by the server."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def new_exchange_id() -> str:
    """An immutable-id-like string; it contains '-', '_' and '=' so clients must URL-encode it."""
    return _ID_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode() + "="


def new_change_key() -> str:
    return "CQAAABYAAA" + base64.b64encode(secrets.token_bytes(18)).decode()


def graph_timestamp(moment: datetime) -> str:
    """Graph's Edm.DateTimeOffset rendering: UTC with a Z and whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def graph_date_time_time_zone(moment: datetime) -> dict[str, str]:
    """Graph's dateTimeTimeZone complex type (seven fractional digits, as Exchange renders it)."""
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Attachment:
    name: str
    content_type: str
    content: bytes
    is_inline: bool = False
    id: str = field(default_factory=new_exchange_id)
    last_modified: datetime = field(default_factory=utcnow)

    def to_graph(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "@odata.mediaContentType": self.content_type,
            "id": self.id,
            "lastModifiedDateTime": graph_timestamp(self.last_modified),
            "name": self.name,
            "contentType": self.content_type,
            "size": len(self.content),
            "isInline": self.is_inline,
            "contentId": None,
            "contentLocation": None,
            "contentBytes": base64.b64encode(self.content).decode(),
        }


@dataclass
class Message:
    subject: str
    sender_name: str
    sender_address: str
    body: str
    body_type: str  # "text" or "html", as Graph's bodyType enum
    received: datetime
    recipient_address: str
    folder_id: str
    attachments: list[Attachment] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    flag: dict[str, Any] = field(default_factory=lambda: {"flagStatus": "notFlagged"})
    is_read: bool = False
    id: str = field(default_factory=new_exchange_id)
    internet_message_id: str = field(default_factory=lambda: f"<{uuid.uuid4().hex}@sandbox.example>")
    conversation_id: str = field(default_factory=new_exchange_id)
    change_key: str = field(default_factory=new_change_key)
    created: datetime = field(default_factory=utcnow)
    last_modified: datetime = field(default_factory=utcnow)
    sequence: int = 0  # mailbox change counter value of the last change; drives delta
    headers: list[tuple[str, str]] = field(default_factory=list)
    """Internet message headers, topmost first (what Exchange Online stamped on receipt, then the sender's)."""
    message_class: str = "IPM.Note"

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def touch(self, sequence: int) -> None:
        """Record a modification: Exchange issues a new change key on every change."""
        self.change_key = new_change_key()
        self.last_modified = utcnow()
        self.sequence = sequence

    def to_graph(self) -> dict[str, Any]:
        sender = {"emailAddress": {"name": self.sender_name, "address": self.sender_address}}
        return {
            "@odata.etag": self.etag,
            "id": self.id,
            "createdDateTime": graph_timestamp(self.created),
            "lastModifiedDateTime": graph_timestamp(self.last_modified),
            "changeKey": self.change_key,
            "categories": list(self.categories),
            "receivedDateTime": graph_timestamp(self.received),
            "sentDateTime": graph_timestamp(self.received),
            "hasAttachments": any(not a.is_inline for a in self.attachments),
            "internetMessageId": self.internet_message_id,
            "subject": self.subject,
            "bodyPreview": " ".join(self.body.split())[:255] if self.body_type == "text" else "",
            "importance": "normal",
            "parentFolderId": self.folder_id,
            "conversationId": self.conversation_id,
            "isRead": self.is_read,
            "isDraft": False,
            "webLink": "https://outlook.office365.com/owa/?ItemID="
            + quote(self.id, safe="")
            + "&exvsurl=1&viewmodel=ReadMessageItem",
            "body": {"contentType": self.body_type, "content": self.body},
            "sender": sender,
            "from": sender,
            "toRecipients": [{"emailAddress": {"name": self.recipient_address, "address": self.recipient_address}}],
            "ccRecipients": [],
            "flag": dict(self.flag),
            "internetMessageHeaders": [{"name": name, "value": value} for name, value in self.headers],
            "singleValueExtendedProperties": [{"id": MESSAGE_CLASS_PROPERTY, "value": self.message_class}],
        }


@dataclass
class SyncState:
    """Server side of one delta token: what a client has seen up to `watermark`, plus unsent pages."""

    mailbox_id: str
    watermark: int
    select: tuple[str, ...] | None
    pending_ids: list[str] = field(default_factory=list)
    pending_removed: list[str] = field(default_factory=list)
    expand: tuple[str, ...] = ()


@dataclass
class Mailbox:
    address: str
    display_name: str
    user_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    inbox_id: str = field(default_factory=new_exchange_id)
    messages: dict[str, Message] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)  # message id → sequence of its deletion
    sequence: int = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def folder_matches(self, folder: str) -> bool:
        return folder.lower() == "inbox" or folder == self.inbox_id

    def message(self, message_id: str) -> Message:
        found = self.messages.get(message_id)
        if found is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return found

    def add(self, message: Message) -> Message:
        message.sequence = self.next_sequence()
        self.messages[message.id] = message
        return message

    def delete(self, message_id: str) -> None:
        self.message(message_id)
        del self.messages[message_id]
        self.removed[message_id] = self.next_sequence()

    def newest_first(self) -> list[Message]:
        return sorted(self.messages.values(), key=lambda m: m.received, reverse=True)

    def changed_since(self, watermark: int) -> tuple[list[str], list[str]]:
        changed = [m.id for m in self.newest_first() if m.sequence > watermark]
        removed = [mid for mid, seq in self.removed.items() if seq > watermark]
        return changed, removed


def authentication_results(sender: str, verdict: str) -> tuple[str, str]:
    """The ``Authentication-Results`` Exchange Online Protection stamps on a mail from ``sender``.

    ``verdict`` ``pass``: SPF, DKIM and DMARC pass for the sender's domain; ``fail``: the domain's DMARC policy
    rejects the mail's origin (a forged sender); ``none``: the domain publishes nothing.
    """
    domain = sender.rsplit("@", 1)[-1].lower()
    if verdict == "pass":
        value = (
            f"spf=pass (sender IP is 192.0.2.25) smtp.mailfrom={domain}; dkim=pass (signature was verified) "
            f"header.d={domain};dmarc=pass action=none header.from={domain};compauth=pass reason=100"
        )
    elif verdict == "fail":
        value = (
            "spf=fail (sender IP is 198.51.100.66) smtp.mailfrom=attacker.example; dkim=none (message not signed) "
            f"header.d=none;dmarc=fail action=oreject header.from={domain};compauth=fail reason=000"
        )
    elif verdict == "none":
        value = (
            f"spf=none (sender IP is 198.51.100.66) smtp.mailfrom={domain}; dkim=none (message not signed) "
            f"header.d=none;dmarc=none action=none header.from={domain};compauth=none reason=905"
        )
    else:
        raise GraphError(400, "BadRequest", f"authentication must be pass, fail or none, not '{verdict}'.")
    return "Authentication-Results", value


def parse_select(raw: str | None, allowed: Iterable[str], type_name: str) -> tuple[str, ...] | None:
    """Parse `$select`; unknown properties fail as Graph's URI parser does."""
    if raw is None or not raw.strip():
        return None
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    allowed_set = set(allowed)
    for name in names:
        if name not in allowed_set:
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type '{type_name}'.",
            )
    return names


def parse_expand(raw: str | None) -> tuple[str, ...]:
    """``$expand`` on messages: only the message-class extended property is modelled."""
    if raw is None or not raw.strip():
        return ()
    wanted = f"singleValueExtendedProperties($filter=id eq '{MESSAGE_CLASS_PROPERTY}')".lower()
    if raw.replace('"', "'").strip().lower() != wanted:
        raise GraphError(400, "BadRequest", f"$expand={raw} is not modelled by the stand-in.")
    return ("singleValueExtendedProperties",)


def apply_select(
    entity: dict[str, Any], select: tuple[str, ...] | None, expand: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Keep the selected (and expanded) properties; id and the OData annotations always stay, as in Graph."""
    if select is None:
        return {key: value for key, value in entity.items() if key not in SELECT_ONLY_PROPERTIES or key in expand}
    keep = {*select, *expand, "id"}
    return {key: value for key, value in entity.items() if key in keep or key.startswith("@odata.")}


def _parse_flag_date(name: str, value: Any) -> dict[str, str]:
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("dateTime"), str)
        or not isinstance(value.get("timeZone"), str)
    ):
        raise GraphError(400, "RequestBodyRead", f"Invalid value for '{name}': expected a dateTimeTimeZone object.")
    try:
        datetime.fromisoformat(value["dateTime"][:26])
    except ValueError as exc:
        raise GraphError(
            400, "RequestBodyRead", f"Cannot convert the literal '{value['dateTime']}' to Edm.DateTime."
        ) from exc
    return {"dateTime": value["dateTime"], "timeZone": value["timeZone"]}


def parse_flag(value: Any) -> dict[str, Any]:
    """Validate a followupFlag from a PATCH body and return the stored form."""
    if not isinstance(value, dict):
        raise GraphError(400, "RequestBodyRead", "Invalid value for 'flag': expected a followupFlag object.")
    unknown = set(value) - {"flagStatus", *FLAG_DATE_FIELDS, "@odata.type"}
    if unknown:
        name = sorted(unknown)[0]
        raise GraphError(
            400,
            "RequestBodyRead",
            f"The property '{name}' does not exist on type 'microsoft.graph.followupFlag'. Make sure to only "
            "use property names that are defined by the type or mark the type as open type.",
        )
    status = value.get("flagStatus", "notFlagged")
    if status not in FLAG_STATUSES:
        raise GraphError(
            400,
            "RequestBodyRead",
            f"Cannot convert the literal '{status}' to the expected type 'microsoft.graph.followupFlagStatus'.",
        )
    flag: dict[str, Any] = {"flagStatus": status}
    for name in FLAG_DATE_FIELDS:
        if value.get(name) is not None:
            flag[name] = _parse_flag_date(name, value[name])
    if status == "complete" and "completedDateTime" not in flag:
        flag["completedDateTime"] = graph_date_time_time_zone(utcnow())
    if status == "notFlagged":
        flag = {"flagStatus": "notFlagged"}
    return flag


def parse_message_patch(body: Any) -> dict[str, Any]:
    """Validate a message PATCH body (the properties the bot may change) and return normalised values."""
    if not isinstance(body, dict) or not body:
        raise GraphError(400, "ErrorInvalidRequest", "Empty Payload. JSON content expected.")
    changes: dict[str, Any] = {}
    for name, value in body.items():
        if name == "@odata.type":
            continue
        if name not in WRITABLE_MESSAGE_PROPERTIES:
            raise GraphError(
                400,
                "RequestBodyRead",
                f"The property '{name}' does not exist on type 'microsoft.graph.message' or is not writable "
                "in this stand-in. Make sure to only use property names that are defined by the type.",
            )
        if name == "flag":
            changes["flag"] = parse_flag(value)
        elif name == "categories":
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise GraphError(
                    400, "RequestBodyRead", "Invalid value for 'categories': expected a collection of strings."
                )
            changes["categories"] = list(value)
        else:
            if not isinstance(value, bool):
                raise GraphError(
                    400, "RequestBodyRead", f"Cannot convert the literal '{value}' to the expected type 'Edm.Boolean'."
                )
            changes["isRead"] = value
    return changes


def apply_message_changes(message: Message, changes: dict[str, Any], sequence: int) -> None:
    if "flag" in changes:
        message.flag = changes["flag"]
    if "categories" in changes:
        message.categories = changes["categories"]
    if "isRead" in changes:
        message.is_read = changes["isRead"]
    message.touch(sequence)
