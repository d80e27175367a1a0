"""Reads mails and writes flags in the pool mailboxes through msgraph-sdk.

At most four Graph requests run at once per mailbox (Outlook's MailboxConcurrency limit); immutable ids are asked
for on every read so that a mail keeps its id when someone moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from kiota_abstractions.serialization import ParsableFactory
from msgraph import GraphServiceClient
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.followup_flag import FollowupFlag
from msgraph.generated.models.followup_flag_status import FollowupFlagStatus
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.messages.item.attachments.attachments_request_builder import (
    AttachmentsRequestBuilder,
)
from msgraph.generated.users.item.messages.item.attachments.item.attachment_item_request_builder import (
    AttachmentItemRequestBuilder,
)
from msgraph.generated.users.item.messages.item.message_item_request_builder import MessageItemRequestBuilder

from bot.core.values import (
    MAX_HEADERS,
    AudioStream,
    DeltaExpired,
    DeltaPage,
    FlagStatus,
    MailAttachment,
    MailHeaders,
    MailMessage,
    MailUpdate,
)
from bot.graph.errors import as_job_error, graph_status, raise_mapped

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
DELTA_PAGE_SIZE = 1000
"""``Prefer: odata.maxpagesize``: Graph serves up to 1,000 messages a page; a catch-up of 5,000 mails is 5 requests."""

T = TypeVar("T")

_ERRORS: dict[str, type[ParsableFactory]] = {"XXX": ODataError}
"""Every error status becomes an ``ODataError``, as msgraph-sdk's own request builders map them."""

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


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _headers(message: dict[str, Any], *, absent_means_none: bool) -> MailHeaders | None:
    """``internetMessageHeaders`` as (name, value) pairs, topmost first.

    A single GET that selected them and got none means the mail has none (``()``); in a delta page, missing
    headers mean "not delivered here" (``None``), and ingestion reads the mail once more.
    """
    items = message.get("internetMessageHeaders")
    if not isinstance(items, list):
        return None if absent_means_none else ()
    return tuple(
        (_text(item.get("name")), _text(item.get("value"))) for item in items[:MAX_HEADERS] if isinstance(item, dict)
    )


def _message_class(message: dict[str, Any]) -> str:
    for prop in message.get("singleValueExtendedProperties") or ():
        if isinstance(prop, dict) and _text(prop.get("id")).lower() == MESSAGE_CLASS.lower():
            return _text(prop.get("value"))
    return ""


def to_mail_message(
    mailbox: str, message: dict[str, Any], attachments: tuple[MailAttachment, ...], *, from_delta: bool = False
) -> MailMessage:
    """A Graph message (JSON, as selected by :data:`MESSAGE_FIELDS`) as the parser's input."""
    sender = (message.get("from") or {}).get("emailAddress") or {}
    body = message.get("body") or {}
    flag = message.get("flag") or {}
    return MailMessage(
        mailbox=mailbox,
        message_id=_text(message.get("id")),
        subject=_text(message.get("subject")),
        sender_address=_text(sender.get("address")),
        sender_name=_text(sender.get("name")),
        body=_text(body.get("content")),
        body_type="html" if _text(body.get("contentType")).lower() == "html" else "text",
        received_at=_parse_time(message.get("receivedDateTime")),
        internet_message_id=message.get("internetMessageId") or None,
        web_link=message.get("webLink") or None,
        attachments=attachments,
        categories=tuple(c for c in message.get("categories") or () if isinstance(c, str)),
        flag_status=_text(flag.get("flagStatus")) or FlagStatus.NOT_FLAGGED.value,
        is_read=bool(message.get("isRead")),
        headers=_headers(message, absent_means_none=from_delta),
        message_class=_message_class(message),
    )


def _to_attachment(attachment: dict[str, Any]) -> MailAttachment:
    size = attachment.get("size")
    return MailAttachment(
        id=_text(attachment.get("id")),
        name=_text(attachment.get("name")),
        content_type=_text(attachment.get("contentType")),
        size=size if isinstance(size, int) else 0,
    )


def _stream_error(response: httpx.Response) -> APIError:
    error = APIError(f"Graph answered {response.status_code} for an attachment's content")
    error.response_status_code = response.status_code
    error.response_headers = dict(response.headers)
    return error


class GraphMailboxes:
    """The :class:`bot.core.ingest.MailReader` and flag writer over Graph."""

    def __init__(self, client: GraphServiceClient) -> None:
        self._client = client
        self._slots: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(MAILBOX_CONCURRENCY))

    async def _call(self, mailbox: str, request: Callable[[], Awaitable[T]]) -> T:
        async with self._slots[mailbox.lower()]:
            try:
                return await request()
            except Exception as exc:
                raise_mapped(exc)

    def _message(self, mailbox: str, message_id: str) -> MessageItemRequestBuilder:
        return self._client.users.by_user_id(mailbox).messages.by_message_id(message_id)

    async def _get_json(self, mailbox: str, request: RequestInformation) -> dict[str, Any]:
        """GET through msgraph-sdk's request adapter (auth, middleware, errors as ``ODataError``), read as JSON.

        msgraph-sdk's model deserialiser costs milliseconds per message (kiota builds the field table of the whole
        entity hierarchy for every object), seconds for a delta page of 1,000, all on the event loop: the few
        fields the parser needs are read from the JSON instead.
        """
        adapter = self._client.request_adapter
        raw: Any = await self._call(mailbox, lambda: adapter.send_primitive_async(request, "bytes", _ERRORS))  # type: ignore[func-returns-value]  # kiota's stub says None; "bytes" returns the body
        decoded: Any = json.loads(raw) if raw else {}
        return decoded if isinstance(decoded, dict) else {}

    async def get_message(self, mailbox: str, message_id: str) -> MailMessage | None:
        query = MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(
            select=MESSAGE_FIELDS, expand=MESSAGE_EXPAND
        )
        request = self._message(mailbox, message_id).to_get_request_information(request_config(query))
        try:
            message = await self._get_json(mailbox, request)
        except Exception as exc:
            if graph_status(exc) == 404:
                return None
            raise
        if not message.get("id"):
            return None
        return to_mail_message(mailbox, message, await self._attachments(mailbox, message))

    async def _attachments(self, mailbox: str, message: dict[str, Any]) -> tuple[MailAttachment, ...]:
        if not message.get("hasAttachments") or not message.get("id"):
            return ()
        query = AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters(select=ATTACHMENT_FIELDS)
        builder = self._message(mailbox, str(message["id"])).attachments
        response = await self._get_json(mailbox, builder.to_get_request_information(request_config(query)))
        items = response.get("value") or []
        return tuple(_to_attachment(item) for item in items if isinstance(item, dict) and not item.get("isInline"))

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
        """Pages from ``delta_link`` (the whole Inbox when None); the next page is fetched while the caller stores
        the current one."""
        fetching = asyncio.create_task(self._delta_page(mailbox, delta_link))
        try:
            while True:
                page, next_link = await fetching
                if next_link:
                    fetching = asyncio.create_task(self._delta_page(mailbox, next_link))
                yield page
                if not next_link:
                    return
        finally:
            if not fetching.done():
                fetching.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fetching

    async def _delta_page(self, mailbox: str, url: str | None) -> tuple[DeltaPage, str | None]:
        """One delta page and the link to the next one (None on the last page, which carries the deltaLink)."""
        builder = self._client.users.by_user_id(mailbox).mail_folders.by_mail_folder_id("inbox").messages.delta
        query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=MESSAGE_FIELDS, expand=MESSAGE_EXPAND)
        # msgraph-sdk's PageIterator loses the deltaLink: page by hand with with_url.
        current = builder.with_url(url) if url else builder
        request = current.to_get_request_information(request_config(None if url else query, page_size=DELTA_PAGE_SIZE))
        try:
            response = await self._get_json(mailbox, request)
        except Exception as exc:
            if graph_status(exc) == 410:
                raise DeltaExpired(f"Graph no longer knows the delta state of {mailbox}") from exc
            raise
        values = [m for m in response.get("value") or [] if isinstance(m, dict) and m.get("id")]
        present = [m for m in values if "@removed" not in m]
        # Attachment metadata (voicemails) is one request per such mail; they run side by side, within the
        # mailbox's concurrency limit.
        attachments = await asyncio.gather(*(self._attachments(mailbox, m) for m in present))
        messages = [
            to_mail_message(mailbox, m, found, from_delta=True) for m, found in zip(present, attachments, strict=True)
        ]
        next_link = response.get("@odata.nextLink") or None
        page = DeltaPage(messages, delta_link=response.get("@odata.deltaLink"), next_link=next_link)
        return page, next_link

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
        await self._patch(mailbox, message_id, patch)

    async def _patch(self, mailbox: str, message_id: str, changes: Message) -> None:
        """PATCH without reading the message Graph sends back (see :meth:`_get_json` for why)."""
        request = self._message(mailbox, message_id).to_patch_request_information(changes)
        adapter = self._client.request_adapter
        await self._call(mailbox, lambda: adapter.send_no_response_content_async(request, _ERRORS))

    async def _categories_with(self, mailbox: str, message_id: str, update: MailUpdate) -> list[str]:
        """The mail's categories with the bot's own (prefixed) replaced; the team's own categories stay untouched."""
        query = MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(select=["categories"])
        request = self._message(mailbox, message_id).to_get_request_information(request_config(query))
        current = (await self._get_json(mailbox, request)).get("categories") or []
        theirs = [c for c in current if isinstance(c, str)]
        return [c for c in theirs if not c.startswith(update.category_prefix)] + list(update.own_categories or ())
