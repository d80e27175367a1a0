"""Voicemail access for members only, against the real app: a click on "Anhören" checks membership and answers with
a fresh single-use link valid for minutes; the route streams the attachment from Graph in chunks."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import load_settings
from bot.core.voicemail import LegacyVoicemailLinks, VoicemailAccess, VoicemailRef
from bot.web.voicemail import CHUNK_SIZE
from tests.support.bot_stack import POOL_MAILBOX, TEAM_ID, BotStack, user
from tests.support.teams import card_json, deliver_voicemail, invoke_card, the_card

AUDIO = b"ID3\x04\x00fake mp3 frames" * 40
CALLER = "0171 2345678"
CALLER_E164 = "+491712345678"
MEMBER = user(0)


async def voicemail_card(stack: BotStack, audio: bytes = AUDIO) -> tuple[Any, dict[str, Any]]:
    """Link, deliver a voicemail, make ``MEMBER`` a member of the team: the card and its listen button's data."""
    await stack.link()
    stack.connector.set_members(TEAM_ID, [MEMBER])
    deliver_voicemail(stack, CALLER, audio)
    await stack.settle()
    card = the_card(stack)
    return card, listen_data(card_json(card.current))


def listen_data(card: dict[str, Any]) -> dict[str, Any]:
    """The data of the card's "Anhören" (an ``Action.Execute`` in an ActionSet under the call history)."""
    found = [
        action["data"]
        for block in card["body"]
        if block.get("type") == "ActionSet"
        for action in block["actions"]
        if action.get("verb") == "listen"
    ]
    assert len(found) == 1, card
    return dict(found[0])


def open_url(card: dict[str, Any]) -> str:
    urls = [
        action["url"]
        for block in card["body"]
        if block.get("type") == "ActionSet"
        for action in block["actions"]
        if action["type"] == "Action.OpenUrl"
    ]
    assert len(urls) == 1, card
    return str(urls[0])


async def listen(stack: BotStack, card: Any, data: dict[str, Any], who: dict[str, str] = MEMBER) -> dict[str, Any]:
    return await stack.click("listen", data, who, card.conversation_id, card.activity_id)


async def test_the_card_carries_no_link_only_the_listen_click(bot_stack: BotStack) -> None:
    card, data = await voicemail_card(bot_stack)

    assert "/voicemail/" not in json.dumps(card.current)
    assert set(data) >= {"case_id", "event"}


async def test_a_member_gets_a_fresh_link_that_plays_once(
    bot_stack: BotStack, caplog: pytest.LogCaptureFixture
) -> None:
    card, data = await voicemail_card(bot_stack)
    caplog.set_level(logging.INFO)

    answer = invoke_card(await listen(bot_stack, card, data))
    url = open_url(answer)
    assert url.startswith(f"{bot_stack.bot_url}/voicemail/v2.")
    assert any("gilt 15 Minuten und spielt einmal" in json.dumps(block) for block in answer["body"])

    async with bot_stack.http.head(url) as probe:  # a link checker's HEAD does not use the link up
        assert probe.status == 405
    async with bot_stack.http.get(url) as first:
        assert first.status == 200
        assert first.headers["Content-Type"] == "audio/mpeg"
        assert first.headers["Cache-Control"] == "private, no-store"
        assert await first.read() == AUDIO
    async with bot_stack.http.get(url) as again:
        assert again.status == 410
        assert "link already used" in (await again.json())["error"]

    # Every play is logged with who and which case, never the number.
    played = [r.getMessage() for r in caplog.records if r.getMessage().startswith("voicemail played")]
    assert played == [f"voicemail played: case {data['case_id'][:8]} by {MEMBER['aadObjectId']}"]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert CALLER_E164 not in everything and "2345678" not in everything
    # The card in the channel still has no link: the answer updated only the clicker's view.
    assert "/voicemail/" not in json.dumps(the_card(bot_stack).current)


async def test_each_click_gets_its_own_link(bot_stack: BotStack) -> None:
    card, data = await voicemail_card(bot_stack)

    first = open_url(invoke_card(await listen(bot_stack, card, data)))
    second = open_url(invoke_card(await listen(bot_stack, card, data)))

    assert first != second
    async with bot_stack.http.get(second) as response:
        assert response.status == 200


async def test_a_non_member_gets_no_link(bot_stack: BotStack) -> None:
    card, data = await voicemail_card(bot_stack)
    outsider = user(3)  # sees the channel's card (e.g. removed from the team since), is not a member

    answer = await listen(bot_stack, card, data, outsider)

    assert answer["statusCode"] == 403
    assert "/voicemail/" not in json.dumps(answer)


async def test_a_link_expires_after_its_lifetime(bot_stack: BotStack) -> None:
    _, data = await voicemail_card(bot_stack)
    store = bot_stack.services.store
    case = await store.cases.get(data["case_id"])
    assert case is not None
    sixteen_minutes_ago = VoicemailAccess(
        store, bot_stack.bot_url, timedelta(minutes=15), clock=lambda: datetime.now(UTC) - timedelta(minutes=16)
    )
    url = await sixteen_minutes_ago.issue(case, data["event"], MEMBER["aadObjectId"])

    async with bot_stack.http.get(url) as response:
        assert response.status == 410
        assert "link expired" in (await response.json())["error"]


async def test_a_made_up_or_tampered_link_is_refused(bot_stack: BotStack) -> None:
    card, data = await voicemail_card(bot_stack)
    url = open_url(invoke_card(await listen(bot_stack, card, data)))

    for wrong in (url[:-4] + ("abcd" if not url.endswith("abcd") else "wxyz"), f"{bot_stack.bot_url}/voicemail/x"):
        async with bot_stack.http.get(wrong) as response:
            assert response.status == 403, wrong
    async with bot_stack.http.get(url) as response:  # the genuine link still plays: a wrong guess burns nothing
        assert response.status == 200


def legacy_url(stack: BotStack, ref: VoicemailRef, expires: datetime) -> str:
    """The link cards carried before member-only access: signed, playable by anyone for 30 days."""
    legacy = LegacyVoicemailLinks.from_settings(stack.settings)
    assert legacy is not None
    body = json.dumps([ref.mailbox, ref.message_id, ref.attachment_id, int(expires.timestamp())])
    payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()
    return f"{stack.bot_url}/voicemail/v1.{payload}.{legacy.signature(payload)}"


async def test_an_old_cards_link_plays_nothing_and_brings_the_listen_button(bot_stack: BotStack) -> None:
    card, data = await voicemail_card(bot_stack)
    case = await bot_stack.services.store.cases.get(data["case_id"])
    assert case is not None and case.events[0].voicemail is not None
    ref = VoicemailRef(POOL_MAILBOX, case.events[0].mail.message_id, case.events[0].voicemail.attachment_id)
    versions_before = len(card.versions)

    async with bot_stack.http.get(legacy_url(bot_stack, ref, datetime.now(UTC) + timedelta(days=20))) as response:
        assert response.status == 410
        assert "click Anhören" in (await response.json())["error"]
        assert await response.read() != AUDIO
    await bot_stack.settle()

    refreshed = the_card(bot_stack)
    assert len(refreshed.versions) == versions_before + 1  # the old card was replaced by the current one
    assert listen_data(card_json(refreshed.current)) == data
    forged = legacy_url(bot_stack, ref, datetime.now(UTC)).replace("/voicemail/v1.", "/voicemail/v1.e")
    async with bot_stack.http.get(forged) as response:
        assert response.status == 403


async def test_the_audio_is_streamed_from_graph_in_chunks(bot_stack: BotStack) -> None:
    audio = bytes(range(256)) * 4096 * 3  # 3 MiB
    _, data = await voicemail_card(bot_stack, audio)
    case = await bot_stack.services.store.cases.get(data["case_id"])
    assert case is not None and case.events[0].voicemail is not None
    event = case.events[0]
    assert event.voicemail is not None

    sizes: list[int] = []
    received = bytearray()
    mailboxes = bot_stack.services.mailboxes
    async with mailboxes.attachment_stream(
        POOL_MAILBOX, event.mail.message_id, event.voicemail.attachment_id, CHUNK_SIZE
    ) as stream:
        assert stream is not None and stream.content_type == "audio/mpeg"
        async for chunk in stream.chunks:
            sizes.append(len(chunk))
            received += chunk

    assert bytes(received) == audio
    assert len(sizes) >= len(audio) // CHUNK_SIZE and max(sizes) <= CHUNK_SIZE
    # Graph was asked for the metadata without contentBytes, then for the raw bytes (/$value).
    reads = [r for r in bot_stack.graph.requests if "/attachments/" in r.path and r.method == "GET"]
    assert [r.path.endswith("/$value") for r in reads][-2:] == [False, True]
    assert "contentBytes" not in reads[-2].query.get("$select", "contentBytes")


async def test_a_voicemail_gone_from_outlook_is_404(bot_stack: BotStack) -> None:
    card, data = await voicemail_card(bot_stack)
    case = await bot_stack.services.store.cases.get(data["case_id"])
    assert case is not None
    bot_stack.graph.delete_message(POOL_MAILBOX, case.events[0].mail.message_id)
    url = open_url(invoke_card(await listen(bot_stack, card, data)))

    async with bot_stack.http.get(url) as response:
        assert response.status == 404


def test_the_link_lifetime_is_configurable() -> None:
    settings = load_settings(_env_file=None, sandbox_mode=True, voicemail_link_minutes="5")

    assert VoicemailAccess.from_settings(settings, store=None).lifetime == timedelta(minutes=5)  # type: ignore[arg-type]
