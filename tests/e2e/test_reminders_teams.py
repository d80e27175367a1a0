"""Reminders through the production path: the bot on a fake clock, Teams and Graph stand-ins.

A missed call is posted as a card; time moves on; the thread gets a reminder that @mentions the line's tag, the card
turns "Fällig seit"; a claim older than its limit nudges the claimer; the morning overview lists the night's calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import create_app
from bot.domain.zone import BERLIN
from sandbox.connector import ConnectorStandIn
from sandbox.graph import GraphStandIn
from sandbox.identity import GRAPH_AUDIENCE, IdentityServer
from sandbox.tls import TlsMaterial
from tests.support.bot_stack import (
    OTHER_CHANNEL_ID,
    POOL_MAILBOX,
    POOL_NUMBER,
    BotStack,
    free_port,
    stack_settings,
    user,
)
from tests.support.cards import actions, card_texts
from tests.support.teams import card_json

TAG = {"id": "tag-empfang", "name": "Empfang"}
TUESDAY_10 = datetime(2030, 3, 12, 10, 0, tzinfo=BERLIN).astimezone(UTC)
"""The bot's fake clock starts here; mails carry fake received times (later than the real watch baseline)."""


def deliver(stack: BotStack, caller: str, at: datetime) -> str:
    message = stack.graph.deliver_mail(
        POOL_MAILBOX,
        f"Verpasster Anruf von '{caller}' auf '030 1234500'",
        "no-reply@placetel.de",
        f"Sie haben einen Anruf verpasst.\nVon: {caller}\nAn: 030 1234500\n",
        received=at,
    )
    return message.id


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def reminder_stack(
    request: pytest.FixtureRequest,
    identity_server: IdentityServer,
    sandbox_tls: TlsMaterial,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    connector: ConnectorStandIn,
) -> AsyncIterator[tuple[BotStack, FakeClock]]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox_tls.trust_bundle))
    graph = GraphStandIn(
        token_validator=identity_server.stand_in.token_validator(GRAPH_AUDIENCE), mailboxes=[POOL_MAILBOX]
    )
    await graph.start()
    port = free_port()
    line = {
        "id": "zentrale",
        "mailbox": POOL_MAILBOX,
        "numbers": [POOL_NUMBER],
        "display_name": "Zentrale",
        "hours": {"weekly": "Mo-Fr 08:00-18:00", "state": "BE"},
        "reminders": {"enabled": True, "tag": TAG, "escalate_after": 1, **getattr(request, "param", {})},
    }
    settings = stack_settings(identity_server, sandbox_tls, graph, tmp_path, port, pool_lines=[line])
    clock = FakeClock(TUESDAY_10)
    app = create_app(settings, clock=clock)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    http = aiohttp.ClientSession()
    stack = BotStack(
        identity_server, graph, connector, settings, runner, app, http, f"http://127.0.0.1:{port}", tmp_path
    )
    try:
        async with asyncio.timeout(30):
            while not graph.subscriptions():
                await asyncio.sleep(0.05)
        await stack.settle()
        await stack.link()
        await stack.settle()
        yield stack, clock
    finally:
        await http.close()
        await runner.cleanup()
        await graph.stop()


def thread_activities(stack: BotStack) -> list[dict[str, Any]]:
    """Every activity the bot sent into any card's thread (reminders, nudges), with its mentions and cards."""
    return [
        record.current
        for conversation_id, records in stack.connector.conversations.items()
        if ";messageid=" in conversation_id
        for record in records
        if record.operation != "create"
    ]


async def tick(stack: BotStack) -> None:
    await stack.services.reminders.tick()
    await stack.settle()


async def test_unclaimed_reminder_mentions_the_tag_and_marks_the_card_due(
    reminder_stack: tuple[BotStack, FakeClock],
) -> None:
    stack, clock = reminder_stack
    deliver(stack, "0171 2345678", TUESDAY_10)
    await stack.settle()
    [card] = stack.channel_cards()
    due = TUESDAY_10 + timedelta(minutes=30)
    clock.now = due - timedelta(seconds=5)
    await tick(stack)
    assert thread_activities(stack) == []
    clock.now = due + timedelta(minutes=15)
    await tick(stack)
    [reminder] = thread_activities(stack)
    assert "<at>Empfang</at>" in reminder["text"] and "45 Min." in reminder["text"]
    assert reminder["entities"] == [
        {
            "type": "mention",
            "text": "<at>Empfang</at>",
            "mentioned": {"id": TAG["id"], "name": "Empfang", "type": "tag"},
        }
    ]
    updated = card_texts(card_json(card.current))
    assert "Fällig seit" in updated and "wartet seit 45 Min." in updated
    for _ in range(3):
        await tick(stack)
    assert len(thread_activities(stack)) == 1


async def test_old_claim_nudges_the_claimer(reminder_stack: tuple[BotStack, FakeClock]) -> None:
    stack, clock = reminder_stack
    deliver(stack, "0171 7654321", TUESDAY_10)
    await stack.settle()
    [card] = stack.channel_cards()
    claim = next(action for action in _actions(card) if action.get("verb") == "claim")
    anna = user(0)
    await stack.click("claim", claim["data"], anna, card.conversation_id, card.activity_id)
    await stack.settle()
    clock.now = TUESDAY_10 + timedelta(minutes=121)
    await tick(stack)
    nudges = [reply for reply in thread_activities(stack) if "Freigeben" in reply.get("text", "")]
    assert len(nudges) == 1
    assert nudges[0]["entities"][0]["mentioned"]["id"] == anna["aadObjectId"]
    updated = card_texts(card_json(card.current))
    assert "Freigeben" in updated
    # The nudge itself carries a Freigeben button; the clicker gets a short confirmation, the case is open again.
    [release] = list(actions(card_json(nudges[0])))
    assert release["verb"] == "release" and release["title"] == "Freigeben"
    [nudge_record] = [
        record
        for records in stack.connector.conversations.values()
        for record in records
        if record.current is nudges[0]
    ]
    answer = await stack.click("release", release["data"], anna, card.conversation_id, nudge_record.activity_id)
    assert "Freigegeben – der Fall ist wieder offen." in card_texts(answer["value"])
    case = await stack.services.store.cases.get(release["data"]["case_id"])
    assert case is not None and case.state == "open"
    again = await stack.click("release", release["data"], anna, card.conversation_id, nudge_record.activity_id)
    assert "Niemand hat diesen Fall übernommen" in card_texts(again["value"])


async def test_morning_overview_lists_the_night(reminder_stack: tuple[BotStack, FakeClock]) -> None:
    stack, clock = reminder_stack
    evening = TUESDAY_10 + timedelta(hours=9)  # 19:00
    for minutes, number in ((0, "0171 1111111"), (45, "0171 2222222"), (600, "0171 3333333")):
        deliver(stack, number, evening + timedelta(minutes=minutes))
    clock.now = evening + timedelta(hours=11)  # Wednesday 06:00, closed
    await stack.settle()
    await tick(stack)
    assert len(stack.channel_cards()) == 3
    clock.now = TUESDAY_10 + timedelta(hours=22)  # Wednesday 08:00
    await tick(stack)
    overviews = [record for record in stack.channel_cards() if "Guten Morgen" in _texts(record)]
    assert len(overviews) == 1
    texts = _texts(overviews[0])
    assert "3 Anrufe seit 12.03.2030, 18:00" in texts
    assert texts.index("0171 1111111") < texts.index("0171 2222222") < texts.index("0171 3333333")
    claims = [action for action in _actions(overviews[0]) if action.get("verb") == "claim"]
    assert len(claims) == 3
    clock.now += timedelta(minutes=1)
    await tick(stack)
    assert len([r for r in stack.channel_cards() if "Guten Morgen" in _texts(r)]) == 1


def _texts(record: Any) -> str:
    return card_texts(card_json(record.current))


def _actions(record: Any) -> list[dict[str, Any]]:
    return list(actions(card_json(record.current)))


@pytest.mark.parametrize("reminder_stack", [{"escalate_to": {"channel_id": OTHER_CHANNEL_ID}}], indirect=True)
async def test_escalation_to_a_channel_posts_there_once(reminder_stack: tuple[BotStack, FakeClock]) -> None:
    stack, clock = reminder_stack
    deliver(stack, "0171 9999999", TUESDAY_10)
    await stack.settle()
    for minutes in (31, 61, 62, 120, 240):
        clock.now = TUESDAY_10 + timedelta(minutes=minutes)
        await tick(stack)
    [reminder] = thread_activities(stack)
    assert "<at>Empfang</at>" in reminder["text"]
    [escalation] = [record.current for record in stack.channel_cards(OTHER_CHANNEL_ID)]
    assert (
        "Eskalation" in escalation["text"] and "Zentrale" in escalation["text"] and "0171 9999999" in escalation["text"]
    )
    assert "1× erinnert, niemand hat übernommen" in escalation["text"]


async def test_claim_on_the_overview_answers_with_the_open_list(reminder_stack: tuple[BotStack, FakeClock]) -> None:
    stack, clock = reminder_stack
    deliver(stack, "0171 4444444", TUESDAY_10 + timedelta(hours=10))  # 20:00
    clock.now = TUESDAY_10 + timedelta(hours=22, minutes=5)
    await stack.settle()
    await tick(stack)
    [overview] = [record for record in stack.channel_cards() if "Guten Morgen" in _texts(record)]
    [claim] = [action for action in _actions(overview) if action.get("verb") == "claim"]
    anna = user(0)
    answer = await stack.click("claim", claim["data"], anna, overview.conversation_id, overview.activity_id)
    answered = card_texts(answer["value"])
    assert "Offene Rückrufe (1)" in answered and "Gespeichert" in answered
    case = await stack.services.store.cases.get(claim["data"]["case_id"])
    assert case is not None and case.claimed_by is not None and case.claimed_by.id == anna["aadObjectId"]
