"""Helpers for the flag-sync tests: cases with their cards and mails, Teams clicks, Outlook flags, waiting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.core.sync import flag_agrees
from bot.core.values import FlagStatus
from bot.domain.cases import Case
from sandbox.graph_model import apply_message_changes, parse_flag
from tests.support.bot_stack import CHANNEL_ID, POOL_MAILBOX, BotStack

OUTLOOK_FLAGS: dict[FlagStatus, dict[str, Any]] = {
    FlagStatus.FLAGGED: {"flagStatus": "flagged"},
    FlagStatus.COMPLETE: {"flagStatus": "complete"},
    FlagStatus.NOT_FLAGGED: {"flagStatus": "notFlagged"},
}


@dataclass(frozen=True)
class CaseHandle:
    """A case as the tests drive it: its id, its card's thread and root message, and its mails."""

    case_id: str
    conversation_id: str
    activity_id: str
    message_ids: tuple[str, ...]


async def open_cases(stack: BotStack, callers: list[str], calls_per_caller: int = 1) -> list[CaseHandle]:
    """Deliver ``calls_per_caller`` missed calls from each caller and wait for their cards (the line is linked)."""
    mails: dict[str, list[str]] = {}
    for _ in range(calls_per_caller):
        for caller in callers:
            mails.setdefault(caller, []).append(stack.deliver_missed_call(caller))
    await stack.drain()
    handles = []
    for caller in callers:
        state = await stack.services.store.mails.get_mail(POOL_MAILBOX, mails[caller][0])
        assert state is not None, f"the mail of {caller} was not taken in"
        card = await stack.services.store.cards.get_card(state.case_id)
        assert card is not None, f"no card for {caller}"
        handles.append(CaseHandle(state.case_id, card.conversation_id, card.activity_id, tuple(mails[caller])))
    return handles


async def click(stack: BotStack, handle: CaseHandle, verb: str, who: dict[str, str]) -> dict[str, Any]:
    """A button press on the case's card in the channel."""
    assert handle.conversation_id.startswith(CHANNEL_ID)
    return await stack.click(verb, {"case_id": handle.case_id}, who, handle.conversation_id, handle.activity_id)


def outlook_flag(stack: BotStack, message_id: str, flag: FlagStatus) -> None:
    """Someone changes the mail's flag in Outlook (Graph sends an ``updated`` notification)."""
    stack.graph.set_flag(POOL_MAILBOX, message_id, OUTLOOK_FLAGS[flag])


def outlook_flag_unnoticed(stack: BotStack, message_id: str, flag: FlagStatus) -> None:
    """Someone changes the flag in Outlook and the notification is lost: only a delta query shows it."""
    box = stack.graph.mailbox(POOL_MAILBOX)
    apply_message_changes(box.message(message_id), {"flag": parse_flag(OUTLOOK_FLAGS[flag])}, box.next_sequence())


def mail_flag(stack: BotStack, message_id: str) -> dict[str, Any]:
    """The mail's followupFlag as Outlook shows it."""
    return dict(stack.graph.mailbox(POOL_MAILBOX).message(message_id).flag)


def flag_status(stack: BotStack, message_id: str) -> FlagStatus:
    return FlagStatus(mail_flag(stack, message_id)["flagStatus"])


async def case_of(stack: BotStack, handle: CaseHandle) -> Case:
    case = await stack.services.store.cases.get(handle.case_id)
    assert case is not None
    return case


async def disagreements(stack: BotStack, handles: list[CaseHandle]) -> list[str]:
    """Every mail whose Outlook flag does not agree with its case, described for an assertion message."""
    found = []
    for handle in handles:
        case = await case_of(stack, handle)
        for message_id in handle.message_ids:
            flag = flag_status(stack, message_id)
            if not flag_agrees(case, flag):
                found.append(f"case {case.id[:8]} is {case.state} (reopened={case.reopened}) but a mail is {flag}")
    return found


PATCHES = r"/messages/[^/]+$"
"""The path of a message PATCH, for fault injection."""


async def resync(stack: BotStack) -> None:
    """The periodic delta pass, as the coordinator starts it."""
    [line] = stack.settings.pool_lines
    await stack.services.coordinator.request_resync(line)
    await stack.drain()


def card_content(stack: BotStack, handle: CaseHandle) -> dict[str, Any]:
    """The card as everyone in the channel sees it now."""
    record = stack.connector.find(handle.activity_id)
    return dict(record.current["attachments"][0]["content"])


def flag_patches(stack: BotStack, message_id: str) -> list[dict[str, Any]]:
    """The bodies of the bot's flag PATCHes of one mail that Graph accepted."""
    return [
        request.body
        for request in stack.graph.requests
        if request.method == "PATCH"
        and request.path.endswith(message_id)
        and request.status == 200
        and isinstance(request.body, dict)
        and "flag" in request.body
    ]
