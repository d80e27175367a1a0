"""The click path end to end: thread lines in the order of the case's changes, and an answer from the committed state
when the change cannot be stored with its effects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bot.core import effects
from bot.domain.cases import CaseState
from bot.storage import sql_store
from bot.storage.database import Cursor
from cards.i18n import text
from tests.support.bot_stack import BotStack, user
from tests.support.teams import (
    action_data,
    badge,
    card_json,
    invoke_card,
    notice,
    posted_case,
    the_card,
    thread_replies,
)


async def test_thread_lines_follow_the_order_of_the_changes_when_an_earlier_line_is_held_up(
    bot_stack: BotStack,
) -> None:
    card = await posted_case(bot_stack)
    anna = user(0)
    claimed = invoke_card(
        await bot_stack.click("claim", action_data(card_json(card.current), "claim"), anna, card.conversation_id,
                              card.activity_id)
    )  # fmt: skip
    # The claim's line is held up (say its first POST met a 502 and waits for its retry) while "done" comes in.
    await bot_stack.services.store.database.write(
        "UPDATE jobs SET run_at = ? WHERE kind = ? AND state = 'pending'",
        (datetime.now(UTC) + timedelta(seconds=0.5), effects.THREAD_REPLY),
    )
    done = invoke_card(
        await bot_stack.click("done", action_data(claimed, "done"), anna, card.conversation_id, card.activity_id)
    )
    assert badge(done) == "Erledigt – Anna Schmidt"

    await bot_stack.drain()

    replies = thread_replies(bot_stack, the_card(bot_stack).conversation_id)
    assert len(replies) == 2, replies
    assert replies[0].startswith("Anna Schmidt hat übernommen · "), replies
    assert "erledigt" in replies[1].lower(), replies


async def _outbox_down(cursor: Cursor, queued: Sequence[effects.Effect], now: datetime) -> None:
    raise ConnectionError("the database went away")


async def test_a_click_whose_change_cannot_be_stored_gets_the_committed_card_and_try_again(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = await posted_case(bot_stack)
    claim = action_data(card_json(card.current), "claim")
    monkeypatch.setattr(sql_store, "insert_effects", _outbox_down)

    answer = invoke_card(await bot_stack.click("claim", claim, user(0), card.conversation_id, card.activity_id))

    assert badge(answer) == "Offen"  # what is committed: nothing changed
    assert text("de", "action_not_saved") in (notice(answer) or "")
    case = await bot_stack.services.store.cases.get(claim["case_id"])
    assert case is not None and case.state is CaseState.OPEN
    monkeypatch.undo()
    again = invoke_card(await bot_stack.click("claim", claim, user(0), card.conversation_id, card.activity_id))
    assert badge(again) == "In Bearbeitung – Anna Schmidt"
    await bot_stack.drain()
    assert badge(card_json(the_card(bot_stack).current)) == "In Bearbeitung – Anna Schmidt"


async def test_a_click_answers_try_again_when_the_store_cannot_be_read_either(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = await posted_case(bot_stack)
    claim = action_data(card_json(card.current), "claim")
    store = bot_stack.services.store
    real_get = store.cases.get
    reads = 0

    async def get_once(case_id: str) -> object:
        nonlocal reads
        reads += 1
        if reads > 1:
            raise ConnectionError("the database went away")
        return await real_get(case_id)

    monkeypatch.setattr(sql_store, "insert_effects", _outbox_down)
    monkeypatch.setattr(store.cases, "get", get_once)

    response = await bot_stack.click("claim", claim, user(0), card.conversation_id, card.activity_id)

    assert response["statusCode"] == 200 and response["value"] == text("de", "action_not_saved"), response


async def test_a_click_that_fails_before_any_change_is_answered_not_a_server_error(
    bot_stack: BotStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = await posted_case(bot_stack)
    claim = action_data(card_json(card.current), "claim")

    async def unreachable(case_id: str) -> object:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(bot_stack.services.store.cases, "get", unreachable)

    response = await bot_stack.click("claim", claim, user(0), card.conversation_id, card.activity_id)

    assert response["statusCode"] == 200 and response["value"] == text("de", "turn_failed"), response
