"""Voicemail access for members only: a click on "Anhören" gets a fresh, short-lived, single-use link.

The card carries no link, only an ``Action.Execute`` (``listen``). The click arrives with the member's Entra
identity; :class:`bot.core.actions.CardActions` checks that they belong to the line's team and answers with a link from
:meth:`VoicemailAccess.issue`: a random token (only its hash is stored) bound to that case, that recording and that
user, valid for ``VOICEMAIL_LINK_MINUTES`` and playable once. ``GET /voicemail/{token}`` redeems it and streams the
attachment from Graph in chunks, so memory stays flat however long the recording is. Every play is logged with the
user's object id and the case, never the caller's number.

Cards posted before this carried an HMAC-signed link (``v1.``) that played for anyone for 30 days. Such a link now
plays nothing: its click re-renders the case's card (which then has the ``listen`` button) and says so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

from bot.config import Settings
from bot.core.ports import Store, VoicemailGrant
from bot.domain.cases import Case

log = logging.getLogger(__name__)

VOICEMAIL_PATH = "/voicemail/{token}"
_TOKEN_PREFIX = "v2."
LEGACY_VERSION = "v1"
_LEGACY_KEY_LABEL = b"rufpool voicemail links v1"


@dataclass(frozen=True, slots=True)
class VoicemailRef:
    mailbox: str
    message_id: str
    attachment_id: str


class InvalidLink(Exception):
    """The old-style token is malformed or its signature does not match."""


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class LegacyVoicemailLinks:
    """Recognises the signed links of cards posted before member-only access, to send their click to the card."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the voicemail link key must be at least 32 bytes")
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> LegacyVoicemailLinks | None:
        """The key those links were signed with (derived from every configured secret); None without secrets."""
        secrets_in_use = [
            settings.app_password.get_secret_value(),
            settings.graph_client_secret.get_secret_value(),
            settings.graph_client_state.get_secret_value(),
        ]
        if not any(secrets_in_use):
            return None
        material = b"\x00".join(secret.encode("utf-8") for secret in secrets_in_use)
        return cls(hmac.new(_LEGACY_KEY_LABEL, material, hashlib.sha256).digest())

    def signature(self, payload: str) -> str:
        digest = hmac.new(self._key, f"{LEGACY_VERSION}.{payload}".encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, token: str) -> VoicemailRef:
        """The mail an old link pointed at (its 30-day expiry no longer matters: it plays nothing any more)."""
        version, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if version != LEGACY_VERSION or not payload or not signature:
            raise InvalidLink("malformed link")
        if not hmac.compare_digest(signature, self.signature(payload)):
            raise InvalidLink("invalid signature")
        try:
            mailbox, message_id, attachment_id, _expires = json.loads(_b64decode(payload))
        except (ValueError, TypeError, binascii.Error) as error:
            raise InvalidLink("malformed link") from error
        if not all(isinstance(value, str) for value in (mailbox, message_id, attachment_id)):
            raise InvalidLink("malformed link")
        return VoicemailRef(mailbox, message_id, attachment_id)


class LinkRefused(Exception):
    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class VoicemailAccess:
    """Issues and redeems the single-use links; ``clock`` returns an aware UTC datetime."""

    def __init__(
        self,
        store: Store,
        public_base_url: str,
        lifetime: timedelta,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._base_url = public_base_url.rstrip("/")
        self.lifetime = lifetime
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> VoicemailAccess:
        return cls(store, settings.public_base_url, timedelta(minutes=settings.voicemail_link_minutes))

    async def issue(self, case: Case, source_id: str, user_id: str) -> str:
        """A fresh link to the recording of event ``source_id`` for ``user_id`` (whose membership is checked)."""
        now = self._clock()
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        grant = VoicemailGrant(case.id, source_id, user_id, now + self.lifetime)
        await self._store.privacy.issue_voicemail_link(grant, token_hash(token), now)
        log.info("voicemail link issued: case %s for %s", case.id[:8], user_id)
        return f"{self._base_url}{VOICEMAIL_PATH.format(token=token)}"

    async def redeem(self, token: str) -> VoicemailGrant:
        """The grant of a link used for the first time before it expired; :class:`LinkRefused` otherwise."""
        if not token.startswith(_TOKEN_PREFIX) or len(token) > 128:
            raise LinkRefused(HTTPStatus.FORBIDDEN, "invalid link")
        redemption = await self._store.privacy.redeem_voicemail_link(token_hash(token), self._clock())
        if redemption.grant is not None:
            return redemption.grant
        status = HTTPStatus.FORBIDDEN if redemption.refusal == "unknown link" else HTTPStatus.GONE
        raise LinkRefused(status, f"{redemption.refusal}: click Anhören on the card for a new one")
