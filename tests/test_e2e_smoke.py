"""First end-to-end flow: install, link, one mail → exactly one card in the channel."""

from __future__ import annotations

from tests.e2e_fixtures import BotStack


async def test_install_link_mail_posts_one_card(bot_stack: BotStack) -> None:
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.settle()
    cards = bot_stack.channel_cards()
    assert len(cards) == 1
    card = cards[0].current["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
