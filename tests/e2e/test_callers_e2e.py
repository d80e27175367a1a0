"""Caller names on the cards of the running bot: from the stand-in's contacts, and after a refresh."""

from __future__ import annotations

from bot.app import CALLERS
from tests.support.bot_stack import POOL_MAILBOX, BotStack
from tests.support.cards import card_texts
from tests.support.ingest import restartable


def root_card_texts(stack: BotStack) -> list[str]:
    return [card_texts(record.current["attachments"][0]["content"]) for record in stack.channel_cards()]


async def test_cards_name_known_callers_and_follow_new_contacts(bot_stack: BotStack) -> None:
    bot_stack.graph.upsert_contact(
        POOL_MAILBOX, {"displayName": "Dr. Weber", "companyName": "Labor Nord", "businessPhones": ["0221 4710355"]}
    )
    settings = bot_stack.settings.model_copy(update={"caller_sources": ["contacts", "directory", "pbx"]})
    async with restartable(bot_stack) as bot:
        await bot.stop()
        await bot.start(settings)
        await bot_stack.app[CALLERS].refresh()
        await bot_stack.link()
        bot_stack.deliver_missed_call("0221 4710355")
        bot_stack.deliver_missed_call("0172 5550123")
        await bot_stack.settle()
        [weber, lindner] = sorted(root_card_texts(bot_stack), key=lambda shown: "0221" not in shown)
        assert "0221 4710355" in weber and "**Dr. Weber** · Labor Nord" in weber
        assert "0172 5550123" in lindner and "Lindner" not in lindner

        # A contact added in Outlook later: the next refresh names the caller on the card that is already posted.
        bot_stack.graph.upsert_contact(POOL_MAILBOX, {"displayName": "Frau Lindner", "mobilePhone": "0172 5550123"})
        await bot_stack.app[CALLERS].refresh()
        await bot_stack.settle()
        updated = [bot_stack.connector.find(record.activity_id).current for record in bot_stack.channel_cards()]
        assert any("**Frau Lindner**" in card_texts(card["attachments"][0]["content"]) for card in updated)
