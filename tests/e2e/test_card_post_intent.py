"""No second card after a POST whose outcome was lost: the next attempt finds the card in the channel and adopts it."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.ports import CardRef
from sandbox.connector import FaultRule
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


@pytest.mark.parametrize("status", [429, 412])
async def test_a_post_teams_refused_is_posted_again_without_a_lookup(bot_stack: BotStack, status: int) -> None:
    """A 4xx is Teams' answer that nothing was posted: no doubt, so no Graph request before posting again."""
    await bot_stack.link()
    bot_stack.connector.inject(FaultRule(status, count=1, retry_after=0))
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.drain()

    assert [r.status for r in bot_stack.connector.requests if r.status == status] == [status]
    assert channel_lookups(bot_stack) == []
    assert len(bot_stack.channel_cards()) == 1


async def test_a_post_in_doubt_after_a_bad_gateway_is_looked_up(bot_stack: BotStack) -> None:
    """A 502 may come after Teams posted: the next attempt looks before it posts again."""
    await bot_stack.link()
    bot_stack.connector.inject(FaultRule(502, count=1, retry_after=0))
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.drain()

    assert channel_lookups(bot_stack) == [200]
    assert len(bot_stack.channel_cards()) == 1


async def test_cards_waiting_for_their_slot_are_not_looked_up(bot_stack: BotStack) -> None:
    """More cards than Teams' one-second window allows: the later ones wait for booked slots (the job put back),
    which puts no POST in doubt."""
    await bot_stack.link()
    for n in range(12):
        bot_stack.deliver_missed_call(f"0171 23456{n:02d}")
    await bot_stack.drain()

    assert len(bot_stack.channel_cards()) == 12
    assert channel_lookups(bot_stack) == []
