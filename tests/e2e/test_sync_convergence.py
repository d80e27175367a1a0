"""Seeded random interleavings of Teams clicks and Outlook flag changes converge, with and without Graph faults.

Each round runs one short random sequence per case, all cases at once, so clicks, notifications, echoes and flag
writes of different sequences interleave; once things are quiet every mail's flag agrees with its case and every
case's one card in the channel shows the case's latest version.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from bot.core.ports import JobState
from bot.core.values import FlagStatus
from bot.graph.webhooks import NOTIFICATION_JOB
from sandbox.convergence import channel_cards
from tests.support.bot_stack import BotStack, user
from tests.support.sync import CaseHandle, case_of, click, disagreements, open_cases, outlook_flag

SEED = 20240601
ROUNDS = 10
CASES = 20  # ROUNDS x CASES = 200 interleavings
VERBS = ("claim", "release", "done", "reopen", "take_over")
USERS = [user(n) for n in range(3)]


@pytest.fixture
async def stack(bot_stack: BotStack) -> BotStack:
    await bot_stack.link()
    return bot_stack


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries within milliseconds (read at start-up, so before ``bot_stack``)."""
    monkeypatch.setenv("OUTBOX_RETRY_BASE_SECONDS", "0.01")


async def interleaving(stack: BotStack, handle: CaseHandle, rng: random.Random) -> list[str]:
    """A short random sequence of actions on one case, Teams and Outlook mixed; returns what it did."""
    done = []
    for _ in range(rng.randint(2, 4)):
        if rng.random() < 0.5:
            verb, who = rng.choice(VERBS), rng.choice(USERS)
            await click(stack, handle, verb, who)
            done.append(f"{who['name']}: {verb}")
        else:
            message_id, flag = rng.choice(handle.message_ids), rng.choice(list(FlagStatus))
            outlook_flag(stack, message_id, flag)
            done.append(f"Outlook {handle.message_ids.index(message_id)}: {flag}")
        await asyncio.sleep(rng.choice((0.0, 0.0, 0.005, 0.02)))
    return done


async def stale_cards(stack: BotStack, handles: list[CaseHandle]) -> list[str]:
    """Every case whose card in the channel is missing, doubled or behind the case, described for an assertion."""
    shown = channel_cards(stack.connector)
    found = []
    for handle in handles:
        case = await case_of(stack, handle)
        if shown.get(case.id) != [case.version]:
            found.append(f"case {case.id[:8]} is at version {case.version}, its cards show {shown.get(case.id)}")
    return found


@pytest.mark.parametrize("faults", [False, True], ids=["no-faults", "20%-graph-faults"])
async def test_random_interleavings_converge(stack: BotStack, faults: bool) -> None:
    callers = [f"0171 55501{n:02d}" for n in range(CASES)]
    handles = await open_cases(stack, callers[: CASES // 2], calls_per_caller=2)
    handles += await open_cases(stack, callers[CASES // 2 :])
    if faults:
        stack.graph.add_fault("429", rate=0.1, retry_after=0)
        stack.graph.add_fault("503", rate=1 / 9, retry_after=0)  # 10 % of the rest: 20 % of requests fail
    for round_number in range(ROUNDS):
        rngs = [random.Random(f"{SEED}-{faults}-{round_number}-{n}") for n in range(CASES)]
        histories = await asyncio.gather(*(interleaving(stack, h, rng) for h, rng in zip(handles, rngs, strict=True)))
        await stack.drain()
        assert await disagreements(stack, handles) == [], f"round {round_number}: {histories}"
        assert await stale_cards(stack, handles) == [], f"round {round_number}: {histories}"
        depth = await stack.services.store.jobs.depth()
        assert depth[JobState.PENDING] == depth[JobState.LEASED] == 0
    # A notification job can run out of retries when most of its Graph reads fail; its mailbox then catches up by
    # delta (the convergence above shows that). Every other effect must have landed.
    dead = await stack.services.store.jobs.dead_letters()
    assert [job.kind for job in dead if job.kind != NOTIFICATION_JOB] == []
    if faults:
        assert sum(r.status in (429, 503) for r in stack.graph.requests) > 0
