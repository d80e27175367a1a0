"""``@Rufpool statistik`` through the connector stand-in, in a channel and in personal chat, with its chart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.effects import no_effects
from bot.domain.cases import Actor
from bot.domain.state_machine import Verb
from tests.support.bot_stack import CHANNEL_ID, OTHER_CHANNEL_ID, TEAM_ID, BotStack, user
from tests.support.cards import card_texts
from tests.support.commands import PERSONAL_CHAT, last_reply_card, seed_cases

ANNA, BEN = user(0), user(1)


async def seeded(stack: BotStack) -> None:
    await stack.link()
    cases = await seed_cases(stack, 3)
    now = datetime.now(UTC)
    outcome = await stack.services.store.cases.transition(
        cases[0].id,
        Verb.CLAIM,
        Actor(ANNA["aadObjectId"], ANNA["name"]),
        now,
        stack.services.actions.claim_timeout,
        effects=no_effects,
    )
    assert outcome.applied


@pytest.mark.parametrize("command", ["@Rufpool statistik", "stats", "/statistik woche", "Statistik 30", "stats month"])
async def test_stats_in_the_channel(bot_stack: BotStack, command: str) -> None:
    await seeded(bot_stack)
    assert await bot_stack.message(command, ANNA, CHANNEL_ID) < 300
    card = last_reply_card(bot_stack, CHANNEL_ID)
    shown = card_texts(card)
    assert "Statistik – Zentrale" in shown
    assert "Anrufe: 3" in shown and "Fälle: 3" in shown
    assert ANNA["name"] in shown and "Deine Zahlen" not in shown
    [image] = [e for e in card["body"] if e.get("type") == "Image"]
    response = await bot_stack.http.get(image["url"])
    assert response.status == 200 and response.content_type == "image/png"


async def test_stats_in_personal_chat_shows_the_users_numbers_and_their_lines(bot_stack: BotStack) -> None:
    await seeded(bot_stack)
    bot_stack.connector.set_members(TEAM_ID, [ANNA])
    assert await bot_stack.message("statistik", ANNA, PERSONAL_CHAT) < 300
    shown = card_texts(last_reply_card(bot_stack, PERSONAL_CHAT))
    assert "Deine Zahlen" in shown and "1 übernommen" in shown and "Anrufe: 3" in shown

    outsider_chat = "a:1personal-chat-of-an-outsider"
    bot_stack.connector.set_members(outsider_chat, [BEN])
    assert await bot_stack.message("stats", BEN, outsider_chat) < 300
    assert "keine Leitung verbunden" in card_texts(last_reply_card(bot_stack, outsider_chat))


async def test_a_channel_without_a_line_and_a_bad_period(bot_stack: BotStack) -> None:
    await seeded(bot_stack)
    assert await bot_stack.message("statistik", ANNA, OTHER_CHANNEL_ID) < 300
    assert "keine Leitung verbunden" in card_texts(last_reply_card(bot_stack, OTHER_CHANNEL_ID))
    assert await bot_stack.message("statistik gestern", ANNA, CHANNEL_ID) < 300
    reply = bot_stack.connector.activities(CHANNEL_ID)[-1].current
    assert "nicht erkannt" in reply["text"]
