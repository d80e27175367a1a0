"""A catch-up that brings many calls: one summary card at once, and the calls' cards oldest first."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from tests.support.bot_stack import POOL_MAILBOX, BotStack
from tests.support.ingest import restartable

CALLS = 12
"""More than BACKLOG_SUMMARY_AFTER (10) new cases on the line."""


def _card_text(record: object) -> str:
    return json.dumps(record.current, ensure_ascii=False)


async def test_a_large_catch_up_posts_a_summary_card_at_once_and_the_cards_oldest_first(bot_stack: BotStack) -> None:
    await bot_stack.link()
    await bot_stack.settle()
    async with restartable(bot_stack) as bot:
        await bot.stop()
        now = datetime.now(UTC)
        for n in range(CALLS):  # a minute apart: the order to keep (Graph's times have whole seconds)
            caller = f"0171 555{n:04d}"
            bot_stack.graph.deliver_mail(
                POOL_MAILBOX, f"Verpasster Anruf von '{caller}' auf '030 1234500'", "no-reply@placetel.de",
                f"Sie haben einen Anruf verpasst.\nVon: {caller}\nAn: 030 1234500\n",
                received=now - timedelta(minutes=CALLS - n),
            )
        await bot_stack.graph.idle()
        await bot.start()
        async with asyncio.timeout(60):
            while len(bot_stack.channel_cards()) < CALLS + 1:
                await asyncio.sleep(0.05)
        await bot_stack.settle()

    cards = [_card_text(record) for record in bot_stack.channel_cards()]
    summaries = [card for card in cards if "Anrufe während der Störung" in card]
    assert len(summaries) == 1
    assert f"{CALLS} Anrufe während der Störung, älteste zuerst" in summaries[0]
    # As soon as the pass has counted the calls: only the backlog's first burst (5 of Teams' 7 per second, the rest
    # is kept for live cards) may go out before it.
    assert cards.index(summaries[0]) <= 5
    calls = [card.replace(" ", "") for card in cards if card not in summaries]
    callers = [next(n for n in range(CALLS) if f"555{n:04d}" in card) for card in calls]
    # Oldest first; four workers that take cards at the same moment may swap them within their group. Pairs out of
    # order: 66 when newest first, 33 on average in a random order, a handful here.
    inversions = sum(1 for i, a in enumerate(callers) for b in callers[i + 1 :] if a > b)
    assert sorted(callers) == list(range(CALLS))
    assert inversions <= 16, callers
