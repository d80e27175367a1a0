"""Voicemail links: the card's "listen" link points at the bot, which streams the mail's audio attachment.

Teams cannot play a Graph attachment directly and the person clicking has no Graph token, so the bot serves it:
``GET /voicemail/{token}``. The token is an HMAC-signed, expiring reference to (mailbox, message, attachment),
with a key derived from the configured secrets; it cannot be forged or pointed at another mail. Anyone holding an
unexpired link can listen, like a shared-mailbox member could: links are only ever posted into the line's channel.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from aiohttp import web

from bot.config import Settings
from bot.domain.cases import Case
from bot.graph.errors import graph_status

log = logging.getLogger(__name__)

VOICEMAIL_PATH = "/voicemail/{token}"
LINK_LIFETIME = timedelta(days=30)
_TOKEN_VERSION = "v1"
_KEY_LABEL = b"rufpool voicemail links v1"


class AttachmentSource(Protocol):
    """What the route needs from Graph (:class:`bot.graph.mailbox.GraphMailboxes`)."""

    async def attachment_bytes(self, mailbox: str, message_id: str, attachment_id: str) -> tuple[str, bytes] | None:
        """Content type and bytes of the attachment; None when it is not a file attachment."""


@dataclass(frozen=True, slots=True)
class VoicemailRef:
    mailbox: str
    message_id: str
    attachment_id: str


class InvalidLink(Exception):
    """The token is malformed or its signature does not match."""


class ExpiredLink(Exception):
    """The token was genuine but its lifetime is over."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VoicemailLinks:
    """Signs and checks voicemail tokens; ``clock`` returns epoch seconds."""

    def __init__(
        self, key: bytes, base_url: str, *, lifetime: timedelta = LINK_LIFETIME, clock: Callable[[], float] = time.time
    ) -> None:
        if len(key) < 32:
            raise ValueError("the voicemail link key must be at least 32 bytes")
        self._key = key
        self._base_url = base_url.rstrip("/")
        self._lifetime = lifetime
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> VoicemailLinks | None:
        """A key derived from every configured secret; None when none is configured (no links then)."""
        secrets = [
            settings.app_password.get_secret_value(),
            settings.graph_client_secret.get_secret_value(),
            settings.graph_client_state.get_secret_value(),
        ]
        if not any(secrets):
            return None
        material = b"\x00".join(secret.encode("utf-8") for secret in secrets)
        return cls(hmac.new(_KEY_LABEL, material, hashlib.sha256).digest(), settings.public_base_url, clock=clock)

    def _signature(self, payload: str) -> str:
        message = f"{_TOKEN_VERSION}.{payload}".encode("ascii")
        return _b64encode(hmac.new(self._key, message, hashlib.sha256).digest())

    def token(self, ref: VoicemailRef) -> str:
        expires = int(self._clock() + self._lifetime.total_seconds())
        body = json.dumps([ref.mailbox, ref.message_id, ref.attachment_id, expires], separators=(",", ":"))
        payload = _b64encode(body.encode("utf-8"))
        return f"{_TOKEN_VERSION}.{payload}.{self._signature(payload)}"

    def url(self, ref: VoicemailRef) -> str:
        return f"{self._base_url}{VOICEMAIL_PATH.format(token=self.token(ref))}"

    def verify(self, token: str) -> VoicemailRef:
        """The reference in a genuine, unexpired token; :class:`InvalidLink` or :class:`ExpiredLink` otherwise."""
        version, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if version != _TOKEN_VERSION or not payload or not signature:
            raise InvalidLink("malformed link")
        if not hmac.compare_digest(signature, self._signature(payload)):
            raise InvalidLink("invalid signature")
        try:
            mailbox, message_id, attachment_id, expires = json.loads(_b64decode(payload))
        except (ValueError, TypeError, binascii.Error) as error:
            raise InvalidLink("malformed link") from error
        if not isinstance(expires, int) or not all(isinstance(v, str) for v in (mailbox, message_id, attachment_id)):
            raise InvalidLink("malformed link")
        if self._clock() >= expires:
            raise ExpiredLink("link expired")
        return VoicemailRef(mailbox, message_id, attachment_id)

    def urls_for(self, case: Case) -> dict[str, str]:
        """Event source id → listen URL, for every voicemail of the case (the card builder's ``voicemail_urls``)."""
        return {
            event.source_id: self.url(VoicemailRef(mail.mailbox, mail.message_id, voicemail.attachment_id))
            for event in case.events
            if (voicemail := event.voicemail) is not None and (mail := event.mail) is not None
        }


def _refusal(status: type[web.HTTPException], reason: str) -> web.HTTPException:
    return status(text=json.dumps({"error": reason}), content_type="application/json")


def voicemail_handler(
    links: VoicemailLinks | None, attachments: AttachmentSource
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The ``GET /voicemail/{token}`` handler: 403 for a forged link, 410 for an expired one, else the audio."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if links is None:
            raise _refusal(web.HTTPNotFound, "voicemail links are not configured")
        try:
            ref = links.verify(request.match_info["token"])
        except ExpiredLink as error:
            raise _refusal(web.HTTPGone, f"{error}: open the mail in Outlook instead") from error
        except InvalidLink as error:
            log.info("voicemail link refused: %s", error)
            raise _refusal(web.HTTPForbidden, str(error)) from error
        try:
            found = await attachments.attachment_bytes(ref.mailbox, ref.message_id, ref.attachment_id)
        except Exception as error:
            if graph_status(error) == 404:
                raise _refusal(web.HTTPNotFound, "the voicemail is no longer in the mailbox") from error
            log.warning("voicemail could not be fetched: %s", type(error).__name__)
            raise _refusal(web.HTTPBadGateway, "the mailbox is not reachable right now") from error
        if found is None:
            raise _refusal(web.HTTPNotFound, "the voicemail is no longer in the mailbox")
        content_type, content = found
        # The sender of the mail chose the content type: play audio inline, hand anything else out as a download.
        audio = content_type.lower().startswith("audio/")
        response = web.StreamResponse(
            headers={
                "Content-Type": content_type if audio else "application/octet-stream",
                "Content-Length": str(len(content)),
                "Content-Disposition": "inline" if audio else "attachment",
                "Cache-Control": "private, no-store",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox; default-src 'none'",
            }
        )
        await response.prepare(request)
        await response.write(content)
        await response.write_eof()
        return response

    return handle
