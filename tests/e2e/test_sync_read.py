"""Outlook's read state follows the case, so the shared Inbox's unread count shows the calls nobody has touched.

Claim and done mark every mail of the case read, release and reopen mark them unread; reading a mail in Outlook
(or marking it unread) never moves a case; the bot's own writes come back as echoes that change nothing.
"""

from __future__ import annotations

import pytest

from bot.core.values import FlagStatus
from bot.domain.cases import CaseState
from tests.support.bot_stack import POOL_MAILBOX, BotStack, user
from tests.support.sync import PATCHES, CaseHandle, case_of, click, flag_patches, flag_status, open_cases, resync
from tests.support.teams import thread_replies

ANNA = user(0)


@pytest.fixture
async def stack(bot_stack_settings: None, bot_stack: BotStack) -> BotStack:
    await bot_stack.link()
    return bot_stack


@pytest.fixture
def bot_stack_settings() -> None:
    """Defaults: read sync on, people's own read/unread left alone."""


@pytest.fixture
async def three_calls(stack: BotStack) -> CaseHandle:
    [handle] = await open_cases(stack, ["0171 2345678"], calls_per_caller=3)
    return handle


def read_states(stack: BotStack, handle: CaseHandle) -> set[bool]:
    box = stack.graph.mailbox(POOL_MAILBOX)
    return {box.message(message_id).is_read for message_id in handle.message_ids}


def unread_count(stack: BotStack) -> int:
    """The number Outlook shows after the shared Inbox's name."""
    return sum(not message.is_read for message in stack.graph.mailbox(POOL_MAILBOX).messages.values())


def outlook_read(stack: BotStack, message_id: str, is_read: bool) -> None:
    """Someone opens the mail in Outlook, or marks it unread (Graph sends an ``updated`` notification)."""
    stack.graph.set_read(POOL_MAILBOX, message_id, is_read)


def outlook_read_unnoticed(stack: BotStack, message_id: str, is_read: bool) -> None:
    """The same, with the notification lost: only the next delta pass sees it."""
    box = stack.graph.mailbox(POOL_MAILBOX)
    message = box.message(message_id)
    message.is_read = is_read
    message.touch(box.next_sequence())


async def test_claim_and_done_mark_read_release_and_reopen_unread(stack: BotStack, three_calls: CaseHandle) -> None:
    [other] = await open_cases(stack, ["0171 8765432"])
    assert read_states(stack, three_calls) == {False}
    assert unread_count(stack) == 4

    await click(stack, three_calls, "claim", ANNA)
    await stack.drain()
    assert read_states(stack, three_calls) == {True}
    assert unread_count(stack) == 1  # only the call nobody has touched

    await click(stack, three_calls, "release", ANNA)
    await stack.drain()
    assert read_states(stack, three_calls) == {False}
    assert unread_count(stack) == 4

    await click(stack, three_calls, "done", ANNA)
    await stack.drain()
    assert read_states(stack, three_calls) == {True}

    await click(stack, three_calls, "reopen", ANNA)
    await stack.drain()
    assert read_states(stack, three_calls) == {False}
    assert read_states(stack, other) == {False}


async def test_flag_and_read_state_travel_in_one_patch_per_mail(stack: BotStack, three_calls: CaseHandle) -> None:
    await click(stack, three_calls, "claim", ANNA)
    await stack.drain()
    for message_id in three_calls.message_ids:
        [patch] = flag_patches(stack, message_id)
        assert patch["flag"]["flagStatus"] == "flagged"
        assert patch["isRead"] is True
    assert sum(r.method == "PATCH" for r in stack.graph.requests) == len(three_calls.message_ids)


async def test_reading_in_outlook_is_not_handling(stack: BotStack, three_calls: CaseHandle) -> None:
    replies = len(thread_replies(stack, three_calls.conversation_id))
    version = (await case_of(stack, three_calls)).version
    patches = sum(r.method == "PATCH" for r in stack.graph.requests)

    outlook_read(stack, three_calls.message_ids[0], True)
    await stack.drain()
    outlook_read(stack, three_calls.message_ids[0], False)
    await stack.drain()

    case = await case_of(stack, three_calls)
    assert case.state is CaseState.OPEN and case.version == version
    assert len(thread_replies(stack, three_calls.conversation_id)) == replies
    assert sum(r.method == "PATCH" for r in stack.graph.requests) == patches  # nothing written back either


async def test_marking_unread_in_outlook_does_not_reopen(stack: BotStack, three_calls: CaseHandle) -> None:
    await click(stack, three_calls, "done", ANNA)
    await stack.drain()
    replies = len(thread_replies(stack, three_calls.conversation_id))

    outlook_read(stack, three_calls.message_ids[1], False)
    await stack.drain()

    case = await case_of(stack, three_calls)
    assert case.state is CaseState.DONE
    assert len(thread_replies(stack, three_calls.conversation_id)) == replies
    assert flag_status(stack, three_calls.message_ids[1]) is FlagStatus.COMPLETE


async def test_the_echo_of_the_bots_own_write_changes_nothing(stack: BotStack, three_calls: CaseHandle) -> None:
    replies = len(thread_replies(stack, three_calls.conversation_id))
    await click(stack, three_calls, "claim", ANNA)
    await stack.drain()
    echoes = [d for d in stack.graph.deliveries if d.delivered]
    await stack.drain()

    assert len(echoes) >= 2 * len(three_calls.message_ids)  # created + the echo of each PATCH
    assert sum(r.method == "PATCH" for r in stack.graph.requests) == len(three_calls.message_ids)
    mails = [await stack.services.store.mails.get_mail(POOL_MAILBOX, m) for m in three_calls.message_ids]
    assert {(m.observed_read, m.written_read) for m in mails if m is not None} == {(True, True)}
    # the claim's line, nothing for the echoes
    assert len(thread_replies(stack, three_calls.conversation_id)) == replies + 1


async def test_a_person_marking_a_done_mail_unread_is_left_alone_by_default(
    stack: BotStack, three_calls: CaseHandle
) -> None:
    await click(stack, three_calls, "done", ANNA)
    await stack.drain()
    await resync(stack)

    outlook_read_unnoticed(stack, three_calls.message_ids[0], False)
    await resync(stack)
    await resync(stack)

    assert stack.graph.mailbox(POOL_MAILBOX).message(three_calls.message_ids[0]).is_read is False
    assert (await case_of(stack, three_calls)).state is CaseState.DONE


class TestRepairSetting:
    @pytest.fixture
    def bot_stack_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OUTLOOK_READ_REPAIR", "true")

    async def test_reconciliation_marks_a_done_mail_read_again(self, stack: BotStack, three_calls: CaseHandle) -> None:
        await click(stack, three_calls, "done", ANNA)
        await stack.drain()
        await resync(stack)

        outlook_read_unnoticed(stack, three_calls.message_ids[0], False)
        await resync(stack)

        assert read_states(stack, three_calls) == {True}
        assert (await case_of(stack, three_calls)).state is CaseState.DONE


class TestDeadLetteredWrite:
    @pytest.fixture
    def bot_stack_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OUTBOX_RETRY_BASE_SECONDS", "0.01")

    async def test_a_lost_read_write_is_repaired_by_the_delta_pass(self, stack: BotStack) -> None:
        """Released after a claim: the lost PATCH leaves the mail flagged, which an open case allows; only its read
        state shows the drift."""
        [handle] = await open_cases(stack, ["0171 2345678"])
        await click(stack, handle, "claim", ANNA)
        await stack.drain()
        await resync(stack)
        stack.graph.add_fault("503", path=PATCHES, method="PATCH", retry_after=0)
        await click(stack, handle, "release", ANNA)
        await stack.drain()
        assert read_states(stack, handle) == {True}

        stack.graph.clear_faults()
        await resync(stack)
        assert read_states(stack, handle) == {False}
        assert (await case_of(stack, handle)).state is CaseState.OPEN


class TestSwitchedOff:
    @pytest.fixture
    def bot_stack_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OUTLOOK_READ_SYNC", "false")

    async def test_flags_still_sync_and_the_read_state_is_never_written(
        self, stack: BotStack, three_calls: CaseHandle
    ) -> None:
        await click(stack, three_calls, "claim", ANNA)
        await stack.drain()
        assert read_states(stack, three_calls) == {False}
        assert {flag_status(stack, m) for m in three_calls.message_ids} == {FlagStatus.FLAGGED}
        assert all("isRead" not in p for m in three_calls.message_ids for p in flag_patches(stack, m))
