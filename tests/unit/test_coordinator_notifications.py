"""The coordinator reads the notification the webhook validated and queued (not validated a second time): a change
reaches the ingestor, lifecycle events reach the subscriptions, an unknown one is refused for good."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bot.config import PoolLine, Settings
from bot.core.coordinator import MailboxCoordinator
from bot.core.ingest import MailIngestor
from bot.core.jobs import PermanentFailure
from bot.core.ports import Store, Subscription, Subscriptions

MAILBOX = "z@praxis.example"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def on_mail_changed(self, line: PoolLine, message_id: str) -> None:
        self.calls.append(("mail", message_id))

    async def reauthorize(self, line: PoolLine, subscription_id: str, now: datetime | None = None) -> None:
        self.calls.append(("reauthorize", subscription_id))

    async def by_id(self, subscription_id: str) -> Subscription | None:
        return Subscription(MAILBOX, subscription_id, datetime(2026, 12, 2, tzinfo=UTC)) if subscription_id else None


def _coordinator(recorder: Recorder) -> MailboxCoordinator:
    line = {"id": "zentrale", "mailbox": MAILBOX, "numbers": ["+49301234500"], "display_name": "Zentrale"}
    settings = Settings(_env_file=None, sandbox_mode=True, graph_client_state="s", pool_lines=[line])  # type: ignore[call-arg]
    store = SimpleNamespace(subscriptions=SimpleNamespace(subscription_by_id=recorder.by_id))

    async def nothing(*_: object) -> int:
        return 0

    return MailboxCoordinator(
        settings,
        cast(Store, store),
        cast(Subscriptions, recorder),
        cast(MailIngestor, recorder),
        "instance",
        nothing,
        nothing,
    )


async def test_a_change_reaches_the_ingestor_and_a_lifecycle_event_the_subscriptions() -> None:
    recorder = Recorder()
    coordinator = _coordinator(recorder)
    await coordinator.handle_notification(
        {"subscriptionId": "s", "changeType": "created", "resourceData": {"id": "m1"}}
    )
    await coordinator.handle_notification({"subscriptionId": "s", "lifecycleEvent": "reauthorizationRequired"})
    await coordinator.handle_notification({"subscriptionId": "s", "changeType": "updated"})  # no resourceData
    assert recorder.calls == [("mail", "m1"), ("reauthorize", "s")]


async def test_an_unknown_lifecycle_event_is_refused_for_good() -> None:
    with pytest.raises(PermanentFailure):
        await _coordinator(Recorder()).handle_notification({"subscriptionId": "s", "lifecycleEvent": "exploded"})
