"""Linking through the bot's /api/messages, with real JWTs against the connector stand-in."""

from __future__ import annotations

from tests.support.bot_stack import ADMIN, CHANNEL_ID, TEAM_ID, BotStack, user
from tests.support.cards import card_texts
from tests.support.teams import card_json
from tests.support.teams_standins import TENANT


def bot_replies(stack: BotStack, conversation_id: str = CHANNEL_ID) -> list[dict[str, object]]:
    """What the bot answered in the channel (command replies), oldest first."""
    return [record.current for record in stack.connector.activities(conversation_id)]


async def test_an_admin_links_by_line_id_mailbox_or_name_and_gets_a_confirmation_card(bot_stack: BotStack) -> None:
    await bot_stack.install()
    for argument in ("zentrale", "zentrale@praxis.example", "Zentrale"):
        assert await bot_stack.message(f"verbinden {argument}") < 300
        link = await bot_stack.services.store.links.link_for_line("zentrale")
        assert link is not None
        assert (link.channel_id, link.team_id, link.tenant_id) == (CHANNEL_ID, TEAM_ID, TENANT)
        assert link.service_url == bot_stack.connector.service_url
        assert link.linked_by == ADMIN["aadObjectId"]
        confirmation = card_json(bot_replies(bot_stack)[-1])
        assert card_texts(confirmation).splitlines()[0] == "✓ Kanal verbunden"
        await bot_stack.services.store.links.unlink_line("zentrale")


async def test_trennen_unlinks_and_new_calls_are_no_longer_posted(bot_stack: BotStack) -> None:
    await bot_stack.link()
    assert await bot_stack.message("trennen zentrale") < 300
    assert card_texts(card_json(bot_replies(bot_stack)[-1])).splitlines()[0] == "✓ Kanal getrennt"
    assert await bot_stack.services.store.links.link_for_line("zentrale") is None

    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.settle()
    assert bot_stack.channel_cards() == []


async def test_only_configured_lines_can_be_linked(bot_stack: BotStack) -> None:
    await bot_stack.install()
    assert await bot_stack.message("verbinden vertrieb") < 300
    assert bot_replies(bot_stack)[-1]["text"] == "Die Leitung „vertrieb“ ist nicht konfiguriert. Bekannt: zentrale"
    assert await bot_stack.services.store.links.link_for_line("zentrale") is None


async def test_a_non_admin_cannot_link_or_unlink(bot_stack: BotStack) -> None:
    await bot_stack.install()
    assert await bot_stack.message("verbinden zentrale", sender=user(1)) < 300
    assert "Nur Administratoren" in str(bot_replies(bot_stack)[-1]["text"])
    assert await bot_stack.services.store.links.link_for_line("zentrale") is None

    assert await bot_stack.message("verbinden zentrale") < 300
    assert await bot_stack.message("trennen zentrale", sender=user(1)) < 300
    assert await bot_stack.services.store.links.link_for_line("zentrale") is not None


async def test_an_admin_named_by_upn_may_link(bot_stack: BotStack) -> None:
    """Activities carry no UPN: the bot looks the sender up in the team's roster."""
    ben = user(1)
    bot_stack.settings.link_admins.append("ben.weber@praxis.example")  # LINK_ADMINS naming Ben by UPN
    # botbuilder asks the conversation the message came from (a channel's roster is its team's).
    bot_stack.connector.set_members(CHANNEL_ID, [{**ben, "userPrincipalName": "Ben.Weber@praxis.example"}])
    await bot_stack.install()

    assert await bot_stack.message("verbinden zentrale", sender=ben) < 300
    link = await bot_stack.services.store.links.link_for_line("zentrale")
    assert link is not None and link.linked_by == ben["aadObjectId"]
