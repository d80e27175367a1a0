"""Placetel's call webhooks end to end: Placetel stand-in → signed webhook → queue → case → card and thread.

Real-time cases (the mail joins the webhook's event and the other way round: one call, not two), callbacks
(reached → done when the line says so, unreached → open), an answered repeat call, withheld callers, duplicate and
out-of-order events, and callers or numbers the bot does not know.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.core.effects import no_effects
from bot.core.values import FlagStatus
from bot.domain.cases import CALLBACK_ACTOR, Actor, Case, CaseState, ContactKind
from bot.domain.events import WITHHELD, EventKind
from bot.domain.state_machine import Verb
from bot.placetel.notify import NOTIFY_PATH
from cards.i18n import Lang, text
from sandbox.placetel import PlacetelStandIn
from tests.support.bot_stack import POOL_MAILBOX, POOL_NUMBER, BotStack
from tests.support.cards import card_texts
from tests.support.ingest import LINE_ID
from tests.support.teams import badge, card_json, deliver_voicemail, thread_replies

SECRET = "notify-secret-of-the-test"
CALLER = "0171 2345678"
CALLER_E164 = "+491712345678"
ANNA_SIP = "7777anna@fpbx.de"
LINE = {
    "id": LINE_ID,
    "mailbox": POOL_MAILBOX,
    "numbers": [POOL_NUMBER],
    "display_name": "Zentrale",
    "team_extensions": {ANNA_SIP: "Anna Schmidt", "12": "Durchwahl 12"},
}
DE = Lang.DE


METRICS_TOKEN = "metrics-token-0123456789"


def settings_with(**line: Any) -> dict[str, Any]:
    return {"placetel_notify_secret": SECRET, "pool_lines": [LINE | line], "metrics_token": METRICS_TOKEN}


@pytest.fixture
def bot_settings_overrides() -> dict[str, Any]:
    return settings_with(auto_done_on_callback="reached")


@pytest.fixture
async def placetel(bot_stack: BotStack) -> AsyncIterator[PlacetelStandIn]:
    await bot_stack.link()
    yield PlacetelStandIn(bot_stack.http, bot_stack.bot_url + NOTIFY_PATH, SECRET)


async def cases_of_line(stack: BotStack) -> list[Case]:
    active, _ = await stack.services.store.cases.list_active([LINE_ID], limit=100)
    return active


async def the_case(stack: BotStack) -> Case:
    (case,) = await cases_of_line(stack)
    return case


def card_now(stack: BotStack) -> dict[str, Any]:
    (card,) = stack.channel_cards()
    return card_json(card.current)


# Real-time cases and the mail that follows ---------------------------------------------------------------------


async def test_a_missed_call_webhook_makes_the_card_and_the_later_mail_joins_it(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    call_id = await placetel.missed_call(CALLER, POOL_NUMBER, voicemail=True)
    await bot_stack.settle()
    case = await the_case(bot_stack)
    (event,) = case.events
    assert (event.kind, event.caller, event.call_id, event.mail) == (EventKind.VOICEMAIL, CALLER_E164, call_id, None)
    assert event.called_number == POOL_NUMBER
    assert len(bot_stack.channel_cards()) == 1, "the card appears before the mail"

    message_id = deliver_voicemail(bot_stack, CALLER, b"ID3-voicemail-audio")
    await bot_stack.drain()

    case = await the_case(bot_stack)
    (event,) = case.events
    assert event.call_id == call_id and event.mail is not None and event.mail.message_id == message_id
    assert event.voicemail is not None and event.voicemail.file_name.endswith(".mp3"), "the mail brings the audio"
    assert await bot_stack.services.store.cases.find_by_message(POOL_MAILBOX, message_id) == case
    (card,) = bot_stack.channel_cards()
    assert thread_replies(bot_stack, card.conversation_id) == [], "the mail is not a second call"
    # Issue 15: "Anhören" is a click (Action.Execute) for the joined event, the card carries no link.
    listens = [
        action
        for block in card_json(card.current)["body"]
        if block.get("type") == "ActionSet"
        for action in block["actions"]
        if action.get("verb") == "listen"
    ]
    assert [(action["type"], action["title"], action["data"]["event"]) for action in listens] == [
        ("Action.Execute", text(DE, "listen"), event.source_id)
    ]


async def test_a_mail_that_came_first_is_joined_by_the_webhook(bot_stack: BotStack, placetel: PlacetelStandIn) -> None:
    message_id = bot_stack.deliver_missed_call(CALLER)
    await bot_stack.settle()
    call_id = await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()

    case = await the_case(bot_stack)
    (event,) = case.events
    assert event.mail is not None and (event.mail.message_id, event.call_id) == (message_id, call_id)
    assert thread_replies(bot_stack, bot_stack.channel_cards()[0].conversation_id) == []


@pytest.mark.parametrize("bot_settings_overrides", [settings_with() | {"placetel_match_window_seconds": 0}])
async def test_outside_the_window_a_mail_and_a_webhook_are_two_calls(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()
    bot_stack.deliver_missed_call(CALLER)
    await bot_stack.settle()

    case = await the_case(bot_stack)
    assert case.call_count == 2
    assert len(thread_replies(bot_stack, bot_stack.channel_cards()[0].conversation_id)) == 1


async def test_a_second_missed_call_of_the_caller_joins_the_case_as_a_repeat(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()

    assert (await the_case(bot_stack)).call_count == 2
    (reply,) = thread_replies(bot_stack, bot_stack.channel_cards()[0].conversation_id)
    assert reply.startswith("Erneuter Anruf")


async def test_duplicate_and_out_of_order_events_count_once(bot_stack: BotStack, placetel: PlacetelStandIn) -> None:
    incoming, hung_up = PlacetelStandIn.missed_call_events(CALLER, POOL_NUMBER)
    for fields in (hung_up, hung_up, incoming, hung_up):  # HungUp before IncomingCall, and redelivered
        assert (await placetel.post(fields)).status == 200
    await bot_stack.settle()
    assert (await placetel.post(hung_up, as_json=True)).status == 200  # after its job ran: again nothing
    await bot_stack.settle()

    case = await the_case(bot_stack)
    assert case.call_count == 1

    outgoing, callback = PlacetelStandIn.callback_events(POOL_NUMBER, CALLER, peer=ANNA_SIP, reached=False)
    for fields in (callback, callback, outgoing):  # HungUp before OutgoingCall
        assert (await placetel.post(fields)).status == 200
    await bot_stack.settle()
    assert (await placetel.post(callback, as_json=True)).status == 200
    await bot_stack.settle()

    case = await the_case(bot_stack)
    assert [contact.kind for contact in case.contacts] == [ContactKind.CALLBACK]
    (card,) = bot_stack.channel_cards()
    assert len(thread_replies(bot_stack, card.conversation_id)) == 1

    metrics_auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}  # issue 15: /metrics needs the token
    async with bot_stack.http.get(bot_stack.bot_url + "/metrics", headers=metrics_auth) as response:
        metrics = await response.text()
    assert 'rufpool_placetel_webhooks_total{outcome="accepted"}' in metrics
    assert 'rufpool_contacts_total{kind="callback"}' in metrics


# Callbacks ---------------------------------------------------------------------------------------------------


async def test_a_callback_that_reached_the_caller_marks_the_case_done(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    message_id = bot_stack.deliver_missed_call(CALLER)
    await bot_stack.settle()

    await placetel.callback(POOL_NUMBER, CALLER, peer=ANNA_SIP, reached=True, talk_seconds=135)
    await bot_stack.drain()

    assert await cases_of_line(bot_stack) == []
    case = await bot_stack.services.store.cases.find_by_message(POOL_MAILBOX, message_id)
    assert case is not None and case.state is CaseState.DONE and case.done_by == CALLBACK_ACTOR
    (reply,) = thread_replies(bot_stack, bot_stack.channel_cards()[0].conversation_id)
    assert reply.startswith("Rückruf von Anna Schmidt · ") and reply.endswith(" · erreicht (2:15 Min.)")
    card = card_now(bot_stack)
    assert badge(card) == "Erledigt – durch Rückruf"
    lines = card_texts(card).splitlines()
    assert any(line.startswith("Rückruf: Anna Schmidt") and "erreicht (2:15 Min.)" in line for line in lines)
    assert bot_stack.graph.mailbox(POOL_MAILBOX).message(message_id).flag["flagStatus"] == FlagStatus.COMPLETE


async def test_the_mail_of_a_call_already_done_by_callback_joins_it_and_is_flagged_complete(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()
    await placetel.callback(POOL_NUMBER, CALLER, peer=ANNA_SIP, reached=True)
    await bot_stack.settle()

    message_id = bot_stack.deliver_missed_call(CALLER)
    await bot_stack.drain()

    case = await bot_stack.services.store.cases.find_by_message(POOL_MAILBOX, message_id)
    assert case is not None and case.state is CaseState.DONE and case.call_count == 1
    assert bot_stack.graph.mailbox(POOL_MAILBOX).message(message_id).flag["flagStatus"] == FlagStatus.COMPLETE
    assert len(bot_stack.channel_cards()) == 1 and badge(card_now(bot_stack)) == "Erledigt – durch Rückruf"


async def test_an_unreached_callback_is_shown_and_never_closes(bot_stack: BotStack, placetel: PlacetelStandIn) -> None:
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()

    await placetel.callback(POOL_NUMBER, CALLER, peer="12", reached=False)
    await bot_stack.settle()

    case = await the_case(bot_stack)
    assert case.state is CaseState.OPEN
    (reply,) = thread_replies(bot_stack, bot_stack.channel_cards()[0].conversation_id)
    assert reply.startswith("Rückruf von Durchwahl 12 · ") and reply.endswith(" · nicht erreicht")
    card = card_now(bot_stack)
    assert badge(card) == "Offen"
    lines = card_texts(card).splitlines()
    assert any(line.startswith("Rückruf: Durchwahl 12") and "nicht erreicht" in line for line in lines)


async def test_a_callback_while_someone_holds_the_case_closes_it_too(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()
    case = await the_case(bot_stack)
    ben = Actor("aad-ben", "Ben Weber")
    claimed = await bot_stack.services.store.cases.transition(
        case.id, Verb.CLAIM, ben, datetime.now(UTC), timedelta(minutes=120), effects=no_effects
    )
    assert claimed.applied

    await placetel.callback(POOL_NUMBER, CALLER, peer=ANNA_SIP, reached=True)
    await bot_stack.settle()

    done = await bot_stack.services.store.cases.get(case.id)
    assert done is not None and done.state is CaseState.DONE and done.done_by == CALLBACK_ACTOR


async def test_a_callback_from_a_team_members_own_number_counts_through_their_sip_user(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()

    await placetel.callback("030 1234599", CALLER, peer=ANNA_SIP, reached=False)  # Anna's direct number
    await bot_stack.settle()

    (contact,) = (await the_case(bot_stack)).contacts
    assert (contact.agent, contact.reached) == ("Anna Schmidt", False)


@pytest.mark.parametrize("bot_settings_overrides", [settings_with(auto_done_on_callback="never")])
async def test_a_line_that_never_closes_by_callback_shows_it_and_offers_done_first(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()
    await placetel.callback(POOL_NUMBER, CALLER, peer=ANNA_SIP, reached=True, talk_seconds=61)
    await bot_stack.settle()

    assert (await the_case(bot_stack)).state is CaseState.OPEN
    card = card_now(bot_stack)
    assert [action.get("verb") for action in card["actions"]] == ["done", "claim"]
    assert text(DE, "reached_hint") in card_texts(card).splitlines()


async def test_callbacks_to_unknown_numbers_or_from_elsewhere_change_nothing(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()
    before = await the_case(bot_stack)

    await placetel.callback(POOL_NUMBER, "0171 9999999", peer=ANNA_SIP, reached=True)  # nobody with a case
    await placetel.callback("040 5550100", CALLER, peer="someone@else.de", reached=True)  # not the team's line
    await placetel.callback(POOL_NUMBER, "sip:intern@fpbx.de", peer=ANNA_SIP, reached=True)  # an internal call
    await bot_stack.settle()

    assert await the_case(bot_stack) == before
    assert thread_replies(bot_stack, bot_stack.channel_cards()[0].conversation_id) == []
    assert len(bot_stack.channel_cards()) == 1


NORD = {
    "id": "nord",
    "mailbox": "nord@praxis.example",
    "numbers": ["040 5550100"],
    "display_name": "Nord",
    "notify_secret": "nord-secret",
}


@pytest.mark.parametrize("bot_settings_overrides", [{"pool_lines": [LINE, NORD]}])
async def test_a_line_secret_speaks_only_for_its_own_line(bot_stack: BotStack, placetel: PlacetelStandIn) -> None:
    _incoming, to_zentrale = PlacetelStandIn.missed_call_events(CALLER, POOL_NUMBER)
    assert (await placetel.post(to_zentrale, secret="nord-secret")).status == 200  # genuine, but not Zentrale's
    assert (await placetel.post(to_zentrale)).status == 401  # no global secret configured here
    _incoming, to_nord = PlacetelStandIn.missed_call_events(CALLER, "040 5550100")
    assert (await placetel.post(to_nord, secret="nord-secret")).status == 200
    await bot_stack.settle()

    assert await cases_of_line(bot_stack) == []
    nord_cases, _ = await bot_stack.services.store.cases.list_active(["nord"])
    assert [case.caller for case in nord_cases] == [CALLER_E164]


# The caller calls again -----------------------------------------------------------------------------------------


async def test_an_answered_repeat_call_is_noted_and_offers_done(bot_stack: BotStack, placetel: PlacetelStandIn) -> None:
    await placetel.missed_call(CALLER, POOL_NUMBER)
    await bot_stack.settle()

    await placetel.caller_reached(CALLER, POOL_NUMBER, peer=ANNA_SIP)
    await bot_stack.settle()

    case = await the_case(bot_stack)
    assert case.state is CaseState.OPEN and case.call_count == 1
    assert [c.kind for c in case.contacts] == [ContactKind.CALLER_REACHED], "CallAccepted and HungUp are one call"
    (reply,) = thread_replies(bot_stack, bot_stack.channel_cards()[0].conversation_id)
    assert reply.startswith("Anrufer hat erneut angerufen und wurde erreicht · ")
    card = card_now(bot_stack)
    assert card["actions"][0]["verb"] == "done" and card["actions"][0].get("style") == "positive"


# Withheld callers -------------------------------------------------------------------------------------------------


async def test_withheld_callers_never_group_and_their_mail_joins_the_closest_call(
    bot_stack: BotStack, placetel: PlacetelStandIn
) -> None:
    first = await placetel.missed_call("anonymous", POOL_NUMBER)
    await placetel.missed_call("anonymous", POOL_NUMBER)
    await bot_stack.settle()
    cases = await cases_of_line(bot_stack)
    assert len(cases) == 2 and all(case.caller == WITHHELD for case in cases)

    bot_stack.deliver_missed_call(
        "anonymous", subject="Verpasster Anruf von 'anonymous' auf '030 1234500'", body="Anruf von: anonymous\n"
    )
    await placetel.caller_reached("anonymous", POOL_NUMBER, peer=ANNA_SIP)
    await placetel.callback(POOL_NUMBER, "anonymous", peer=ANNA_SIP, reached=True)
    await bot_stack.settle()

    cases = await cases_of_line(bot_stack)
    assert len(cases) == 2, "the mail joined one of the calls; nothing closed or joined a withheld caller's case"
    assert sum(case.call_count for case in cases) == 2
    with_mail = [event for case in cases for event in case.events if event.mail is not None]
    assert len(with_mail) == 1 and with_mail[0].call_id is not None
    assert all(case.contacts == () for case in cases)
    assert first in {event.call_id for case in cases for event in case.events}
