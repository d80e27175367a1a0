"""Mail that is no call notification — auto-replies, bounces, people's mail, forged PBX senders, PBX notices,
newsletters — ends as ignored or as an unrecognised item: never a call, never part of a caller's case.

The corpus is tests/corpus/noncalls/*.json; every file quotes the caller ``quotes_caller`` somewhere.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.domain.cases import CaseState
from bot.domain.events import EventKind
from bot.placetel import MailAttachment, MailMessage, parse_mail
from tests.support.bot_stack import POOL_MAILBOX, BotStack
from tests.support.ingest import LINE_ID
from tests.support.pbx_mail import eop_headers

NONCALLS = sorted((Path(__file__).parents[1] / "corpus" / "noncalls").glob("*.json"))
CLASSES = {"auto-reply", "bounce", "people", "forged", "notice", "other"}


def load(path: Path) -> tuple[MailMessage, list[str], dict[str, Any]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    raw = doc["mail"]
    mail = MailMessage(
        mailbox=raw["mailbox"],
        message_id=raw["message_id"],
        subject=raw["subject"],
        sender_address=raw["sender_address"],
        body="\n".join(raw["body"]) if isinstance(raw["body"], list) else raw["body"],
        body_type=raw["body_type"],
        received_at=datetime.fromisoformat(raw["received_at"]),
        attachments=tuple(MailAttachment(**a) for a in raw.get("attachments", ())),
        headers=tuple((name, value) for name, value in raw["headers"]),
    )
    return mail, doc["pool_numbers"], doc


def test_corpus_covers_every_class_with_at_least_fifteen_mails() -> None:
    docs = [load(path)[2] for path in NONCALLS]
    assert len(docs) >= 15
    assert {doc["class"] for doc in docs} == CLASSES
    assert {doc["expected"]["outcome"] for doc in docs} == {"ignored", "unrecognised"}


@pytest.mark.parametrize("path", NONCALLS, ids=[p.stem for p in NONCALLS])
def test_non_call_mail_is_ignored_or_unrecognised(path: Path) -> None:
    mail, pool, doc = load(path)
    expected = doc["expected"]
    parsed = parse_mail(mail, pool)

    assert parsed.kind is EventKind.UNRECOGNISED, parsed
    assert parsed.caller is None and parsed.caller_name is None and parsed.pool_number is None
    assert parsed.voicemail_attachment_id is None and parsed.fax_attachment_id is None
    assert parsed.ignored is (expected["outcome"] == "ignored"), parsed.notes
    for fragment in expected["notes_include"]:
        assert any(fragment in note for note in parsed.notes), (fragment, parsed.notes)
    assert not any(note.startswith("parser error") for note in parsed.notes)


FORGED = [p for p in NONCALLS if load(p)[2]["class"] == "forged" and "lookalike" not in p.stem]


@pytest.mark.parametrize("path", FORGED, ids=[p.stem for p in FORGED])
def test_forged_mails_differ_from_a_call_only_by_sender_authentication(path: Path) -> None:
    """Control: with Exchange Online's passing verdict the same mail is a call — so the verdict is what stops it."""
    mail, pool, _doc = load(path)
    authentic = replace(mail, headers=eop_headers(mail.sender_address))
    parsed = parse_mail(authentic, pool)
    assert parsed.kind in {EventKind.MISSED_CALL, EventKind.VOICEMAIL}
    assert parsed.caller is not None


async def test_non_call_mails_never_join_or_reopen_the_callers_case(bot_stack: BotStack) -> None:
    """Through the whole pipeline (Graph stand-in → webhook → parser worker → store → cards): the corpus is
    delivered while the quoted caller's case is open, and again after it was done."""
    await bot_stack.link()
    store = bot_stack.services.store
    call_id = bot_stack.deliver_missed_call("0151 11223344")
    await bot_stack.settle()
    case = await store.cases.find_by_message(POOL_MAILBOX, call_id)
    assert case is not None and case.caller == "+4915111223344" and len(case.events) == 1
    unrecognised = [p for p in NONCALLS if load(p)[2]["expected"]["outcome"] == "unrecognised"]

    async def deliver_corpus() -> list[str]:
        ids = []
        for path in NONCALLS:
            mail, _pool, _doc = load(path)
            message = bot_stack.graph.deliver_mail(
                POOL_MAILBOX,
                mail.subject,
                mail.sender_address,
                mail.body,
                authentication=None,  # the corpus holds the complete headers, Exchange Online's verdict included
                headers=list(mail.headers or ()),
            )
            ids.append(message.id)
        await bot_stack.settle()
        return ids

    async def items_for(ids: list[str]) -> list[Any]:
        found = [await store.cases.find_by_message(POOL_MAILBOX, message_id) for message_id in ids]
        return [item for item in found if item is not None]

    first_round = await deliver_corpus()
    case = await store.cases.find_by_message(POOL_MAILBOX, call_id)
    assert case is not None and [e.mail.message_id for e in case.events] == [call_id]
    items = await items_for(first_round)
    assert len(items) == len(unrecognised)
    assert all(item.caller is None and item.events[0].kind is EventKind.UNRECOGNISED for item in items)
    assert all(item.id != case.id for item in items)

    bot_stack.graph.set_flag(POOL_MAILBOX, call_id, {"flagStatus": "complete"})
    await bot_stack.settle()
    case = await store.cases.find_by_message(POOL_MAILBOX, call_id)
    assert case is not None and case.state is CaseState.DONE

    second_round = await deliver_corpus()
    case = await store.cases.find_by_message(POOL_MAILBOX, call_id)
    assert case is not None and case.state is CaseState.DONE and len(case.events) == 1
    active, _total = await store.cases.list_active([LINE_ID], limit=1000)
    assert not any(c.caller == "+4915111223344" for c in active), "a non-call mail opened a case for the caller"
    assert len(await items_for(second_round)) == len(unrecognised)
