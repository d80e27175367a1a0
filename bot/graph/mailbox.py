"""Reads mails and writes flags in the pool mailboxes through msgraph-sdk.

At most four Graph requests run at once per mailbox (Outlook's MailboxConcurrency limit); immutable ids are asked
for on every read so that a mail keeps its id when someone moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.models.attachment import Attachment
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.followup_flag import FollowupFlag
from msgraph.generated.models.followup_flag_status import FollowupFlagStatus
from msgraph.generated.models.message import Message
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.messages.item.attachments.attachments_request_builder import (
    AttachmentsRequestBuilder,
)
from msgraph.generated.users.item.messages.item.attachments.item.attachment_item_request_builder import (
    AttachmentItemRequestBuilder,
)
from msgraph.generated.users.item.messages.item.message_item_request_builder import MessageItemRequestBuilder

from bot.graph.errors import as_job_error, graph_status
from bot.ingest import DeltaExpired, DeltaPage
from bot.placetel.parser import MailAttachment, MailMessage
from bot.placetel.trust import MAX_HEADERS, MailHeaders
from bot.storage.interface import FlagStatus, MailUpdate
from bot.voicemail import AudioStream

MESSAGE_FIELDS = [
    "id",
    "subject",
    "from",
    "body",
    "receivedDateTime",
    "flag",
    "isRead",
    "categories",
    "hasAttachments",
    "webLink",
    "internetMessageId",
    "changeKey",
    # Only returned when selected; the parser reads the sender-authentication verdict and auto-reply markers in it.
    "internetMessageHeaders",
]
MESSAGE_CLASS = "String 0x001A"
"""PidTagMessageClass as an extended property: tells Outlook's automatic replies and reports from other mail."""
MESSAGE_EXPAND = [f"singleValueExtendedProperties($filter=id eq '{MESSAGE_CLASS}')"]
ATTACHMENT_FIELDS = ["id", "name", "contentType", "size", "isInline"]
IMMUTABLE_IDS = 'IdType="ImmutableId"'
MAILBOX_CONCURRENCY = 4
DELTA_PAGE_SIZE = 50

T = TypeVar("T")

_FLAG_TO_GRAPH = {
    FlagStatus.NOT_FLAGGED: FollowupFlagStatus.NotFlagged,
    FlagStatus.FLAGGED: FollowupFlagStatus.Flagged,
    FlagStatus.COMPLETE: FollowupFlagStatus.Complete,
}


def request_config(query: Any = None, *, page_size: int | None = None) -> RequestConfiguration[Any]:
    """Request options with ``Prefer: IdType="ImmutableId"`` (and a page size for collections)."""
    config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
    config.headers.add("Prefer", IMMUTABLE_IDS)
    if page_size:
        config.headers.add("Prefer", f"odata.maxpagesize={page_size}")
    return config


def _flag_status(message: Message) -> str:
    status = message.flag.flag_status if message.flag else None
    return str(status.value) if status else FlagStatus.NOT_FLAGGED.value


def _headers(message: Message, *, absent_means_none: bool) -> MailHeaders | None:
    """``internetMessageHeaders`` as (name, value) pairs, topmost first.

    A single GET that selected them and got none means the mail has none (``()``); in a delta page, missing
    headers mean "not delivered here" (``None``), and ingestion reads the mail once more.
    """
    items = message.internet_message_headers
    if items is None:
        return None if absent_means_none else ()
    return tuple((item.name or "", item.value or "") for item in items[:MAX_HEADERS])


def _message_class(message: Message) -> str:
    for prop in message.single_value_extended_properties or ():
        if (prop.id or "").lower() == MESSAGE_CLASS.lower():
            return prop.value or ""
    return ""


def to_mail_message(
    mailbox: str, message: Message, attachments: tuple[MailAttachment, ...], *, from_delta: bool = False
) -> MailMessage:
    sender = message.from_.email_address if message.from_ and message.from_.email_address else None
    body = message.body
    received = message.received_date_time or datetime.now(UTC)
    return MailMessage(
        mailbox=mailbox,
        message_id=message.id or "",
        subject=message.subject or "",
        sender_address=(sender.address or "") if sender else "",
        sender_name=(sender.name or "") if sender else "",
        body=(body.content or "") if body else "",
        body_type="html" if body and body.content_type == BodyType.Html else "text",
        received_at=received if received.tzinfo else received.replace(tzinfo=UTC),
        internet_message_id=message.internet_message_id,
        web_link=message.web_link,
        attachments=attachments,
        categories=tuple(message.categories or ()),
        flag_status=_flag_status(message),
        is_read=bool(message.is_read),
        headers=_headers(message, absent_means_none=from_delta),
        message_class=_message_class(message),
    )


def _to_attachment(attachment: Attachment) -> MailAttachment:
    return MailAttachment(
        id=attachment.id or "",
        name=attachment.name or "",
        content_type=attachment.content_type or "",
        size=attachment.size or 0,
    )


def _stream_error(response: httpx.Response) -> APIError:
    error = APIError(f"Graph answered {response.status_code} for an attachment's content")
    error.response_status_code = response.status_code
    error.response_headers = dict(response.headers)
    return error


class GraphMailboxes:
    """The :class:`bot.ingest.MailReader` and flag writer over Graph."""

    def __init__(self, client: GraphServiceClient) -> None:
        self._client = client
        self._slots: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(MAILBOX_CONCURRENCY))

    async def _call(self, mailbox: str, request: Callable[[], Awaitable[T]]) -> T:
        async with self._slots[mailbox.lower()]:
            try:
                return await request()
            except Exception as exc:
                mapped = as_job_error(exc)
                if mapped is exc:
                    raise
                raise mapped from exc

    def _message(self, mailbox: str, message_id: str) -> MessageItemRequestBuilder:
        return self._client.users.by_user_id(mailbox).messages.by_message_id(message_id)

    async def get_message(self, mailbox: str, message_id: str) -> MailMessage | None:
        query = MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(
            select=MESSAGE_FIELDS, expand=MESSAGE_EXPAND
        )
        try:
            message = await self._call(mailbox, lambda: self._message(mailbox, message_id).get(request_config(query)))
        except Exception as exc:
            if graph_status(exc) == 404:
                return None
            raise
        if message is None:
            return None
        return to_mail_message(mailbox, message, await self._attachments(mailbox, message))

    async def _attachments(self, mailbox: str, message: Message) -> tuple[MailAttachment, ...]:
        if not message.has_attachments or not message.id:
            return ()
        query = AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters(select=ATTACHMENT_FIELDS)
        builder = self._message(mailbox, message.id).attachments
        response = await self._call(mailbox, lambda: builder.get(request_config(query)))
        items = response.value if response and response.value else []
        return tuple(_to_attachment(item) for item in items if not item.is_inline)

    @contextlib.asynccontextmanager
    async def attachment_stream(
        self, mailbox: str, message_id: str, attachment_id: str, chunk_size: int
    ) -> AsyncIterator[AudioStream | None]:
        """A file attachment's raw bytes (``/$value``) in chunks, without loading it whole (a base64 ``contentBytes``
        would cost 2.3x its size in memory). The request goes through the SDK's adapter: same token, same hosts."""
        builder = self._message(mailbox, message_id).attachments.by_attachment_id(attachment_id)
        query = AttachmentItemRequestBuilder.AttachmentItemRequestBuilderGetQueryParameters(select=ATTACHMENT_FIELDS)
        metadata = await self._call(mailbox, lambda: builder.get(request_config(query)))
        if not isinstance(metadata, FileAttachment):
            yield None
            return
        adapter = self._client.request_adapter
        info = builder.to_get_request_information(request_config())
        adapter.set_base_url_for_request_information(info)  # type: ignore[attr-defined]
        info.url = f"{info.url}/$value"
        request = cast(httpx.Request, await adapter.convert_to_native_async(info))
        http: httpx.AsyncClient = adapter._http_client  # type: ignore[attr-defined]  # the SDK's client and middleware
        async with self._slots[mailbox.lower()]:
            response = await http.send(request, stream=True)
            try:
                if response.status_code == 404:
                    yield None
                    return
                if response.status_code >= 400:
                    await response.aread()
                    raise as_job_error(_stream_error(response))
                length = response.headers.get("Content-Length")
                yield AudioStream(
                    metadata.content_type or response.headers.get("Content-Type") or "application/octet-stream",
                    response.aiter_bytes(chunk_size),
                    int(length) if length and length.isdigit() else None,
                )
            finally:
                await response.aclose()

    async def delta(self, mailbox: str, delta_link: str | None) -> AsyncIterator[DeltaPage]:
        builder = self._client.users.by_user_id(mailbox).mail_folders.by_mail_folder_id("inbox").messages.delta
        query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=MESSAGE_FIELDS, expand=MESSAGE_EXPAND)
        next_url = delta_link
        while True:
            # msgraph-sdk's PageIterator loses the deltaLink: page by hand with with_url.
            current = builder.with_url(next_url) if next_url else builder
            config = request_config(None if next_url else query, page_size=DELTA_PAGE_SIZE)
            try:
                response = await self._call(mailbox, lambda current=current, config=config: current.get(config))  # type: ignore[misc]
            except Exception as exc:
                if graph_status(exc) == 410:
                    raise DeltaExpired(f"Graph no longer knows the delta state of {mailbox}") from exc
                raise
            values = list(response.value or []) if response else []
            removed = [m.id for m in values if m.id and "@removed" in (m.additional_data or {})]
            messages = [
                to_mail_message(mailbox, m, await self._attachments(mailbox, m), from_delta=True)
                for m in values
                if m.id and "@removed" not in (m.additional_data or {})
            ]
            next_link = response.odata_next_link if response else None
            final_link = response.odata_delta_link if response else None
            yield DeltaPage(messages=messages, removed_ids=removed, delta_link=final_link)
            if not next_link:
                return
            next_url = next_link

    async def update_message(self, mailbox: str, message_id: str, update: MailUpdate) -> None:
        """Flag, read state and the bot's categories in one PATCH (one request, one change notification)."""
        followup = FollowupFlag(flag_status=_FLAG_TO_GRAPH[update.flag])
        if update.flag is FlagStatus.COMPLETE:
            followup.completed_date_time = DateTimeTimeZone(
                date_time=update.flag_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"
            )
        patch = Message(flag=followup, is_read=update.is_read)
        if update.own_categories is not None:
            patch.categories = await self._categories_with(mailbox, message_id, update)
        await self._call(mailbox, lambda: self._message(mailbox, message_id).patch(patch))

    async def _categories_with(self, mailbox: str, message_id: str, update: MailUpdate) -> list[str]:
        """The mail's categories with the bot's own (prefixed) replaced; the team's own categories stay untouched."""
        query = MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(select=["categories"])
        current = await self._call(mailbox, lambda: self._message(mailbox, message_id).get(request_config(query)))
        theirs = current.categories if current and current.categories else []
        return [c for c in theirs if not c.startswith(update.category_prefix)] + list(update.own_categories or ())
