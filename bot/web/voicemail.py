"""The voicemail link's endpoint: redeems a single-use link and streams the recording from the mailbox."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from bot.core import effects
from bot.core.jobs import failure_status
from bot.core.ports import AttachmentSource, Store
from bot.core.values import AudioStream
from bot.core.voicemail import LEGACY_VERSION, InvalidLink, LegacyVoicemailLinks, LinkRefused, VoicemailAccess

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
"""Bytes read from Graph and written to the listener at a time: the bound on the memory one play needs."""


_REFUSALS: dict[HTTPStatus, type[web.HTTPException]] = {
    HTTPStatus.FORBIDDEN: web.HTTPForbidden,
    HTTPStatus.NOT_FOUND: web.HTTPNotFound,
    HTTPStatus.GONE: web.HTTPGone,
    HTTPStatus.BAD_GATEWAY: web.HTTPBadGateway,
}


def _refusal(status: HTTPStatus, reason: str) -> web.HTTPException:
    return _REFUSALS[status](text=json.dumps({"error": reason}), content_type="application/json")


def voicemail_handler(
    access: VoicemailAccess, legacy: LegacyVoicemailLinks | None, store: Store, attachments: AttachmentSource
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``GET /voicemail/{token}``: the audio once per link; 403 unknown, 410 used or expired, 404 gone from Outlook."""

    async def old_card_link(token: str) -> web.HTTPException:
        if legacy is None:
            return _refusal(HTTPStatus.FORBIDDEN, "invalid link")
        try:
            ref = legacy.verify(token)
        except InvalidLink as error:
            return _refusal(HTTPStatus.FORBIDDEN, str(error))
        case = await store.cases.find_by_message(ref.mailbox, ref.message_id)
        card = await store.cards.get_card(case.id) if case is not None else None
        if card is not None:
            # The card is current by version but was rendered with a link: render it again (with "Anhören").
            await store.jobs.add([effects.RefreshCard(card.case_id, redraw=True)])
        return _refusal(
            HTTPStatus.GONE,
            "voicemails now play for team members only: the card has been updated, click Anhören there for a link",
        )

    async def handle(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if token.startswith(f"{LEGACY_VERSION}."):
            raise await old_card_link(token)
        try:
            grant = await access.redeem(token)
        except LinkRefused as refused:
            log.info("voicemail link refused: %s", refused.reason.split(":")[0])
            raise _refusal(refused.status, refused.reason) from refused
        case = await store.cases.get(grant.case_id)
        event = next((e for e in case.events if e.source_id == grant.source_id), None) if case else None
        mail = event.mail if event is not None else None
        if case is None or event is None or event.voicemail is None or mail is None:
            raise _refusal(HTTPStatus.NOT_FOUND, "the voicemail has been deleted")
        log.info("voicemail played: case %s by %s", case.id[:8], grant.user_id)
        try:
            opened = attachments.attachment_stream(
                mail.mailbox, mail.message_id, event.voicemail.attachment_id, CHUNK_SIZE
            )
            async with opened as audio:
                if audio is None:
                    raise _refusal(HTTPStatus.NOT_FOUND, "the voicemail is no longer in the mailbox")
                return await _stream(request, audio)
        except web.HTTPException:
            raise
        except Exception as error:
            if failure_status(error) == 404:
                raise _refusal(HTTPStatus.NOT_FOUND, "the voicemail is no longer in the mailbox") from error
            log.warning("voicemail could not be fetched: %s", type(error).__name__)
            raise _refusal(HTTPStatus.BAD_GATEWAY, "the mailbox is not reachable right now") from error

    return handle


async def _stream(request: web.Request, audio: AudioStream) -> web.StreamResponse:
    # The sender of the mail chose the content type: play audio inline, hand anything else out as a download.
    playable = audio.content_type.lower().startswith("audio/")
    headers = {
        "Content-Type": audio.content_type if playable else "application/octet-stream",
        "Content-Disposition": "inline" if playable else "attachment",
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Referrer-Policy": "no-referrer",
    }
    if audio.length is not None:
        headers["Content-Length"] = str(audio.length)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    async for chunk in audio.chunks:
        await response.write(chunk)  # waits while the listener's socket buffer is full: memory stays bounded
    await response.write_eof()
    return response
