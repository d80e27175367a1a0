"""Issue 7 through the connector stand-in: ``open``, ``mine`` and ``help`` in a channel and in personal chat."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.core.effects import no_effects
from bot.domain.cases import Actor, Case
from bot.domain.state_machine import Verb
from tests.support.bot_stack import CHANNEL_ID, OTHER_CHANNEL_ID, TEAM_ID, BotStack, user
from tests.support.cards import card_texts
from tests.support.commands import PERSONAL_CHAT, card_actions, last_reply_card, seed_cases
from tests.support.teams import invoke_card

ANNA, BEN = user(0), user(1)


async def ask(stack: BotStack, text: str, conversation_id: str = CHANNEL_ID, sender: dict[str, str] = ANNA) -> str:
    """Send ``text`` and return the texts of the card the bot answered with."""
    assert await stack.message(text, sender, conversation_id) < 300
    return card_texts(last_reply_card(stack, conversation_id))


async def claim(stack: BotStack, case: Case, sender: dict[str, str]) -> None:
    outcome = await stack.services.store.cases.transition(
        case.id, Verb.CLAIM, Actor(sender["aadObjectId"], sender["name"]), datetime.now(UTC),
        stack.services.actions.claim_timeout,
        effects=no_effects,
    )
    assert outcome.applied


def rows(shown: str) -> list[str]:
    """The callers' names in the order the list shows them (a row reads "**number** · name")."""
    return [line.partition(" · ")[2] for line in shown.splitlines() if line.startswith("**")]


def page_button(card: dict[str, Any], title: str) -> dict[str, Any]:
    [button] = [action for action in card_actions(card, "list_page") if action["title"] == title]
    return button


# --- open -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["open", "/open", "@Rufpool open", "offen", "  OFFEN&nbsp;", "/Offen\u00a0"])
async def test_open_and_its_aliases_list_open_and_claimed_cases_oldest_first(bot_stack: BotStack, text: str) -> None:
    await bot_stack.link()
    cases = await seed_cases(bot_stack, 3)
    await claim(bot_stack, cases[1], BEN)

    shown = await ask(bot_stack, text)

    assert "Offene Rückrufe (3)" in shown
    assert rows(shown) == ["Caller 0000", "Caller 0001", "Caller 0002"], "oldest first, claimed ones included"
    assert f"In Bearbeitung – {BEN['name']}" in shown, "a claimed row names its claimant"
    assert shown.splitlines().count("Offen") == 2
    assert "Zentrale · 1 Anruf · vor 3 Min." in shown, "line, number of calls and age"
    claims = card_actions(last_reply_card(bot_stack, CHANNEL_ID), "claim")
    assert [action["data"]["case_id"] for action in claims] == [cases[0].id, cases[2].id], "Claim on open rows"


async def test_mention_anywhere_in_the_text_is_stripped(bot_stack: BotStack) -> None:
    await bot_stack.link()
    await seed_cases(bot_stack, 1)
    activity = bot_stack._activity(
        "message", ANNA, CHANNEL_ID, text="offen <at>Rufpool</at>",
        entities=[{"type": "mention", "text": "<at>Rufpool</at>", "mentioned": {"id": "28:someone-else"}}],
    )
    assert (await bot_stack.post_activity(activity)).status < 300
    assert "Offene Rückrufe (1)" in card_texts(last_reply_card(bot_stack, CHANNEL_ID))


async def test_open_in_a_channel_lists_only_that_channels_lines(bot_stack: BotStack) -> None:
    await bot_stack.link()
    await seed_cases(bot_stack, 2)
    assert "Offene Rückrufe (2)" in await ask(bot_stack, "open")
    assert "keine offenen Rückrufe" in await ask(bot_stack, "open", OTHER_CHANNEL_ID)


async def test_open_with_nothing_open_gives_a_friendly_empty_state(bot_stack: BotStack) -> None:
    await bot_stack.link()
    shown = await ask(bot_stack, "offen")
    assert "Offene Rückrufe (0)" in shown
    assert "Alles erledigt – keine offenen Rückrufe 🎉" in shown
    assert card_actions(last_reply_card(bot_stack, CHANNEL_ID), "list_page") == []


async def test_twenty_five_cases_page_in_three_cards_forward_and_back(bot_stack: BotStack) -> None:
    await bot_stack.link()
    await seed_cases(bot_stack, 25)
    await ask(bot_stack, "open")
    first = last_reply_card(bot_stack, CHANNEL_ID)
    list_id = bot_stack.connector.activities(CHANNEL_ID)[-1].activity_id
    assert rows(card_texts(first)) == [f"Caller {n:04d}" for n in range(10)]
    assert "1–10 von 25" in card_texts(first)
    assert [action["title"] for action in card_actions(first, "list_page")] == ["Weiter"]

    async def turn(card: dict[str, Any], title: str) -> dict[str, Any]:
        button = page_button(card, title)
        return invoke_card(await bot_stack.click("list_page", button["data"], ANNA, CHANNEL_ID, list_id))

    second = await turn(first, "Weiter")
    assert rows(card_texts(second)) == [f"Caller {n:04d}" for n in range(10, 20)]
    assert [action["title"] for action in card_actions(second, "list_page")] == ["Zurück", "Weiter"]
    third = await turn(second, "Weiter")
    assert rows(card_texts(third)) == [f"Caller {n:04d}" for n in range(20, 25)]
    assert "21–25 von 25" in card_texts(third)
    assert [action["title"] for action in card_actions(third, "list_page")] == ["Zurück"]
    back = await turn(third, "Zurück")
    assert rows(card_texts(back)) == rows(card_texts(second))


# --- personal chat ------------------------------------------------------------------------------------------


async def test_open_in_personal_chat_lists_the_cases_of_the_users_teams(bot_stack: BotStack) -> None:
    await bot_stack.link()
    await seed_cases(bot_stack, 2)
    bot_stack.connector.set_members(TEAM_ID, [ANNA])

    assert rows(await ask(bot_stack, "offen", PERSONAL_CHAT, ANNA)) == ["Caller 0000", "Caller 0001"]
    outsider_chat = "a:1personal-chat-of-an-outsider"
    bot_stack.connector.set_members(outsider_chat, [BEN])  # everyone is a member of their own chat, not the team
    assert "Offene Rückrufe (0)" in await ask(bot_stack, "open", outsider_chat, BEN), "not in the team: nothing"


async def test_paging_in_personal_chat_keeps_to_the_users_teams(bot_stack: BotStack) -> None:
    await bot_stack.link()
    await seed_cases(bot_stack, 12)
    bot_stack.connector.set_members(TEAM_ID, [ANNA])
    await ask(bot_stack, "open", PERSONAL_CHAT, ANNA)
    record = bot_stack.connector.activities(PERSONAL_CHAT)[-1]
    button = page_button(record.current["attachments"][0]["content"], "Weiter")

    second = invoke_card(await bot_stack.click("list_page", button["data"], ANNA, PERSONAL_CHAT, record.activity_id))
    assert rows(card_texts(second)) == ["Caller 0010", "Caller 0011"]
    outsider = invoke_card(await bot_stack.click("list_page", button["data"], BEN, "a:1outsider", record.activity_id))
    assert "Offene Rückrufe (0)" in card_texts(outsider)


# --- Claim from the list --------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["channel", "personal chat"])
async def test_claim_from_the_list_updates_the_cases_own_card(bot_stack: BotStack, where: str) -> None:
    await bot_stack.link()
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.settle()
    [root] = bot_stack.channel_cards()
    conversation_id = CHANNEL_ID if where == "channel" else PERSONAL_CHAT
    bot_stack.connector.set_members(TEAM_ID, [BEN])

    await ask(bot_stack, "open", conversation_id, BEN)
    listing = bot_stack.connector.activities(conversation_id)[-1]
    [button] = card_actions(listing.current["attachments"][0]["content"], "claim")
    answer = invoke_card(await bot_stack.click("claim", button["data"], BEN, conversation_id, listing.activity_id))
    await bot_stack.settle()

    assert f"In Bearbeitung – {BEN['name']}" in card_texts(answer)
    updated = bot_stack.connector.find(root.activity_id)
    assert len(updated.versions) >= 2, "the case's card in its thread was edited (PUT on its root activity)"
    assert f"In Bearbeitung – {BEN['name']}" in card_texts(updated.current["attachments"][0]["content"])
    case = await bot_stack.services.store.cases.get(button["data"]["case_id"])
    assert case is not None and case.claimed_by == Actor(BEN["aadObjectId"], BEN["name"])


async def test_claim_from_personal_chat_is_refused_to_a_user_outside_the_team(bot_stack: BotStack) -> None:
    await bot_stack.link()
    [case] = await seed_cases(bot_stack, 1)
    data = {"case_id": case.id, "version": case.version, "line_id": case.line_id}
    response = await bot_stack.click("claim", data, BEN, "a:1outsider", "1")
    assert response["statusCode"] == 403
    stored = await bot_stack.services.store.cases.get(case.id)
    assert stored is not None and stored.claimed_by is None


# --- mine ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "conversation_id"), [("mine", CHANNEL_ID), ("meine", PERSONAL_CHAT)])
async def test_mine_lists_only_the_cases_i_claimed(bot_stack: BotStack, text: str, conversation_id: str) -> None:
    await bot_stack.link()
    cases = await seed_cases(bot_stack, 4)
    await claim(bot_stack, cases[3], ANNA)
    await claim(bot_stack, cases[1], ANNA)
    await claim(bot_stack, cases[2], BEN)
    bot_stack.connector.set_members(TEAM_ID, [ANNA, BEN])

    shown = await ask(bot_stack, text, conversation_id, ANNA)
    assert "Meine Rückrufe (2)" in shown
    assert rows(shown) == ["Caller 0001", "Caller 0003"]
    assert "Du hast gerade keine Rückrufe übernommen." in await ask(bot_stack, text, conversation_id, user(2))


# --- help -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "conversation_id"), [
    ("help", CHANNEL_ID), ("hilfe", CHANNEL_ID), ("/Hilfe", PERSONAL_CHAT), ("?", PERSONAL_CHAT),
])
async def test_help_explains_the_bot_and_its_commands(bot_stack: BotStack, text: str, conversation_id: str) -> None:
    shown = await ask(bot_stack, text, conversation_id)
    for command in ("offen", "meine", "hilfe", "verbinden ‹Leitung›", "trennen ‹Leitung›"):
        assert command in shown
    assert "kenne ich nicht" not in shown


@pytest.mark.parametrize("conversation_id", [CHANNEL_ID, PERSONAL_CHAT])
async def test_unknown_text_gets_a_short_help_not_silence(bot_stack: BotStack, conversation_id: str) -> None:
    shown = await ask(bot_stack, "was kannst du?", conversation_id)
    assert "Den Befehl „was kannst du?“ kenne ich nicht." in shown
    assert "offen: Offene und übernommene Rückrufe" in shown


@pytest.mark.parametrize(
    ("conversation_id", "locale", "expected"),
    [
        (CHANNEL_ID, "de-DE", "Bitte die Schaltflächen"),
        (CHANNEL_ID, "en-US", "Bitte die Schaltflächen"),  # the channel's language, whoever clicks
        (PERSONAL_CHAT, "en-US", "Please use"),
    ],
)
async def test_an_old_submit_card_gets_a_hint_not_silence(
    bot_stack: BotStack, conversation_id: str, locale: str, expected: str
) -> None:
    await bot_stack.link()
    activity = bot_stack._activity("message", user(1), conversation_id, value={"verb": "claim"}, locale=locale)

    response = await bot_stack.post_activity(activity)

    assert response.status < 300
    assert bot_stack.connector.activities(conversation_id)[-1].current["text"].startswith(expected)
