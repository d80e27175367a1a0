"""A mailbox's old Inbox is history: only mail from INITIAL_IMPORT_HOURS before watching began becomes items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.bot_stack import POOL_MAILBOX, BotStack


async def test_old_mail_is_history_recent_mail_is_work(bot_stack: BotStack) -> None:
    await bot_stack.link()
    now = datetime.now(UTC)
    old = bot_stack.graph.deliver_mail(
        POOL_MAILBOX,
        "Verpasster Anruf von '0171 1111111' auf '030 1234500'",
        "no-reply@placetel.de",
        "Von: 0171 1111111",
        received=now - timedelta(hours=30),
    )
    recent = bot_stack.graph.deliver_mail(
        POOL_MAILBOX,
        "Verpasster Anruf von '0171 2222222' auf '030 1234500'",
        "no-reply@placetel.de",
        "Von: 0171 2222222",
        received=now - timedelta(hours=20),
    )
    await bot_stack.settle()

    mails = bot_stack.services.store.mails
    assert await mails.get_mail(POOL_MAILBOX, old.id) is None
    assert await mails.get_mail(POOL_MAILBOX, recent.id) is not None
    assert len(bot_stack.channel_cards()) == 1

    bot_stack.graph.set_flag(POOL_MAILBOX, old.id, {"flagStatus": "complete"})
    await bot_stack.settle()
    assert await mails.get_mail(POOL_MAILBOX, old.id) is None
