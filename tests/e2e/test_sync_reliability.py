"""Flag writes through the outbox: concurrency limit, Retry-After, dead letters, reconciliation, categories."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot import metrics
from bot.core import effects
from bot.core.values import FlagStatus
from bot.domain.cases import CaseState
from tests.support.bot_stack import POOL_MAILBOX, BotStack, user
from tests.support.sync import (
    PATCHES,
    case_of,
    click,
    disagreements,
    flag_status,
    open_cases,
    outlook_flag_unnoticed,
    resync,
)

ANNA = user(0)


@pytest.fixture
async def stack(bot_stack_settings: None, bot_stack: BotStack) -> BotStack:
    await bot_stack.link()
    return bot_stack


@pytest.fixture
def bot_stack_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries within milliseconds, so that a dead letter takes a second, not minutes (read at start-up)."""
    monkeypatch.setenv("OUTBOX_RETRY_BASE_SECONDS", "0.01")


def counter(metric: object, kind: str) -> float:
    return float(metric.labels(kind)._value.get())  # type: ignore[attr-defined]


async def test_never_more_than_four_graph_requests_at_once(stack: BotStack) -> None:
    handles = await open_cases(stack, [f"0171 23456{n:02d}" for n in range(10)], calls_per_caller=2)
    await asyncio.gather(*(click(stack, handle, "claim", ANNA) for handle in handles))
    await stack.drain()
    assert await disagreements(stack, handles) == []
    # The stand-in answers 429 "MailboxConcurrency" to a fifth concurrent request; the bot never sent one.
    assert [r for r in stack.graph.requests if r.status == 429] == []
    assert sum(r.method == "PATCH" for r in stack.graph.requests) >= 20


async def test_retry_after_is_honoured(stack: BotStack) -> None:
    [handle] = await open_cases(stack, ["0171 2345678"])
    retries = counter(metrics.JOB_RETRIES, effects.SET_FLAG)
    stack.graph.add_fault("429", path=PATCHES, method="PATCH", count=1, retry_after=1)
    started = time.monotonic()
    await click(stack, handle, "claim", ANNA)
    await stack.drain()
    assert time.monotonic() - started >= 1.0
    assert flag_status(stack, handle.message_ids[0]) is FlagStatus.FLAGGED
    assert counter(metrics.JOB_RETRIES, effects.SET_FLAG) == retries + 1
    attempts = [r.status for r in stack.graph.requests if r.method == "PATCH"]
    assert attempts == [429, 200]


async def test_a_dead_lettered_write_is_visible_and_repaired_by_the_delta_pass(stack: BotStack) -> None:
    [handle] = await open_cases(stack, ["0171 2345678"])
    await resync(stack)  # the mail is behind the delta link now: the next pass does not see it again
    dead = counter(metrics.DEAD_LETTERS, effects.SET_FLAG)
    stack.graph.add_fault("503", path=PATCHES, method="PATCH", retry_after=0)

    await click(stack, handle, "claim", ANNA)
    await stack.drain()

    assert counter(metrics.DEAD_LETTERS, effects.SET_FLAG) == dead + 1
    [letter] = await stack.services.store.jobs.dead_letters()
    assert letter.kind == effects.SET_FLAG and letter.payload["message_id"] == handle.message_ids[0]
    assert "503" in (letter.last_error or "")
    assert flag_status(stack, handle.message_ids[0]) is FlagStatus.NOT_FLAGGED

    stack.graph.clear_faults()
    await resync(stack)
    assert flag_status(stack, handle.message_ids[0]) is FlagStatus.FLAGGED
    assert (await case_of(stack, handle)).state is CaseState.CLAIMED


async def test_a_flag_changed_while_notifications_were_lost_reaches_teams(stack: BotStack) -> None:
    handles = await open_cases(stack, ["0171 2345678", "0171 8765432"], calls_per_caller=2)
    for handle in handles:
        await click(stack, handle, "claim", ANNA)
    await stack.drain()
    await resync(stack)

    done_in_outlook, released_in_outlook = handles
    outlook_flag_unnoticed(stack, done_in_outlook.message_ids[1], FlagStatus.COMPLETE)
    outlook_flag_unnoticed(stack, released_in_outlook.message_ids[0], FlagStatus.NOT_FLAGGED)
    await stack.drain()
    assert (await case_of(stack, done_in_outlook)).state is CaseState.CLAIMED  # nobody told the bot yet

    await resync(stack)
    done = await case_of(stack, done_in_outlook)
    assert done.state is CaseState.DONE and done.done_by is not None and done.done_by.is_outlook
    assert (await case_of(stack, released_in_outlook)).state is CaseState.OPEN
    assert await disagreements(stack, handles) == []
    assert {flag_status(stack, m) for m in done_in_outlook.message_ids} == {FlagStatus.COMPLETE}
    assert {flag_status(stack, m) for m in released_in_outlook.message_ids} == {FlagStatus.NOT_FLAGGED}


class TestCategories:
    @pytest.fixture
    def bot_stack_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OUTLOOK_CATEGORIES_ENABLED", "true")

    async def test_only_the_bots_own_categories_change(self, stack: BotStack) -> None:
        [handle] = await open_cases(stack, ["0171 2345678"])
        message_id = handle.message_ids[0]
        mail = stack.graph.mailbox(POOL_MAILBOX).message(message_id)
        mail.categories = ["Privat", "Rückruf dringend"]

        await click(stack, handle, "claim", ANNA)
        await stack.drain()
        assert mail.categories == ["Privat", "Rückruf dringend", f"Rufpool: In Bearbeitung – {ANNA['name']}"]

        await click(stack, handle, "done", ANNA)
        await stack.drain()
        assert mail.categories == ["Privat", "Rückruf dringend", f"Rufpool: Erledigt – {ANNA['name']}"]

        await click(stack, handle, "reopen", ANNA)
        await stack.drain()
        assert mail.categories == ["Privat", "Rückruf dringend"]
        assert flag_status(stack, message_id) is FlagStatus.FLAGGED
