"""Voicemail "listen" links: signed, expiring tokens, and the bot route that streams the audio from Graph."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest

from bot.voicemail import ExpiredLink, InvalidLink, VoicemailLinks, VoicemailRef
from tests.e2e_fixtures import BotStack
from tests.teams_fixtures import card_json, card_texts, deliver_voicemail, the_card

KEY = b"k" * 32
REF = VoicemailRef("zentrale@praxis.example", "AAMkAD-message=", "att-1")
AUDIO = b"ID3\x04\x00fake mp3 frames" * 40


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_round_trips_until_it_expires() -> None:
    clock = Clock()
    links = VoicemailLinks(KEY, "https://bot.example/", lifetime=timedelta(days=1), clock=clock)
    url = links.url(REF)
    assert url.startswith("https://bot.example/voicemail/v1.")
    token = url.rsplit("/", 1)[1]
    assert links.verify(token) == REF

    clock.now += 86_400
    with pytest.raises(ExpiredLink):
        links.verify(token)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature
        lambda token: token.replace(".", ".e", 1),  # payload
        lambda token: "v2" + token[2:],  # version
        lambda token: token.split(".")[0],  # truncated
        lambda token: "",
    ],
    ids=["signature", "payload", "version", "truncated", "empty"],
)
def test_a_tampered_token_is_invalid(tamper: object) -> None:
    links = VoicemailLinks(KEY, "https://bot.example")
    token = links.token(REF)
    with pytest.raises(InvalidLink):
        links.verify(tamper(token))  # type: ignore[operator]


def test_a_token_of_another_key_is_invalid() -> None:
    token = VoicemailLinks(b"x" * 32, "https://bot.example").token(REF)
    with pytest.raises(InvalidLink, match="signature"):
        VoicemailLinks(KEY, "https://bot.example").verify(token)
    with pytest.raises(ValueError):
        VoicemailLinks(b"short", "https://bot.example")


async def test_the_cards_listen_link_streams_the_voicemail(bot_stack: BotStack) -> None:
    await bot_stack.link()
    deliver_voicemail(bot_stack, "0171 2345678", AUDIO)
    await bot_stack.settle()

    shown = "\n".join(card_texts(card_json(the_card(bot_stack).current)))
    match = re.search(r"\[Anhören\]\((\S+?)\)", shown)
    assert match is not None, shown
    url = match.group(1)
    assert url.startswith(f"{bot_stack.bot_url}/voicemail/")

    async with bot_stack.http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/mpeg"
        assert response.headers["Cache-Control"] == "private, no-store"
        assert await response.read() == AUDIO

    tampered = url[:-3] + ("xyz" if not url.endswith("xyz") else "abc")
    async with bot_stack.http.get(tampered) as response:
        assert response.status == 403
        assert (await response.json()) == {"error": "invalid signature"}


async def test_an_expired_link_is_gone_and_a_missing_mail_not_found(bot_stack: BotStack) -> None:
    message_id = deliver_voicemail(bot_stack, "0171 2345678", AUDIO)
    await bot_stack.settle()
    case = (await bot_stack.services.store.cases.list_active(["zentrale"]))[0][0]
    event = case.events[0]
    assert event.voicemail is not None and event.mail.message_id == message_id
    ref = VoicemailRef(event.mail.mailbox, message_id, event.voicemail.attachment_id)

    old = VoicemailLinks.from_settings(bot_stack.settings, clock=lambda: time.time() - 31 * 86_400)
    assert old is not None
    async with bot_stack.http.get(old.url(ref)) as response:
        assert response.status == 410
        assert "link expired" in (await response.json())["error"]

    current = VoicemailLinks.from_settings(bot_stack.settings)
    assert current is not None
    async with bot_stack.http.get(current.url(VoicemailRef(ref.mailbox, ref.message_id, "no-such-attachment"))) as gone:
        assert gone.status == 404
