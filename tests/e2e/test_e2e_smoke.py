"""First end-to-end flow: install, link, one mail → exactly one card in the channel, its activity id kept."""

from __future__ import annotations

from tests.support.bot_stack import CHANNEL_ID, BotStack


async def test_install_link_mail_posts_one_card(bot_stack: BotStack) -> None:
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.settle()
    await bot_stack.services.coordinator.request_resync(bot_stack.settings.pool_lines[0])  # a delta overlap
    await bot_stack.settle()

    cards = bot_stack.channel_cards()
    assert len(cards) == 1
    card = cards[0].current["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert len(cards[0].versions) == 1  # nothing changed, so nothing was updated either

    case_id = card["actions"][0]["data"]["case_id"]
    stored = await bot_stack.services.store.cards.get_card(case_id)
    assert stored is not None
    assert stored.activity_id == cards[0].activity_id
    assert stored.conversation_id == f"{CHANNEL_ID};messageid={cards[0].activity_id}"
    assert await bot_stack.services.store.cards.case_id_for_activity(cards[0].activity_id) == case_id
