"""A German channel never shows an English word from the bot, whoever types or clicks.

An English-locale user (and an English-locale admin) drives every command, click, refusal and thread line in a
channel whose language is German (``DEFAULT_LOCALE``); everything the bot posts, updates or answers there is
checked against the words that only the English texts use. In personal chat the same user gets English.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from cards.i18n import TEXTS, Lang
from tests.support.bot_stack import ADMIN, BOT_APP, CHANNEL_ID, BotStack, user
from tests.support.commands import PERSONAL_CHAT, card_actions
from tests.support.teams import action_data, card_json, invoke_card, posted_case, the_card

_WORD = re.compile(r"[A-Za-zÄÖÜäöüß]{3,}")
_NOT_WORDS = re.compile(r"\{[^}]*\}|\((?:https?|tel):[^)]*\)")
"""Placeholders of the text tables, and markdown link targets (``…/l/call/…`` is a URL, not a word)."""


def _words(texts: Any) -> set[str]:
    return {word.lower() for value in texts for word in _WORD.findall(_NOT_WORDS.sub(" ", value))}


ENGLISH_ONLY = _words(TEXTS[Lang.EN].values()) - _words(TEXTS[Lang.DE].values())
"""Words the English texts use and the German ones never do ("Claim", "Open", "callbacks", "just", "ago" …)."""


def readable_strings(node: Any) -> list[str]:
    """Every string a person can read in an activity, card or invoke answer."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"text", "title", "value", "fallbackText", "summary", "message"} and isinstance(value, str):
                found.append(value)
            else:
                found.extend(readable_strings(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(readable_strings(item))
    return found


def english_words(node: Any) -> set[str]:
    return {word for word in _words(readable_strings(node)) if word in ENGLISH_ONLY}


def channel_traffic(stack: BotStack) -> list[dict[str, Any]]:
    """Every activity the bot created or updated in the channel and its threads, every version."""
    return [
        version
        for conversation_id, records in stack.connector.conversations.items()
        if conversation_id.startswith(CHANNEL_ID)
        for record in records
        for version in record.versions
    ]


async def say(stack: BotStack, text: str, sender: dict[str, str], conversation_id: str = CHANNEL_ID) -> None:
    in_channel = conversation_id.startswith("19:")
    mention = {"type": "mention", "text": "<at>Rufpool</at>", "mentioned": {"id": f"28:{BOT_APP.client_id}"}}
    activity = stack._activity(
        "message",
        sender,
        conversation_id,
        text=f"<at>Rufpool</at> {text}" if in_channel else text,
        entities=[mention] if in_channel else [],
        locale="en-US",
    )
    assert (await stack.post_activity(activity)).status < 300
    await asyncio.sleep(0.3)  # the connector stand-in enforces Teams' per-thread rate limits, as Teams does


async def click(stack: BotStack, verb: str, data: dict[str, Any], sender: dict[str, str], reply_to: str) -> Any:
    activity = stack._activity(
        "invoke",
        sender,
        f"{CHANNEL_ID};messageid={reply_to}",
        name="adaptiveCard/action",
        replyToId=reply_to,
        value={"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"},
        locale="en-US",
    )
    response = await stack.post_activity(activity)
    assert response.status == 200
    return await response.json()


def test_the_detector_knows_english_from_german() -> None:
    assert {"claim", "callbacks", "ago", "usage"} <= ENGLISH_ONLY
    assert not {"übernehmen", "offen", "rückrufe"} & ENGLISH_ONLY
    assert english_words({"text": "Open callbacks (2) · just now"}) == {"open", "callbacks", "just", "now"}


async def test_an_english_user_in_a_german_channel_gets_german_for_everything(bot_stack: BotStack) -> None:
    english_admin = ADMIN | {"name": "Ada Admin"}
    anna, ben = user(0), user(1)  # both with an English Teams (locale en-US on every activity below)
    card = await posted_case(bot_stack)
    root = card.activity_id
    answers: list[Any] = []

    # every command, typed by an English-locale user: lists, help, unknown text and every refusal
    for text in ("open", "mine", "help", "xyz?", "link zentrale", "unlink zentrale", "link", "unlink"):
        await say(bot_stack, text, anna)
    # the admin's commands: usage without a line, an unknown line, unlink and link again
    for text in ("link", "unlink", "link nowhere", "unlink zentrale", "link zentrale"):
        await say(bot_stack, text, english_admin)
    await bot_stack.settle()

    # every click: claim, a refused claim, a refused done, take over, refresh, release, done, reopen, refused reopen
    first = card_json(the_card(bot_stack).current)
    claimed = invoke_card(await click(bot_stack, "claim", action_data(first, "claim"), anna, root))
    answers.append(claimed)
    answers.append(await click(bot_stack, "claim", action_data(first, "claim"), ben, root))
    answers.append(await click(bot_stack, "done", action_data(claimed, "done"), ben, root))
    answers.append(await click(bot_stack, "refresh", claimed["refresh"]["action"]["data"], anna, root))
    shared = card_json(the_card(bot_stack).current)
    await bot_stack.settle()
    shared = card_json(the_card(bot_stack).current)
    taken = invoke_card(await click(bot_stack, "take_over", action_data(shared, "take_over"), ben, root))
    answers.append(taken)
    answers.append(await click(bot_stack, "release", action_data(taken, "release"), anna, root))
    released = invoke_card(await click(bot_stack, "release", action_data(taken, "release"), ben, root))
    answers.append(released)
    done = invoke_card(await click(bot_stack, "done", action_data(released, "done"), anna, root))
    answers.append(done)
    reopened = invoke_card(await click(bot_stack, "reopen", action_data(done, "reopen"), anna, root))
    answers.append(reopened)
    answers.append(await click(bot_stack, "reopen", action_data(done, "reopen"), ben, root))
    answers.append(await click(bot_stack, "claim", {"case_id": "no-such-case"}, ben, root))
    # a click in the open list (and its paging) answers with the list again
    await say(bot_stack, "open", ben)
    await bot_stack.settle()
    listed = [a for a in channel_traffic(bot_stack) if "Offene Rückrufe" in str(a)][-1]
    list_card = card_json(listed)
    [row_claim] = card_actions(list_card, "claim")
    answers.append(await click(bot_stack, "claim", row_claim["data"], ben, root))
    await bot_stack.settle()

    traffic = channel_traffic(bot_stack)
    thread_lines = [a.get("text") for a in traffic if a.get("text")]
    assert len(thread_lines) >= 8, thread_lines  # usage answers, refusals and one line per state change
    assert any("hat übernommen" in str(line) for line in thread_lines)
    assert any("So geht's: @Rufpool trennen" in str(line) for line in thread_lines)
    found = {word for activity in traffic + answers for word in english_words(activity)}
    assert found == set(), sorted(found)


async def test_personal_chat_follows_the_users_own_locale(bot_stack: BotStack) -> None:
    await bot_stack.link()

    await say(bot_stack, "help", user(0), PERSONAL_CHAT)

    [answer] = [r.current for r in bot_stack.connector.activities(PERSONAL_CHAT)]
    assert "Commands" in readable_strings(answer)
    assert english_words(answer)
