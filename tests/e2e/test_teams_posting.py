"""Proactive posting through the outbox: faults from the connector are retried with backoff until the card lands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
from msrest.exceptions import HttpOperationError

from bot.core.jobs import PermanentFailure, RetryLater
from bot.teams.posting import ConversationGone, as_job_error
from sandbox.connector import FaultRule
from tests.support.bot_stack import BotStack, user
from tests.support.teams import action_data, badge, card_json, posted_case, the_card, thread_replies


def _error(status: int, headers: dict[str, str] | None = None) -> HttpOperationError:
    error = HttpOperationError.__new__(HttpOperationError)  # as botbuilder raises it, without a live response
    error.message = f"Operation returned an invalid status code {status}"
    error.response = SimpleNamespace(status_code=status, headers=headers or {})
    return error


@pytest.mark.parametrize("status", [408, 412, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert isinstance(as_job_error(_error(status)), RetryLater)


def test_retry_after_is_honoured_in_seconds_and_as_a_date() -> None:
    seconds = as_job_error(_error(429, {"Retry-After": "7"}))
    assert isinstance(seconds, RetryLater) and seconds.retry_after == timedelta(seconds=7)

    date = as_job_error(_error(503, {"Retry-After": format_datetime(datetime.now(UTC) + timedelta(seconds=30))}))
    assert isinstance(date, RetryLater) and date.retry_after is not None
    assert timedelta(seconds=25) < date.retry_after <= timedelta(seconds=30)

    garbage = as_job_error(_error(429, {"Retry-After": "soon"}))
    assert isinstance(garbage, RetryLater) and garbage.retry_after is None


def test_a_deleted_message_and_a_refusal_are_not_retried() -> None:
    assert isinstance(as_job_error(_error(404)), ConversationGone)
    assert isinstance(as_job_error(_error(403)), PermanentFailure)
    assert isinstance(as_job_error(_error(413)), PermanentFailure)


@pytest.mark.parametrize("status", [429, 412, 502])
async def test_a_failing_post_is_retried_until_the_card_lands(bot_stack: BotStack, status: int) -> None:
    await bot_stack.link()
    bot_stack.connector.inject(FaultRule(status, count=2))
    bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.drain()

    failed = [r for r in bot_stack.connector.requests if r.status == status]
    assert len(failed) == 2, bot_stack.connector.requests
    assert badge(card_json(the_card(bot_stack).current)) == "Offen"  # posted exactly once after the faults
    depth = await bot_stack.services.store.jobs.depth()
    assert not depth.get("dead")


async def test_a_failing_update_and_reply_are_retried(bot_stack: BotStack) -> None:
    card = await posted_case(bot_stack)
    bot_stack.connector.inject(FaultRule(429, count=2, retry_after=1))
    await bot_stack.click("claim", action_data(card_json(card.current), "claim"), user(0), card.conversation_id,
                          card.activity_id)  # fmt: skip
    await bot_stack.drain()

    card = the_card(bot_stack)
    assert badge(card_json(card.current)) == "In Bearbeitung – Anna Schmidt"
    assert len(card.versions) == 2
    assert len(thread_replies(bot_stack, card.conversation_id)) == 1
    assert sum(r.status == 429 for r in bot_stack.connector.requests) == 2
