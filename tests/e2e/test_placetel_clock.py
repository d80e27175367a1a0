"""A Placetel call arrives at the bot's clock: in the sandbox, moved forward by the demo's "+1 h", a call stamped with
the system's time came hours before the mail that reports it (and was due hours ago on its new card)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bot.clock import ShiftableClock
from bot.placetel.notify import NOTIFY_PATH
from sandbox.placetel import PlacetelStandIn
from tests.e2e.test_placetel_calls_e2e import CALLER, SECRET, settings_with, the_case
from tests.support.bot_stack import POOL_NUMBER, BotStack

MOVED = timedelta(hours=5)


@pytest.fixture
def bot_settings_overrides() -> dict[str, Any]:
    return settings_with() | {"sandbox_mode": True}


@pytest.fixture
async def placetel(bot_stack: BotStack) -> AsyncIterator[PlacetelStandIn]:
    await bot_stack.link()
    yield PlacetelStandIn(bot_stack.http, bot_stack.bot_url + NOTIFY_PATH, SECRET)


async def test_a_call_webhook_is_stamped_with_the_bots_clock(bot_stack: BotStack, placetel: PlacetelStandIn) -> None:
    clock = bot_stack.services.clock
    assert isinstance(clock, ShiftableClock)
    clock.advance(MOVED)
    before = clock()
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()
    (event,) = (await the_case(bot_stack)).events
    assert before <= event.received_at <= clock()
