"""No second card after a POST whose outcome was lost: the next attempt finds the card in the channel and adopts it."""

from __future__ import annotations

from typing import Any

import pytest

from bot.storage.interface import CardRef
from tests.e2e_fixtures import TEAM_GROUP_ID, BotStack, user
from tests.teams_fixtures import action_data, badge, card_json, drain, invoke_card


@pytest.fixture
def bot_settings_overrides() -> dict[str, Any]:
    return {"outbox_retry_base_seconds": 0.1}


async def test_a_card_posted_before_the_process_died_is_adopted_not_posted_again(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    cards = bot_stack.services.store.cards
    save_card, failures = cards.save_card, []

    async def lost_after_the_post(card: CardRef) -> None:
        if not failures:  # Teams has the card; saving its id fails (the process dies here, say)
            failures.append(card)
            raise ConnectionError("the database went away")
        await save_card(card)

    monkeypatch.setattr(cards, "save_card", lost_after_the_post)
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await drain(bot_stack)

    assert len(failures) == 1
    [card] = bot_stack.channel_cards()  # one card: the retry found it in the channel
    saved = await cards.get_card(failures[0].case_id)
    assert saved is not None and saved.activity_id == card.activity_id
    assert saved.posted_version == failures[0].posted_version  # brought up to date after adopting it
    looked_up = [r for r in bot_stack.graph.requests if r.path.endswith("/messages") and TEAM_GROUP_ID in r.path]
    assert len(looked_up) == 1
    # The adopted card works: a click on it acts on the case.
    claimed = invoke_card(
        await bot_stack.click("claim", action_data(card_json(card.current), "claim"), user(0), card.conversation_id,
                              card.activity_id)
    )  # fmt: skip
    assert badge(claimed) == "In Bearbeitung – Anna Schmidt"


async def test_a_first_post_does_not_look_up_the_channel(bot_stack: BotStack) -> None:
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await drain(bot_stack)

    assert len(bot_stack.channel_cards()) == 1
    assert not [r for r in bot_stack.graph.requests if r.path.endswith("/messages") and "/teams/" in r.path]
