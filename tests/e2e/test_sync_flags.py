"""Flag sync against the stand-ins: Teams → Outlook on every mail of a case, Outlook → Teams, and the echo."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from bot.core.values import FlagStatus, MailUpdate
from bot.domain.cases import CaseState
from tests.support.bot_stack import POOL_MAILBOX, BotStack, user
from tests.support.sync import (
    CaseHandle,
    card_content,
    case_of,
    click,
    flag_patches,
    flag_status,
    mail_flag,
    open_cases,
    outlook_flag,
)
from tests.support.teams import thread_replies

ANNA, BEN = user(0), user(1)


@pytest.fixture
async def stack(bot_stack: BotStack) -> BotStack:
    await bot_stack.link()
    return bot_stack


@pytest.fixture
async def three_calls(stack: BotStack) -> CaseHandle:
    """One case made of three calls from the same caller: three mails."""
    [handle] = await open_cases(stack, ["0171 2345678"], calls_per_caller=3)
    assert len(handle.message_ids) == 3
    return handle


def flags(stack: BotStack, handle: CaseHandle) -> set[FlagStatus]:
    return {flag_status(stack, message_id) for message_id in handle.message_ids}


def card_text(stack: BotStack, handle: CaseHandle) -> str:
    return repr(card_content(stack, handle))


async def test_teams_actions_set_the_flag_of_every_mail(stack: BotStack, three_calls: CaseHandle) -> None:
    assert flags(stack, three_calls) == {FlagStatus.NOT_FLAGGED}

    await click(stack, three_calls, "claim", ANNA)
    await stack.drain()
    assert flags(stack, three_calls) == {FlagStatus.FLAGGED}

    await click(stack, three_calls, "done", ANNA)
    await stack.drain()
    assert flags(stack, three_calls) == {FlagStatus.COMPLETE}
    done_at = (await case_of(stack, three_calls)).done_at
    assert done_at is not None
    for message_id in three_calls.message_ids:
        [*_, patch] = flag_patches(stack, message_id)
        completed = patch["flag"]["completedDateTime"]
        assert completed["timeZone"] == "UTC"
        assert datetime.fromisoformat(completed["dateTime"]) == done_at.replace(tzinfo=None, microsecond=0)
        assert mail_flag(stack, message_id)["completedDateTime"]["dateTime"].startswith(completed["dateTime"])

    await click(stack, three_calls, "reopen", BEN)
    await stack.drain()
    assert flags(stack, three_calls) == {FlagStatus.FLAGGED}

    await click(stack, three_calls, "claim", BEN)
    await click(stack, three_calls, "release", BEN)
    await stack.drain()
    assert flags(stack, three_calls) == {FlagStatus.NOT_FLAGGED}

    # Categories are off by default: the bot never touched them.
    patches = [r for r in stack.graph.requests if r.method == "PATCH" and isinstance(r.body, dict)]
    assert patches and all("categories" not in r.body for r in patches)


async def test_a_repeat_call_joining_a_claimed_case_is_flagged_too(stack: BotStack) -> None:
    [handle] = await open_cases(stack, ["0171 2345678"])
    await click(stack, handle, "claim", ANNA)
    await stack.drain()
    second = stack.deliver_missed_call("0171 2345678")
    await stack.drain()
    state = await stack.services.store.mails.get_mail(POOL_MAILBOX, second)
    assert state is not None and state.case_id == handle.case_id
    assert flag_status(stack, second) is FlagStatus.FLAGGED


async def test_complete_in_outlook_marks_the_case_done_without_naming_anyone(
    stack: BotStack, three_calls: CaseHandle
) -> None:
    await click(stack, three_calls, "claim", ANNA)
    await stack.drain()

    outlook_flag(stack, three_calls.message_ids[1], FlagStatus.COMPLETE)
    await stack.drain()

    case = await case_of(stack, three_calls)
    assert case.state is CaseState.DONE
    assert case.done_by is not None and case.done_by.is_outlook
    assert flags(stack, three_calls) == {FlagStatus.COMPLETE}
    # Everyone's card shows it, honestly: done in Outlook, by someone Outlook does not name.
    shown = card_text(stack, three_calls)
    assert "In Outlook erledigt" in shown
    assert "von wem, ist unbekannt" in shown
    assert ANNA["name"] not in shown
    assert thread_replies(stack, three_calls.conversation_id)[-1].startswith("In Outlook als erledigt markiert")


async def test_clearing_the_flag_in_outlook_reopens_the_case(stack: BotStack, three_calls: CaseHandle) -> None:
    await click(stack, three_calls, "claim", ANNA)
    await click(stack, three_calls, "done", ANNA)
    await stack.drain()

    outlook_flag(stack, three_calls.message_ids[0], FlagStatus.NOT_FLAGGED)
    await stack.drain()

    case = await case_of(stack, three_calls)
    assert case.state is CaseState.OPEN
    assert flags(stack, three_calls) == {FlagStatus.NOT_FLAGGED}
    assert "Offen" in card_text(stack, three_calls)
    assert thread_replies(stack, three_calls.conversation_id)[-1].startswith("In Outlook wieder geöffnet")


async def test_flagging_in_outlook_reopens_a_done_case(stack: BotStack, three_calls: CaseHandle) -> None:
    await click(stack, three_calls, "done", ANNA)
    await stack.drain()

    outlook_flag(stack, three_calls.message_ids[2], FlagStatus.FLAGGED)
    await stack.drain()

    case = await case_of(stack, three_calls)
    assert case.state is CaseState.OPEN and case.reopened
    assert flags(stack, three_calls) == {FlagStatus.FLAGGED}


async def test_flagging_an_open_case_in_outlook_claims_nothing(stack: BotStack, three_calls: CaseHandle) -> None:
    before = await case_of(stack, three_calls)
    replies = len(thread_replies(stack, three_calls.conversation_id))

    outlook_flag(stack, three_calls.message_ids[0], FlagStatus.FLAGGED)
    await stack.drain()

    after = await case_of(stack, three_calls)
    assert after.state is CaseState.OPEN and after.version == before.version
    assert len(thread_replies(stack, three_calls.conversation_id)) == replies
    # The person's flag stays; the case's other mails are left alone.
    assert flag_status(stack, three_calls.message_ids[0]) is FlagStatus.FLAGGED
    assert flag_status(stack, three_calls.message_ids[1]) is FlagStatus.NOT_FLAGGED


async def test_each_action_makes_exactly_one_transition_and_one_reply(stack: BotStack, three_calls: CaseHandle) -> None:
    """The bot's own PATCHes come back as ``updated`` notifications; none of them may count as an action."""
    version = (await case_of(stack, three_calls)).version
    replies = len(thread_replies(stack, three_calls.conversation_id))

    async def in_outlook(flag: FlagStatus) -> None:
        outlook_flag(stack, three_calls.message_ids[0], flag)

    steps: list[Callable[[], Awaitable[Any]]] = [
        lambda: click(stack, three_calls, "claim", ANNA),
        lambda: click(stack, three_calls, "done", ANNA),
        lambda: in_outlook(FlagStatus.FLAGGED),
        lambda: click(stack, three_calls, "claim", BEN),
        lambda: in_outlook(FlagStatus.COMPLETE),
        lambda: click(stack, three_calls, "reopen", ANNA),
        lambda: click(stack, three_calls, "claim", ANNA),
        lambda: in_outlook(FlagStatus.NOT_FLAGGED),
    ]
    for step in steps:
        await step()
        await stack.drain()
        version += 1
        replies += 1
        assert (await case_of(stack, three_calls)).version == version
        assert len(thread_replies(stack, three_calls.conversation_id)) == replies
    echoes = [d for d in stack.graph.deliveries if d.delivered]
    assert len(echoes) > len(steps) * len(three_calls.message_ids)


async def test_an_echo_that_arrives_before_the_patch_returns_is_not_an_action(
    stack: BotStack, three_calls: CaseHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailboxes = stack.services.mailboxes
    update_message = mailboxes.update_message
    echoes_seen = []

    def updates_delivered(message_id: str) -> int:
        return sum(
            delivery.delivered and delivery.payload["value"][0]["resourceData"]["id"] == message_id
            for delivery in stack.graph.deliveries
        )

    async def answer_late(mailbox: str, message_id: str, update: MailUpdate) -> None:
        before = updates_delivered(message_id)
        await update_message(mailbox, message_id, update)
        await stack.graph.idle()  # the echo is delivered and stored as a job while the PATCH has not returned
        echoes_seen.append(updates_delivered(message_id) > before)
        await asyncio.sleep(0.05)  # and a worker is free to pick it up

    monkeypatch.setattr(mailboxes, "update_message", answer_late)
    replies = len(thread_replies(stack, three_calls.conversation_id))
    await click(stack, three_calls, "claim", ANNA)
    await stack.drain()

    case = await case_of(stack, three_calls)
    assert case.state is CaseState.CLAIMED and case.claimed_by is not None
    assert case.claimed_by.name == ANNA["name"]
    assert echoes_seen and all(echoes_seen)
    assert len(thread_replies(stack, three_calls.conversation_id)) == replies + 1
    assert flags(stack, three_calls) == {FlagStatus.FLAGGED}
