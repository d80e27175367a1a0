"""Mail ingestion end to end: Graph stand-in → webhook → job runner → store → card, exactly once."""

from __future__ import annotations

import asyncio
import json

from bot.domain.events import EventKind
from bot.placetel.profiles import load_profiles
from bot.storage.database import require_utc
from sandbox.graph_model import Attachment
from tests.support.bot_stack import POOL_MAILBOX, BotStack, free_port
from tests.support.ingest import (
    LINE_ID,
    change_notifications,
    events_per_mail,
    notifications_lost,
    post_webhook,
    restartable,
    stored_events,
)


def caller(n: int) -> str:
    return f"0171 23456{n:02d}"


async def test_one_mail_gives_one_event_in_one_case(bot_stack: BotStack) -> None:
    await bot_stack.link()
    message_id = bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.settle()

    events = await stored_events(bot_stack)
    assert [(e.mail.message_id, e.kind, e.caller) for e in events] == [
        (message_id, EventKind.MISSED_CALL, "+491712345678")
    ]
    case = await bot_stack.services.store.cases.find_by_message(POOL_MAILBOX, message_id)
    assert case is not None and len(case.events) == 1
    assert len(bot_stack.channel_cards()) == 1


async def test_replayed_notifications_give_one_event(bot_stack: BotStack) -> None:
    await bot_stack.link()
    message_id = bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.settle()
    (payload,) = change_notifications(bot_stack, message_id)

    responses = await asyncio.gather(*(post_webhook(bot_stack, payload) for _ in range(5)))
    await bot_stack.settle()
    for _ in range(3):
        assert (await post_webhook(bot_stack, payload)).status == 202
    await bot_stack.settle()

    assert [r.status for r in responses] == [202] * 5
    assert await events_per_mail(bot_stack) == {message_id: 1}
    assert len(bot_stack.channel_cards()) == 1
    (card,) = bot_stack.channel_cards()
    thread = bot_stack.connector.conversations[card.conversation_id]
    assert [r.operation for r in thread] == ["create"], "a replayed notification must not look like a repeat call"


async def test_overlapping_delta_passes_and_notifications_give_one_event_each(bot_stack: BotStack) -> None:
    await bot_stack.link()
    coordinator = bot_stack.services.coordinator
    line = bot_stack.settings.lines_by_id[LINE_ID]
    mail_ids = [bot_stack.deliver_missed_call(caller(n)) for n in range(6)]
    # Resyncs race the notifications that are being processed right now, and two catch-ups run side by side.
    await coordinator.request_resync(line)
    await asyncio.gather(
        coordinator.handle_resync({"mailbox": POOL_MAILBOX}),
        coordinator.handle_resync({"mailbox": POOL_MAILBOX}),
        bot_stack.settle(),
    )
    # Graph forgets the delta state: the next catch-up reads the whole Inbox again.
    bot_stack.graph.expire_delta_tokens()
    await coordinator.handle_resync({"mailbox": POOL_MAILBOX})
    await coordinator.handle_resync({"mailbox": POOL_MAILBOX})
    # drain, not settle: a card job put back (for its rate-limit slot, or while another job holds the card) is not
    # due, and settle may return before it is posted (5 of 6 cards, once, in a full run).
    await bot_stack.drain()

    assert await events_per_mail(bot_stack) == dict.fromkeys(mail_ids, 1)
    assert len(bot_stack.channel_cards()) == 6
    assert await bot_stack.services.store.jobs.dead_letters() == []


async def test_mails_delivered_while_the_bot_is_down_are_taken_in_once(bot_stack: BotStack) -> None:
    async with restartable(bot_stack) as bot:
        await bot.stop()
        mail_ids = [bot_stack.deliver_missed_call(caller(n)) for n in range(50)]
        await bot_stack.graph.idle()  # Graph gives up on the notifications it could not deliver
        deltas_before = sum("/delta" in r.path for r in bot_stack.graph.requests)
        await bot.start()
        async with asyncio.timeout(30):
            while sum("/delta" in r.path for r in bot_stack.graph.requests) == deltas_before:
                await asyncio.sleep(0.05)
        await bot_stack.settle()

        assert await events_per_mail(bot_stack) == dict.fromkeys(mail_ids, 1)
        # The parser's fields come in the delta pages (the $select of the first round stays in the delta state),
        # not from one GET per mail.
        first_delta = next(r for r in bot_stack.graph.requests if "/delta" in r.path)
        assert {"subject", "body", "from", "receivedDateTime", "internetMessageHeaders"} <= set(
            first_delta.query["$select"].split(",")
        )
        single_reads = [r for r in bot_stack.graph.requests if r.method == "GET" and r.path.endswith(tuple(mail_ids))]
        assert single_reads == []


async def test_voicemail_with_mp3_gives_a_voicemail_event(bot_stack: BotStack) -> None:
    recording = Attachment(name="voicemail_0171.mp3", content_type="audio/mpeg", content=b"ID3" + bytes(4000))
    message = bot_stack.graph.deliver_mail(
        POOL_MAILBOX,
        "Neue Sprachnachricht von '0171 2345678' auf '030 1234500'",
        "no-reply@placetel.de",
        "Sie haben eine neue Sprachnachricht erhalten.\n\nAnrufer: 0171 2345678\nLänge: 0:42\n",
        attachments=[recording],
    )
    await bot_stack.settle()

    (event,) = await stored_events(bot_stack)
    assert event.mail.message_id == message.id
    assert event.kind is EventKind.VOICEMAIL
    assert event.caller == "+491712345678"
    assert event.voicemail is not None
    assert (event.voicemail.attachment_id, event.voicemail.duration_seconds) == (recording.id, 42)


async def test_newsletter_becomes_a_visible_unrecognised_item(bot_stack: BotStack) -> None:
    await bot_stack.link()
    message = bot_stack.graph.deliver_mail(
        POOL_MAILBOX,
        "Black Friday: 30 % auf alles!",
        "newsletter@shop-angebote.example",
        "<html><body><h1>Nur heute!</h1><p>Rückruf-Service: 0800 5566778</p></body></html>",
        body_type="html",
    )
    await bot_stack.settle()

    (event,) = await stored_events(bot_stack)
    assert (event.mail.message_id, event.kind, event.caller) == (message.id, EventKind.UNRECOGNISED, None)
    (card,) = bot_stack.channel_cards()
    facts = {
        fact["title"]: fact["value"]
        for block in card.current["attachments"][0]["content"]["body"]
        if block["type"] == "FactSet"
        for fact in block["facts"]
    }
    assert "Black Friday" in facts["Betreff"]
    assert facts["Absender"].startswith("newsletter") and "shop-angebote" in facts["Absender"]  # defanged address


async def test_notification_for_a_mail_that_is_gone_is_handled_quietly(bot_stack: BotStack) -> None:
    with notifications_lost(bot_stack):
        message_id = bot_stack.deliver_missed_call("0171 2345678")
        await bot_stack.graph.idle()
    (payload,) = change_notifications(bot_stack, message_id)
    bot_stack.graph.delete_message(POOL_MAILBOX, message_id)

    assert (await post_webhook(bot_stack, payload)).status == 202
    await bot_stack.settle()

    assert await stored_events(bot_stack) == []
    assert await bot_stack.services.store.jobs.dead_letters() == []
    assert any(r.status == 404 and r.path.endswith(message_id) for r in bot_stack.graph.requests)


async def test_notification_of_an_unknown_subscription_is_ignored(bot_stack: BotStack) -> None:
    with notifications_lost(bot_stack):
        message_id = bot_stack.deliver_missed_call("0171 2345678")
        await bot_stack.graph.idle()
    (payload,) = change_notifications(bot_stack, message_id)
    payload["value"][0]["subscriptionId"] = "00000000-0000-0000-0000-00000000dead"
    bot_stack.graph.clear_requests()

    assert (await post_webhook(bot_stack, payload)).status == 202
    await bot_stack.settle()

    assert await stored_events(bot_stack) == []
    assert not any(r.path.endswith(message_id) for r in bot_stack.graph.requests)
    assert await bot_stack.services.store.jobs.dead_letters() == []


async def test_configured_parser_profiles_are_used(bot_stack: BotStack) -> None:
    profile = {
        "name": "sipgate",
        "sender_domains": ["sipgate.de"],
        "subject_patterns": {"missed_call": ["Anruf verpasst"]},
        "body_patterns": {"caller": ["\\bGegenstelle[ \\t]*:[ \\t]*(?P<value>[^\\t\\n]*)"]},
    }
    load_profiles(json.dumps([profile]))  # the sample profile of docs/parser.md is valid
    settings = bot_stack.settings.model_copy(update={"parser_profiles": json.dumps([profile])})
    async with restartable(bot_stack) as bot:
        await bot.stop()
        await bot.start(settings)
        await bot_stack.settle()
        message = bot_stack.graph.deliver_mail(
            POOL_MAILBOX,
            "Anruf verpasst",
            "noreply@sipgate.de",
            "Ihre Nummer: 030 1234500\nGegenstelle: 0151 9876543\nRückruf unter 0800 1112223",
        )
        await bot_stack.settle()

        (event,) = await stored_events(bot_stack)
        assert (event.mail.message_id, event.kind, event.caller) == (
            message.id,
            EventKind.MISSED_CALL,
            "+491519876543",
        )


async def test_periodic_catch_up_finds_a_lost_mail_on_one_instance_per_interval(bot_stack: BotStack) -> None:
    with notifications_lost(bot_stack):
        message_id = bot_stack.deliver_missed_call("0171 2345678")
        await bot_stack.settle()
    first = bot_stack.services.coordinator

    await first.periodic_catch_up()
    await bot_stack.settle()
    assert await events_per_mail(bot_stack) == {message_id: 1}

    def delta_requests() -> int:
        return sum("/delta" in r.path for r in bot_stack.graph.requests)

    async with restartable(bot_stack) as bots:  # a second instance on the same database
        port = free_port()
        before_start = delta_requests()
        await bots.start(
            bot_stack.settings.model_copy(update={"port": port, "public_base_url": f"http://127.0.0.1:{port}"})
        )
        # Its start-up catch-up runs in the background: wait for it, or it could land after the count below.
        async with asyncio.timeout(30):
            while delta_requests() == before_start:
                await asyncio.sleep(0.05)
        await bot_stack.settle()
        deltas = delta_requests()
        await bot_stack.services.coordinator.periodic_catch_up()  # the first instance holds this interval
        await bot_stack.settle()
        assert delta_requests() == deltas


async def test_the_event_names_the_called_number_and_keeps_an_invalid_number_as_written(bot_stack: BotStack) -> None:
    """A caller who tried both of the line's numbers has one case, and each call says which number it was."""
    line = bot_stack.settings.lines_by_id[LINE_ID]
    two_numbers = line.model_copy(update={"numbers": [*line.numbers, "+49301234501"]})
    settings = bot_stack.settings.model_copy(update={"pool_lines": [two_numbers]})
    async with restartable(bot_stack) as bot:
        await bot.stop()
        await bot.start(settings)
        await bot_stack.link()
        first = bot_stack.deliver_missed_call("0152 3334445")
        second = bot_stack.deliver_missed_call(
            "0152 3334445",
            subject="Verpasster Anruf von '0152 3334445' auf '030 1234501'",
            body="Sie haben einen Anruf verpasst.\nVon: 0152 3334445\nAn: 030 1234501\n",
        )
        await bot_stack.settle()

        case = await bot_stack.services.store.cases.find_by_message(POOL_MAILBOX, first)
        assert case is not None
        called = {e.mail.message_id: e.called_number for e in case.events}
        assert called == {first: "+49301234500", second: "+49301234501"}
        assert {e.caller_as_written for e in case.events} == {"0152 3334445"}  # phonenumbers: not a valid number
        assert len(bot_stack.channel_cards()) == 1


async def test_a_new_calls_card_is_due_since_the_call_so_it_goes_before_work_queued_later(bot_stack: BotStack) -> None:
    await bot_stack.link()
    message_id = bot_stack.deliver_missed_call("0171 2345678")
    await bot_stack.settle()

    store = bot_stack.services.store
    case = await store.cases.find_by_message(POOL_MAILBOX, message_id)
    assert case is not None
    async with store.database.read() as cursor:
        await cursor.execute(
            "SELECT run_at, created_at FROM jobs WHERE kind = 'teams.card' AND dedupe_key = ?", (f"card:{case.id}",)
        )
        (job,) = await cursor.fetchall()
    assert require_utc(job["run_at"]) == case.events[0].received_at < require_utc(job["created_at"])
