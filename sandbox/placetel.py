"""A Placetel stand-in: the call webhooks of its Notify API, signed, as scripted call sequences.

Placetel POSTs each call event form-encoded with ``X-PLACETEL-SIGNATURE`` (hex HMAC-SHA256 of the raw body with
the shared secret). Numbers are national digits without spaces (``0301234500``), a withheld caller is
``anonymous``, ``call_id`` is a hex SHA-256. The scripts send the events of one call in Placetel's order:

- a missed call or voicemail: ``IncomingCall``, then ``HungUp`` (``type`` missed / voicemail, ``duration`` 0);
- a callback: ``OutgoingCall`` (``peer`` = the SIP user), then ``HungUp`` with ``direction=out`` and ``type``
  accepted (with the talk time) or busy / canceled / unavailable;
- a caller who calls again and is answered: ``IncomingCall``, ``CallAccepted``, ``HungUp`` accepted.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp
import phonenumbers

from bot.placetel.notify import SIGNATURE_HEADER, signature

Fields = Mapping[str, str | int]


def placetel_number(number: str) -> str:
    """``+49 30 1234500`` → ``0301234500``, as the webhook spells numbers; ``anonymous`` and SIP ids stay."""
    try:
        parsed = phonenumbers.parse(number, "DE")
    except phonenumbers.NumberParseException:
        return number
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(ch for ch in national if ch.isdigit())


def new_call_id() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


@dataclass(frozen=True)
class Sent:
    """One webhook request the stand-in sent, and the answer."""

    fields: Mapping[str, str | int]
    status: int
    answer: str


@dataclass
class PlacetelStandIn:
    """Sends signed call events to ``notify_url`` with ``secret``; ``sent`` records every request."""

    http: aiohttp.ClientSession
    notify_url: str
    secret: str
    sent: list[Sent] = field(default_factory=list)

    async def post(
        self, fields: Fields, *, as_json: bool = False, secret: str | None = None, sign: bool = True
    ) -> Sent:
        """One event, form-encoded (Placetel's way) or as JSON (REST-API subscriptions)."""
        if as_json:
            body, content_type = json.dumps(dict(fields)).encode(), "application/json"
        else:
            body = urllib.parse.urlencode({key: str(value) for key, value in fields.items()}).encode()
            content_type = "application/x-www-form-urlencoded"
        return await self.post_raw(body, content_type, signature(secret or self.secret, body) if sign else None)

    async def post_raw(self, body: bytes, content_type: str, signature_hex: str | None) -> Sent:
        headers = {"Content-Type": content_type}
        if signature_hex is not None:
            headers[SIGNATURE_HEADER] = signature_hex
        async with self.http.post(self.notify_url, data=body, headers=headers) as response:
            sent = Sent(
                dict(urllib.parse.parse_qsl(body.decode(errors="replace"))), response.status, await response.text()
            )
        self.sent.append(sent)
        return sent

    async def _script(self, events: Sequence[Fields]) -> None:
        for fields in events:
            sent = await self.post(fields)
            if sent.status >= 300:
                raise RuntimeError(f"the bot refused {fields.get('event')}: {sent.status} {sent.answer}")

    # Scripted calls -------------------------------------------------------------------------------------------

    @staticmethod
    def missed_call_events(
        caller: str, line_number: str, *, voicemail: bool = False, call_id: str = ""
    ) -> list[Fields]:
        call_id = call_id or new_call_id()
        common = {"call_id": call_id, "from": placetel_number(caller), "to": placetel_number(line_number)}
        return [
            {"event": "IncomingCall", **common, "direction": "in"},
            {
                "event": "HungUp",
                **common,
                "direction": "in",
                "type": "voicemail" if voicemail else "missed",
                "duration": 0,
            },
        ]

    async def missed_call(self, caller: str, line_number: str, *, voicemail: bool = False) -> str:
        """A caller rang the pool line and nobody answered (or they left a voicemail); returns the call id."""
        events = self.missed_call_events(caller, line_number, voicemail=voicemail)
        await self._script(events)
        return str(events[0]["call_id"])

    @staticmethod
    def callback_events(
        line_number: str, callee: str, *, peer: str, reached: bool, talk_seconds: int = 135, call_id: str = ""
    ) -> list[Fields]:
        call_id = call_id or new_call_id()
        common = {"call_id": call_id, "from": placetel_number(line_number), "to": placetel_number(callee)}
        hung_up: dict[str, str | int] = {"event": "HungUp", **common, "direction": "out"}
        hung_up |= {"type": "accepted", "duration": talk_seconds} if reached else {"type": "busy", "duration": 0}
        return [{"event": "OutgoingCall", **common, "direction": "out", "peer": peer}, hung_up]

    async def callback(
        self, line_number: str, callee: str, *, peer: str, reached: bool, talk_seconds: int = 135
    ) -> str:
        """Someone of the team (SIP user ``peer``) called ``callee`` from the pool line; returns the call id."""
        events = self.callback_events(line_number, callee, peer=peer, reached=reached, talk_seconds=talk_seconds)
        await self._script(events)
        return str(events[0]["call_id"])

    async def caller_reached(self, caller: str, line_number: str, *, peer: str, talk_seconds: int = 60) -> str:
        """The caller rang again and someone answered; returns the call id."""
        call_id = new_call_id()
        common = {"call_id": call_id, "from": placetel_number(caller), "to": placetel_number(line_number)}
        await self._script(
            [
                {"event": "IncomingCall", **common, "direction": "in"},
                {"event": "CallAccepted", **common, "direction": "in", "peer": peer},
                {"event": "HungUp", **common, "direction": "in", "type": "accepted", "duration": talk_seconds},
            ]
        )
        return call_id
