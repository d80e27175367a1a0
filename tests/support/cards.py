"""Cases and card variants for the card tests (and the picture renderer in docs/)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bot.domain.callbacks import AutoDone, apply_contact
from bot.domain.cases import Actor, Case, Contact, ContactKind, PreviousCase
from bot.domain.events import WITHHELD, CallEvent, EventKind, Voicemail
from bot.domain.state_machine import Verb, decide
from cards.case_card import CaseCardView, build_case_card
from cards.i18n import Lang
from cards.list_card import CaseListView, ListCommand, build_list_card
from cards.messages import build_help_card, build_link_confirmation_card, build_unlink_confirmation_card
from tests.support.storage import make_event

NOW = datetime(2026, 11, 27, 9, 40, tzinfo=UTC)
"""10:40 in Berlin (CET)."""
TIMEOUT = timedelta(minutes=30)
ANNA = Actor("aad-anna", "Anna Schmidt")
BOB = Actor("aad-bob", "Bob Meyer")
LINE_ID = "line-zentrale"
LINE_NAME = "Zentrale"
OUTLOOK_LINK = "https://outlook.office365.com/owa/?ItemID=AAMkAGI2%2BTHIS&exvsurl=1&viewmodel=ReadMessageItem"
VOICEMAIL_URL = "https://rufpool.example.org/voicemail/abc123"
HOSTILE = (
    "[klick](https://evil.example) **fett** <b>x</b> _k_ `c` # h > q ~s~ | ! www.evil.example a@evil.example "
    "mailto:b@evil.com evil\u200b.com https://evil.\u200bcom/x ftp://evil.org <https://evil.net> evil.com"
)

Json = dict[str, Any]


def card_event(n: int = 0, *, at: datetime | None = None, **fields: Any) -> CallEvent:
    """Call ``n`` of the card tests' line, 5 × (10 − n) minutes before :data:`NOW` unless ``at`` says when, from a
    "Verpasster Anruf" mail in the pool mailbox with an Outlook link; ``fields`` as for ``make_event``."""
    preset = {"subject": "Verpasster Anruf", "web_link": OUTLOOK_LINK}
    received = at or NOW - timedelta(minutes=5 * (10 - n))
    return make_event(f"msg-{n}", line_id=LINE_ID, mailbox="pool@example.org", at=received, **(preset | fields))


def make_case(*events: CallEvent, case_id: str = "case-1") -> Case:
    first, *rest = events or (card_event(),)
    case = Case(
        id=case_id,
        line_id=LINE_ID,
        caller=first.caller,
        created_at=first.received_at,
        events=(first,),
        caller_name=first.caller_name,
        updated_at=first.received_at,
    )
    for event in rest:
        case = case.with_event(event)
    return case


def apply(case: Case, verb: Verb, actor: Actor, at: datetime) -> Case:
    result = decide(case, verb, actor, at, TIMEOUT)
    assert isinstance(result, Case), result
    return result


def open_case() -> Case:
    return make_case(card_event(0, caller_name="Max Mustermann"), card_event(1), card_event(2))


def claimed_case() -> Case:
    return apply(open_case(), Verb.CLAIM, ANNA, NOW - timedelta(minutes=8))


def done_case() -> Case:
    return apply(claimed_case(), Verb.DONE, ANNA, NOW - timedelta(minutes=2))


def voicemail_case() -> Case:
    return make_case(card_event(0, kind=EventKind.VOICEMAIL, voicemail=Voicemail("att-1", "vm.wav", 42)))


def callback_case(*, reached: bool, auto_done: AutoDone = AutoDone.REACHED, agent: str = "Anna Schmidt") -> Case:
    """The open case after a callback 8 minutes ago (2:15 talk time when reached)."""
    at = NOW - timedelta(minutes=8)
    contact = Contact("call-1", ContactKind.CALLBACK, at, reached, 135 if reached else 0, agent)
    return apply_contact(open_case(), contact, auto_done, at + timedelta(seconds=135), TIMEOUT)


def caller_reached_case() -> Case:
    """The open case after the caller rang again and somebody answered."""
    contact = Contact("call-2", ContactKind.CALLER_REACHED, NOW - timedelta(minutes=3), True, 60)
    return apply_contact(open_case(), contact, AutoDone.REACHED, NOW, TIMEOUT)


def case_view(case: Case, lang: Lang = Lang.DE, **overrides: Any) -> CaseCardView:
    values: dict[str, Any] = {"case": case, "line_name": LINE_NAME, "lang": lang, "now": NOW, "claim_timeout": TIMEOUT}
    values.update(overrides)
    return CaseCardView(**values)


def list_view(
    cases: list[Case], total: int, offset: int = 0, lang: Lang = Lang.DE, command: ListCommand = ListCommand.OPEN
) -> CaseListView:
    return CaseListView(
        command=command, cases=cases, total=total, offset=offset, line_names={LINE_ID: LINE_NAME}, lang=lang, now=NOW
    )


def many_cases(count: int) -> list[Case]:
    cases = []
    for n in range(count):
        case = make_case(card_event(n, caller=f"+49301234{n:03d}"), case_id=f"case-{n}")
        cases.append(apply(case, Verb.CLAIM, BOB, NOW) if n % 3 == 0 else case)
    return cases


def card_variants() -> Iterator[tuple[str, Callable[[], Json]]]:
    """Every card the bot sends, by name: each case state in both languages and every special case."""
    for lang in Lang:
        yield f"open-{lang}", partial(_case_card, open_case, lang)
        yield f"claimed-{lang}", partial(_case_card, claimed_case, lang)
        yield f"done-{lang}", partial(_case_card, done_case, lang)
        yield f"list-{lang}", partial(_list_card, lang)
        yield f"help-{lang}", partial(build_help_card, lang)
        yield f"link-{lang}", partial(build_link_confirmation_card, LINE_NAME, lang)
        yield f"done-by-callback-{lang}", partial(_case_card, partial(callback_case, reached=True), lang)
        yield f"caller-reached-{lang}", partial(_case_card, caller_reached_case, lang)
    yield "callback-unreached", lambda: build_case_card(case_view(callback_case(reached=False, agent=HOSTILE)))
    yield "withheld", lambda: build_case_card(case_view(make_case(card_event(caller=WITHHELD))))
    yield "no-number", lambda: build_case_card(case_view(make_case(card_event(caller=None))))
    yield (
        "unrecognised",
        lambda: build_case_card(
            case_view(make_case(card_event(kind=EventKind.UNRECOGNISED, caller=None, subject=HOSTILE, sender=HOSTILE)))
        ),
    )
    yield (
        "voicemail",
        lambda: build_case_card(case_view(voicemail_case(), listen_link=(card_event(0).source_id, VOICEMAIL_URL))),
    )
    yield "fax", lambda: build_case_card(case_view(make_case(card_event(kind=EventKind.FAX))))
    yield "notice", lambda: build_case_card(case_view(claimed_case(), notice="Bereits übernommen von Anna um 10:32"))
    yield "previous", lambda: build_case_card(case_view(previous_case()))
    yield "claim-timed-out", lambda: build_case_card(case_view(claimed_case(), now=NOW + timedelta(hours=2)))
    yield "many-events", lambda: build_case_card(case_view(long_case(200)))
    yield "list-empty", lambda: build_list_card(list_view([], total=0))
    yield "list-mine-empty", lambda: build_list_card(list_view([], total=0, command=ListCommand.MINE))
    yield "list-one-page", lambda: build_list_card(list_view(many_cases(3), total=3))
    yield "list-middle-page", lambda: build_list_card(list_view(many_cases(10), total=35, offset=10))
    yield "list-long-names", lambda: build_list_card(list_view(long_list_page(), total=10_000, offset=20))
    yield "help-unknown", lambda: build_help_card(Lang.DE, unknown_text=HOSTILE)
    yield "unlink", lambda: build_unlink_confirmation_card(LINE_NAME, Lang.DE)
    from tests.support.reminder_cards import reminder_card_variants

    yield from reminder_card_variants()


def _case_card(make: Callable[[], Case], lang: Lang) -> Json:
    return build_case_card(case_view(make(), lang))


def _list_card(lang: Lang) -> Json:
    return build_list_card(list_view(many_cases(10), total=12, lang=lang))


def previous_case() -> Case:
    case = open_case()
    return Case(
        id=case.id,
        line_id=case.line_id,
        caller=case.caller,
        created_at=case.created_at,
        events=case.events,
        previous=PreviousCase("case-0", BOB, datetime(2026, 11, 20, 15, 0, tzinfo=UTC)),
    )


LONG_NAME = "Ä" * 500 + " [x](https://evil.example)"
LONG_LINK = OUTLOOK_LINK + "&x=" + "A" * 1500


def long_case(count: int) -> Case:
    """The worst case for size: many events, the longest names and links."""
    events = [
        card_event(
            n,
            at=NOW - timedelta(minutes=count - n),
            caller_name=LONG_NAME,
            web_link=LONG_LINK,
            kind=EventKind.VOICEMAIL,
            voicemail=Voicemail(f"att-{n}", "vm.wav", 3600),
        )
        for n in range(count)
    ]
    return apply(make_case(*events), Verb.CLAIM, Actor("aad-long", LONG_NAME), NOW)


def long_list_page() -> list[Case]:
    return [
        make_case(card_event(n, caller_name=LONG_NAME, caller=f"+49301234{n:03d}"), case_id="c" * 200 + str(n))
        for n in range(10)
    ]


def size_of(card: Json) -> int:
    return len(json.dumps(card, ensure_ascii=False).encode("utf-8"))


_UNESCAPED_LINK = re.compile(r"(?<!\\)\[(?:[^\]\\]|\\.)*(?<!\\)\]\(([^)\s]*)\)")


def markdown_link_targets(card: Json) -> list[str]:
    """Targets of every markdown link in every text and fact of the card (escaped brackets do not count)."""
    return [target for value in texts(card) for target in _UNESCAPED_LINK.findall(value)]


def walk(node: Any) -> Iterator[Json]:
    """Every object in a card's JSON tree, depth first."""
    if isinstance(node, dict):
        yield node
        for child in node.values():
            yield from walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from walk(child)


def card_texts(card: Json) -> str:
    """What a person reads on the card: each TextBlock's text and each fact as "title: value", one per line."""
    lines = []
    for element in walk(card.get("body", [])):
        if element.get("type") == "TextBlock":
            lines.append(str(element["text"]))
        elif element.get("type") == "FactSet":
            lines.extend(f"{fact['title']}: {fact['value']}" for fact in element["facts"])
    return "\n".join(lines)


def texts(node: Any) -> Iterator[str]:
    """Every string a person reads as markdown: TextBlock texts, fact titles and values."""
    for element in walk(node):
        if element.get("type") == "TextBlock":
            yield element["text"]
        if "title" in element and "value" in element:
            yield element["title"]
            yield element["value"]


def actions(node: Any) -> Iterator[Json]:
    """Every action in the card, including those inside ShowCards and ActionSets."""
    return (element for element in walk(node) if str(element.get("type", "")).startswith("Action."))
