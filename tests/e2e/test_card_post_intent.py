"""No second card after a POST whose outcome was lost: the next attempt finds the card in the channel and adopts it."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.ports import CardRef
from tests.support.bot_stack import TEAM_GROUP_ID, BotStack, user
from tests.support.teams import action_data, badge, card_json, invoke_card


@pytest.fixture
def bot_settings_overrides() -> dict[str, Any]:
    return {"outbox_retry_base_seconds": 0.1}


def lose_the_first_save(stack: BotStack, monkeypatch: pytest.MonkeyPatch) -> list[CardRef]:
    """Teams takes the first card POST, but saving its id fails (the process dies there, say); the lost saves."""
    cards = stack.services.store.cards
    save_card, failures = cards.save_card, []

    async def lost_after_the_post(card: CardRef) -> None:
        if not failures:
            failures.append(card)
            raise ConnectionError("the database went away")
        await save_card(card)

    monkeypatch.setattr(cards, "save_card", lost_after_the_post)
    return failures


def channel_lookups(stack: BotStack) -> list[int | None]:
    return [r.status for r in stack.graph.requests if r.path.endswith("/messages") and TEAM_GROUP_ID in r.path]


async def test_a_card_posted_before_the_process_died_is_adopted_not_posted_again(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    cards = bot_stack.services.store.cards
    failures = lose_the_first_save(bot_stack, monkeypatch)
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.drain()

    assert len(failures) == 1
    [card] = bot_stack.channel_cards()  # one card: the retry found it in the channel
    saved = await cards.get_card(failures[0].case_id)
    assert saved is not None and saved.activity_id == card.activity_id
    assert saved.posted_version == failures[0].posted_version  # brought up to date after adopting it
    assert channel_lookups(bot_stack) == [200]
    # The adopted card works: a click on it acts on the case.
    claimed = invoke_card(
        await bot_stack.click("claim", action_data(card_json(card.current), "claim"), user(0), card.conversation_id,
                              card.activity_id)
    )  # fmt: skip
    assert badge(claimed) == "In Bearbeitung – Anna Schmidt"


async def test_a_first_post_does_not_look_up_the_channel(bot_stack: BotStack) -> None:
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.drain()

    assert len(bot_stack.channel_cards()) == 1
    assert not [r for r in bot_stack.graph.requests if r.path.endswith("/messages") and "/teams/" in r.path]


async def test_a_failed_lookup_is_retried_before_anything_is_posted_again(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    lose_the_first_save(bot_stack, monkeypatch)
    bot_stack.graph.add_fault("503", path="/channels/.*/messages", count=1, retry_after=0)
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.drain()

    assert channel_lookups(bot_stack) == [503, 200]
    assert len(bot_stack.channel_cards()) == 1


async def test_without_the_teams_consent_a_card_in_doubt_is_posted_again(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented window: Graph refuses the lookup (403), and the card is posted rather than lost."""
    lose_the_first_save(bot_stack, monkeypatch)
    bot_stack.graph.add_fault("403", path="/channels/.*/messages")
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.drain()

    assert channel_lookups(bot_stack) == [403]
    assert len(bot_stack.channel_cards()) == 2
    assert await bot_stack.services.store.jobs.dead_letters() == []
