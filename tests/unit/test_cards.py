"""Content rules of the cards: states, buttons from the state table, caller, times, languages and inert mail data."""

from __future__ import annotations

import json
import re
import string
import sys
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.core.commands import ALIASES
from bot.domain.cases import Actor, Case, CaseState
from bot.domain.events import WITHHELD, EventKind, Voicemail
from bot.domain.state_machine import TRANSITIONS, USER_VERBS, Refusal, RefusalCode, Verb, decide
from cards.case_card import BUTTON_ORDER, SHOWN_EVENTS, build_case_card, card_activity_text, card_verbs
from cards.format import (
    LOOKALIKE_AT,
    LOOKALIKE_DOT,
    OUTLOOK_HOSTS,
    ZERO_WIDTH_SPACE,
    format_absolute,
    format_phone,
    format_relative,
    inert,
    plain,
    safe_link,
)
from cards.i18n import TEXTS, Lang, language_for, ordinal, refusal_text, text
from cards.list_card import LIST_PAGE_VERB, PAGE_SIZE, ListCommand, build_list_card
from cards.messages import (
    build_help_card,
    build_link_confirmation_card,
    build_unlink_confirmation_card,
    repeat_call_reply,
    state_change_reply,
)
from tests.support.cards import (
    ANNA,
    BOB,
    HOSTILE,
    LINE_ID,
    NOW,
    OUTLOOK_LINK,
    TIMEOUT,
    VOICEMAIL_URL,
    Json,
    actions,
    apply,
    card_event,
    case_view,
    claimed_case,
    done_case,
    list_view,
    long_case,
    make_case,
    many_cases,
    markdown_link_targets,
    open_case,
    previous_case,
    texts,
    voicemail_case,
    walk,
)

TEAMS_CALL = "https://teams.microsoft.com/l/call/0/0?users=4:+4930123456"


def all_text(card: Json) -> str:
    return "\n".join(texts(card))


def executes(card: Json) -> list[Json]:
    """The card's buttons (its ``refresh`` action is no button)."""
    return [action for action in actions(card) if action["type"] == "Action.Execute" and action["verb"] != "refresh"]


# --- language ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "lang"),
    [
        (None, Lang.DE),
        ("", Lang.DE),
        ("de-DE", Lang.DE),
        ("fr-FR", Lang.DE),
        ("en-US", Lang.EN),
        ("EN_gb", Lang.EN),
        ("en", Lang.EN),
    ],
)
def test_language_is_german_unless_the_locale_is_english(locale: str | None, lang: Lang) -> None:
    assert language_for(locale) is lang


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    def fields(template: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}

    assert TEXTS[Lang.DE].keys() == TEXTS[Lang.EN].keys()
    for key, german in TEXTS[Lang.DE].items():
        assert fields(german) == fields(TEXTS[Lang.EN][key]), key


@pytest.mark.parametrize(
    ("case", "german", "english"),
    [
        (open_case(), "Offen", "Open"),
        (claimed_case(), "In Bearbeitung – Anna Schmidt", "In progress – Anna Schmidt"),
        (done_case(), "Erledigt – Anna Schmidt", "Done – Anna Schmidt"),
    ],
    ids=["open", "claimed", "done"],
)
def test_state_badge_in_both_languages(case: Case, german: str, english: str) -> None:
    german_card = build_case_card(case_view(case, Lang.DE))
    english_card = build_case_card(case_view(case, Lang.EN))
    assert german_card["body"][0]["items"][0]["columns"][0]["items"][0]["text"] == german
    assert english_card["body"][0]["items"][0]["columns"][0]["items"][0]["text"] == english


def test_badge_colour_follows_the_state() -> None:
    cases = (open_case(), claimed_case(), done_case())
    styles = [build_case_card(case_view(case))["body"][0]["style"] for case in cases]
    assert styles == ["attention", "warning", "good"]


# --- buttons ------------------------------------------------------------------------------------------------------


def test_button_order_names_every_user_verb() -> None:
    assert sorted(BUTTON_ORDER) == sorted(USER_VERBS)


@pytest.mark.parametrize("case", [open_case(), claimed_case(), done_case()], ids=["open", "claimed", "done"])
def test_buttons_are_the_user_verbs_the_table_allows(case: Case) -> None:
    card = build_case_card(case_view(case))
    expected = {verb for (state, verb) in TRANSITIONS if state is case.state and verb in USER_VERBS}
    assert {action["verb"] for action in executes(card)} == expected
    assert set(card_verbs(case.state)) == expected


def test_buttons_per_state_as_people_see_them() -> None:
    def titles(case: Case) -> list[str]:
        return [action["title"] for action in build_case_card(case_view(case))["actions"]]

    assert titles(open_case()) == ["Übernehmen", "Erledigt"]
    assert titles(claimed_case()) == ["Erledigt", "Freigeben", "Übernehmen von Anna Schmidt"]
    assert titles(done_case()) == ["Wieder öffnen"]


def test_take_over_asks_for_confirmation_first() -> None:
    case = claimed_case()
    take_over = build_case_card(case_view(case))["actions"][-1]
    assert take_over["type"] == "Action.ShowCard"
    confirm = take_over["card"]["actions"]
    assert [(action["type"], action["verb"]) for action in confirm] == [("Action.Execute", "take_over")]
    assert "Anna Schmidt" in take_over["card"]["body"][0]["text"]


@pytest.mark.parametrize("case", [open_case(), claimed_case(), done_case()], ids=["open", "claimed", "done"])
def test_every_execute_carries_the_case_version(case: Case) -> None:
    for action in executes(build_case_card(case_view(case))):
        assert action["data"] == {"case_id": case.id, "version": case.version, "line_id": LINE_ID}


def test_buttons_of_a_new_version_carry_it() -> None:
    released = apply(claimed_case(), Verb.RELEASE, ANNA, NOW)
    assert {action["data"]["version"] for action in executes(build_case_card(case_view(released)))} == {5}


# --- caller -------------------------------------------------------------------------------------------------------


def test_caller_is_formatted_with_call_links_and_name() -> None:
    card_text = all_text(build_case_card(case_view(open_case())))
    assert "030 123456" in card_text
    assert "Max Mustermann" in card_text
    assert set(markdown_link_targets(build_case_card(case_view(open_case())))) >= {"tel:+4930123456", TEAMS_CALL}


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("+4930123456", "030 123456"),
        ("+491701234567", "0170 1234567"),
        ("+4915123456789", "0151 23456789"),  # German mobiles: the 4-digit prefix apart, not "01512 3456789"
        ("0151 23456789", "0151 23456789"),
        ("+491601234567", "0160 1234567"),
        ("+4917612345678", "0176 12345678"),
        ("+4989123456", "089 123456"),
        ("+43122334455", "+43 1 22334455"),
        ("+12025550123", "+1 202-555-0123"),
        ("0049 30 123456", "030 123456"),
        ("[x](y)", r"\[x\]\(y\)"),
    ],
)
def test_phone_numbers_for_people(number: str, shown: str) -> None:
    assert format_phone(number) == shown


def test_a_mobile_number_is_stored_as_e164_and_dialled_as_e164() -> None:
    case = make_case(card_event(caller="+4915123456789"))
    card = build_case_card(case_view(case))
    assert "0151 23456789" in all_text(card)
    assert "tel:+4915123456789" in markdown_link_targets(card)


@pytest.mark.parametrize("caller", [WITHHELD, None])
def test_withheld_or_missing_caller_has_no_call_link(caller: str | None) -> None:
    card = build_case_card(case_view(make_case(card_event(caller=caller))))
    expected = "Unbekannt / unterdrückt" if caller == WITHHELD else "Unbekannt – Rufnummer nicht lesbar"
    assert card["body"][1]["text"] == expected
    serialised = json.dumps(card)
    assert "tel:" not in serialised
    assert "teams.microsoft.com/l/call" not in serialised


def test_unrecognised_mail_shows_subject_and_sender_instead_of_a_caller() -> None:
    event = card_event(kind=EventKind.UNRECOGNISED, caller=None, subject="Rechnung 4711", sender="buchhaltung@firma.de")
    card = build_case_card(case_view(make_case(event), Lang.EN))
    card_text = all_text(card)
    assert "Not recognised" in card_text
    assert "No call notification" in card_text
    assert "Rechnung 4711" in card_text
    assert f"buchhaltung{LOOKALIKE_AT}firma{LOOKALIKE_DOT}de" in card_text
    assert "tel:" not in json.dumps(card)


def test_unrecognised_item_never_shows_a_call_link_even_with_a_number() -> None:
    event = card_event(kind=EventKind.UNRECOGNISED, caller="+4930123456", subject="Re: Rückruf 030 123456")
    card = build_case_card(case_view(make_case(event)))
    assert "Nicht erkannt" in all_text(card)
    serialised = json.dumps(card)
    assert "tel:" not in serialised and "teams.microsoft.com/l/call" not in serialised


def test_invalid_number_is_shown_exactly_as_the_mail_wrote_it() -> None:
    event = replace(card_event(caller="+491523334445"), caller_as_written="0152/333 44 45")
    card = build_case_card(case_view(make_case(event)))
    assert card["body"][1]["text"] == "0152/333 44 45"
    assert format_phone("+491523334445") != "0152/333 44 45"  # what the card would show without the raw form


def test_card_shows_which_of_the_lines_numbers_was_called() -> None:
    first = replace(card_event(0), called_number="+49301234500")
    second = replace(card_event(1), called_number="+49301234501")
    card_text = all_text(build_case_card(case_view(make_case(first, second))))
    assert "auf\u00a0030\u00a01234500" in card_text and "auf\u00a0030\u00a01234501" in card_text


# --- events, voicemail, mail --------------------------------------------------------------------------------------


def listen_buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [action for block in card["body"] if block.get("type") == "ActionSet" for action in block["actions"]]


def test_voicemail_shows_duration_and_a_listen_click_without_a_link() -> None:
    case = voicemail_case()
    card = build_case_card(case_view(case))
    assert "Sprachnachricht (0:42 Min.)" in all_text(card)
    (button,) = listen_buttons(card)
    assert (button["type"], button["verb"], button["title"]) == ("Action.Execute", "listen", "Anhören")
    assert button["data"]["event"] == case.events[0].source_id
    assert "http" not in json.dumps(button)


def test_the_fresh_link_is_shown_as_a_play_button() -> None:
    case = voicemail_case()
    card = build_case_card(case_view(case, listen_link=(case.events[0].source_id, VOICEMAIL_URL)))
    (button,) = listen_buttons(card)
    assert (button["type"], button["url"]) == ("Action.OpenUrl", VOICEMAIL_URL)


def test_a_listen_link_must_be_https() -> None:
    case = voicemail_case()
    card = build_case_card(case_view(case, listen_link=(case.events[0].source_id, "javascript:alert(1)")))
    assert "javascript" not in json.dumps(card)
    assert listen_buttons(card)[0]["type"] == "Action.Execute"


def test_a_call_without_voicemail_has_no_listen_button() -> None:
    assert listen_buttons(build_case_card(case_view(make_case(card_event())))) == []


def test_fax_is_named() -> None:
    assert "Fax" in all_text(build_case_card(case_view(make_case(card_event(kind=EventKind.FAX)))))


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        (OUTLOOK_LINK, True),
        ("https://outlook.office.com/mail/id/AAQk", True),
        ("https://outlook.live.com/mail/0/inbox/id/AQQk", True),
        ("https://evil.example/owa/?ItemID=1", False),
        ("http://outlook.office.com/mail/id/AAQk", False),
        ("https://outlook.office.com.evil.example/x", False),
        ("https://user@outlook.office.com/x", False),
        ("https://outlook.office.com:8443/x", False),
        ("javascript:alert(1)", False),
        (None, False),
    ],
)
def test_mail_link_only_to_outlook(link: str | None, shown: bool) -> None:
    card = build_case_card(case_view(make_case(card_event(web_link=link))))
    targets = [target for target in markdown_link_targets(card) if not target.startswith(("tel:", TEAMS_CALL))]
    assert bool(targets) is shown
    if link is not None and not shown:
        assert link not in json.dumps(card)


def test_link_targets_cannot_break_out_of_markdown() -> None:
    assert (
        safe_link("https://outlook.office.com/x(1)[2]", OUTLOOK_HOSTS) == "https://outlook.office.com/x%281%29%5B2%5D"
    )
    assert safe_link("https://outlook.office.com/a b", OUTLOOK_HOSTS) is None


def test_calls_are_counted_with_relative_and_absolute_times() -> None:
    card_text = all_text(build_case_card(case_view(open_case())))
    assert "3 · zuletzt vor 40 Min." in card_text
    assert "**27.11.2026, 10:00** · vor 40 Min. · Verpasster Anruf" in card_text
    assert "**27.11.2026, 09:50** · vor 50 Min." in card_text


def test_only_the_newest_events_are_listed() -> None:
    case = long_case(200)
    card = build_case_card(case_view(case))
    rows = [text for text in texts(card) if text.startswith("**")]
    assert len(rows) == SHOWN_EVENTS
    newest = format_absolute(case.events[-1].received_at, Lang.DE)
    assert rows[0].startswith(f"**{newest}**")
    assert "+190 weitere" in all_text(card)


def test_claimer_and_time_are_shown() -> None:
    card_text = all_text(build_case_card(case_view(claimed_case())))
    assert "Übernommen" in card_text
    assert "Anna Schmidt · 27.11.2026, 10:32 (vor 8 Min.)" in card_text
    done_text = all_text(build_case_card(case_view(done_case(), Lang.EN)))
    assert "Anna Schmidt · 2026-11-27 10:38 (2 min ago)" in done_text


def test_timed_out_claim_says_anyone_may_release() -> None:
    fresh = all_text(build_case_card(case_view(claimed_case())))
    stale = all_text(build_case_card(case_view(claimed_case(), now=NOW + TIMEOUT)))
    assert "jeder kann den Fall freigeben" not in fresh
    assert "Seit über 30 Min. in Bearbeitung – jeder kann den Fall freigeben." in stale


def test_previous_case_is_named() -> None:
    assert "Zuletzt erledigt von Bob Meyer am 20.11.2026" in all_text(build_case_card(case_view(previous_case())))
    english = all_text(build_case_card(case_view(previous_case(), Lang.EN)))
    assert "Last done by Bob Meyer on 2026-11-20" in english


def test_notice_is_shown_on_top_in_attention_style() -> None:
    refusal = decide(claimed_case(), Verb.CLAIM, BOB, NOW, TIMEOUT)
    assert isinstance(refusal, Refusal)
    card = build_case_card(case_view(claimed_case(), notice=refusal_text(refusal, Lang.DE)))
    notice = card["body"][1]
    assert notice["style"] == "attention"
    assert notice["items"][0]["text"] == "⚠️ Bereits übernommen von Anna Schmidt um 10:32"


def test_activity_text_summarises_the_case() -> None:
    assert card_activity_text(open_case(), Lang.DE) == "Offen: 030 123456 · 3 Anrufe"
    assert card_activity_text(claimed_case(), Lang.EN) == "In progress – Anna Schmidt: 030 123456 · 3 calls"


# --- times in Berlin ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utc", "berlin"),
    [
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "29.03.2026, 01:30"),  # CET, just before the switch
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "29.03.2026, 03:30"),  # CEST, just after
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "25.10.2026, 02:30"),  # CEST, first 02:30
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "25.10.2026, 02:30"),  # CET, second 02:30
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "01.01.2027, 00:30"),
    ],
)
def test_absolute_times_are_in_berlin_across_dst(utc: datetime, berlin: str) -> None:
    assert format_absolute(utc, Lang.DE) == berlin


def test_card_times_follow_berlin_summer_time() -> None:
    summer = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    case = make_case(card_event(at=summer))
    card_text = all_text(build_case_card(case_view(case, now=summer + timedelta(minutes=5))))
    assert "**01.07.2026, 10:00** · vor 5 Min." in card_text


@pytest.mark.parametrize(
    ("age", "german", "english"),
    [
        (timedelta(seconds=-30), "gerade eben", "just now"),
        (timedelta(seconds=59), "gerade eben", "just now"),
        (timedelta(minutes=5), "vor 5 Min.", "5 min ago"),
        (timedelta(hours=2, minutes=59), "vor 2 Std.", "2 h ago"),
        (timedelta(days=1, hours=3), "vor 1 Tag", "1 day ago"),
        (timedelta(days=3), "vor 3 Tagen", "3 days ago"),
    ],
)
def test_relative_times(age: timedelta, german: str, english: str) -> None:
    assert format_relative(NOW - age, NOW, Lang.DE) == german
    assert format_relative(NOW - age, NOW, Lang.EN) == english


# --- untrusted text -------------------------------------------------------------------------------------------------


def hostile_card() -> Json:
    event = card_event(kind=EventKind.UNRECOGNISED, caller=None, subject=HOSTILE, sender=HOSTILE, caller_name=HOSTILE)
    hostile_actor = Actor("aad-evil", "[Anna](https://evil.example) **Boss**")
    case = apply(make_case(event), Verb.CLAIM, hostile_actor, NOW)
    return build_case_card(case_view(case, line_name=HOSTILE, notice=HOSTILE))


def test_markdown_in_mail_data_shows_no_link() -> None:
    card = hostile_card()
    assert markdown_link_targets(card) == [OUTLOOK_LINK]


def test_urls_and_addresses_in_mail_data_cannot_auto_link() -> None:
    serialised = json.dumps(hostile_card(), ensure_ascii=False)
    for needle in ("https://evil", "evil.example", "www.evil", "a@evil"):
        assert needle not in serialised
    assert f"https:/{ZERO_WIDTH_SPACE}/evil{LOOKALIKE_DOT}example" in serialised


def test_markdown_characters_in_mail_data_are_escaped() -> None:
    shown = inert("[klick](https://evil.example) **fett** <b>x</b> _k_ `c`", 200)
    assert shown.startswith(r"\[klick\]\(https:/" + ZERO_WIDTH_SPACE + "/")
    assert r"\*\*fett\*\* \<b\>x\</b\> \_k\_ \`c\`" in shown


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("# Titel", r"\# Titel"), ("- Punkt", r"\- Punkt"), ("1. Punkt", r"\1. Punkt"), ("> Zitat", r"\> Zitat")],
)
def test_block_markdown_at_the_start_is_escaped(raw: str, escaped: str) -> None:
    assert inert(raw, 50) == escaped


def test_control_characters_and_line_breaks_are_removed() -> None:
    assert inert("Anna\u202e Schmidt\x00\r\n\n## x\t", 50) == r"Anna Schmidt \#\# x"


def test_zero_width_characters_from_mail_cannot_shield_a_domain() -> None:
    assert plain("evil\u200b.example.\u200bcom", 50) == f"evil{LOOKALIKE_DOT}example{LOOKALIKE_DOT}com"


def test_long_text_is_capped() -> None:
    assert len(inert("x" * 1000, 80)) == 80
    assert inert("x" * 1000, 80).endswith("…")


def test_isprintable_is_false_for_exactly_the_characters_plain_and_safe_link_take_out() -> None:
    """plain() and safe_link() skip their character-by-character check for text that str.isprintable() passes:
    that must hold for every code point of this Python's Unicode tables."""
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        category = unicodedata.category(ch)
        assert ch.isprintable() == (category[0] not in "CZ" or ch == " "), hex(code)
        if ch.isprintable() and ch != " ":
            assert not ch.isspace(), hex(code)


@pytest.mark.parametrize("odd", ["\u200b", "\u202e", "\u2028", "\x85", "\x07", "\u00a0", "\U000e0041", "\ud800"])
def test_control_format_and_separator_characters_never_pass(odd: str) -> None:
    assert plain(f"Max{odd}Mustermann", 80) in ("MaxMustermann", "Max Mustermann")
    assert safe_link(f"https://outlook.office365.com/owa/?ItemID={odd}x", OUTLOOK_HOSTS) is None


def test_names_in_buttons_are_plain_and_capped() -> None:
    case = apply(open_case(), Verb.CLAIM, Actor("aad-x", "Eve\n" + "e" * 300), NOW)
    title = build_case_card(case_view(case))["actions"][-1]["title"]
    assert "\n" not in title
    assert len(title) < 120


# --- list card ------------------------------------------------------------------------------------------------------


def test_list_title_rows_and_claim_buttons() -> None:
    cases = many_cases(PAGE_SIZE)
    card = build_list_card(list_view(cases, total=12))
    assert card["body"][0]["text"] == "Offene Rückrufe (12)"
    rows = [element for element in card["body"] if element["type"] == "Container"]
    assert len(rows) == PAGE_SIZE
    claims = [action for action in executes(card) if action["verb"] == Verb.CLAIM]
    open_cases = [case for case in cases if case.state is CaseState.OPEN]
    assert [action["data"] for action in claims] == [
        {
            "case_id": case.id,
            "version": case.version,
            "line_id": case.line_id,
            "list": {"command": "open", "offset": 0},
        }
        for case in open_cases
    ]
    assert "1–10 von 12" in all_text(card)


def test_list_row_shows_age_calls_caller_line_and_claimant() -> None:
    claimed = claimed_case()
    card_text = all_text(build_list_card(list_view([claimed], total=1, lang=Lang.EN)))
    assert "**030 123456** · Max Mustermann" in card_text
    assert "Zentrale · 3 calls · 50 min ago" in card_text
    assert "In progress – Anna Schmidt" in card_text


def test_list_pages_forward_and_back() -> None:
    card = build_list_card(list_view(many_cases(PAGE_SIZE), total=35, offset=10))
    paging = {action["title"]: action for action in card["actions"]}
    assert paging["Zurück"]["verb"] == paging["Weiter"]["verb"] == LIST_PAGE_VERB
    assert paging["Zurück"]["data"] == {"command": "open", "offset": 0}
    assert paging["Weiter"]["data"] == {"command": "open", "offset": 20}
    last_page = build_list_card(list_view(many_cases(5), total=35, offset=30, command=ListCommand.MINE))
    assert [action["title"] for action in last_page["actions"]] == ["Zurück"]
    assert last_page["body"][0]["text"] == "Meine Rückrufe (35)"


def test_single_page_has_no_paging() -> None:
    assert "actions" not in build_list_card(list_view(many_cases(3), total=3))


@pytest.mark.parametrize(
    ("command", "lang", "empty"),
    [
        (ListCommand.OPEN, Lang.DE, "Alles erledigt – keine offenen Rückrufe 🎉"),
        (ListCommand.OPEN, Lang.EN, "All done – no open callbacks 🎉"),
        (ListCommand.MINE, Lang.DE, "Du hast gerade keine Rückrufe übernommen."),
    ],
)
def test_empty_list_is_friendly(command: ListCommand, lang: Lang, empty: str) -> None:
    card = build_list_card(list_view([], total=0, lang=lang, command=command))
    assert card["body"][-1]["text"] == empty
    assert "actions" not in card


def test_list_card_size_does_not_depend_on_the_total() -> None:
    page = many_cases(PAGE_SIZE)
    small = json.dumps(build_list_card(list_view(page, total=PAGE_SIZE + 1)))
    huge = json.dumps(build_list_card(list_view(page, total=10_000)))
    assert abs(len(huge) - len(small)) < 10


# --- small messages -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", list(Verb))
def test_every_state_change_has_a_thread_reply(verb: Verb) -> None:
    for lang in Lang:
        reply = state_change_reply(verb, ANNA, NOW, lang, previous_holder=BOB)
        assert reply.endswith("· 10:40")
        assert "{" not in reply


def test_thread_replies_read_well() -> None:
    at = datetime(2026, 11, 27, 9, 32, tzinfo=UTC)
    assert state_change_reply(Verb.CLAIM, ANNA, at, Lang.DE) == "Anna Schmidt hat übernommen · 10:32"
    assert state_change_reply(Verb.TAKE_OVER, BOB, at, Lang.EN, previous_holder=ANNA) == (
        "Bob Meyer took over from Anna Schmidt · 10:32"
    )
    outlook = Actor("outlook", "Outlook")
    assert state_change_reply(Verb.OUTLOOK_CLEAR, outlook, at, Lang.DE, previous_holder=ANNA) == (
        "In Outlook freigegeben (war bei Anna Schmidt) · 10:32"
    )
    assert state_change_reply(Verb.OUTLOOK_CLEAR, outlook, at, Lang.DE) == "In Outlook wieder geöffnet · 10:32"
    hostile = state_change_reply(Verb.DONE, Actor("x", "[a](https://evil.example)"), at, Lang.DE)
    assert "](" not in hostile.replace(r"\]\(", "")


def test_repeat_call_replies() -> None:
    at = datetime(2026, 11, 27, 9, 45, tzinfo=UTC)
    assert repeat_call_reply(card_event(at=at), 3, Lang.DE) == "Erneuter Anruf · 10:45 (3. Anruf)"
    assert repeat_call_reply(card_event(at=at), 3, Lang.EN) == "Called again · 10:45 (3rd call)"
    voicemail = card_event(at=at, kind=EventKind.VOICEMAIL, voicemail=Voicemail("a", "vm.wav"))
    assert repeat_call_reply(voicemail, 2, Lang.DE) == "Neue Sprachnachricht · 10:45 (2. Anruf)"


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (102, "102nd"),
    ],
)
def test_english_ordinals(n: int, shown: str) -> None:
    assert ordinal(n, Lang.EN) == shown


@pytest.mark.parametrize("code", list(RefusalCode))
def test_every_refusal_has_a_text(code: RefusalCode) -> None:
    for holder in (ANNA, None):
        refusal = Refusal(code, Verb.CLAIM, CaseState.CLAIMED, holder, NOW if holder else None)
        for lang in Lang:
            assert refusal_text(refusal, lang)


def test_refusal_names_holder_and_time() -> None:
    at = datetime(2026, 11, 27, 9, 32, tzinfo=UTC)
    refusal = Refusal(RefusalCode.ALREADY_CLAIMED, Verb.CLAIM, CaseState.CLAIMED, ANNA, at)
    assert refusal_text(refusal, Lang.DE) == "Bereits übernommen von Anna Schmidt um 10:32"
    assert refusal_text(refusal, Lang.EN) == "Already claimed by Anna Schmidt at 10:32"


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (Lang.DE, ["offen", "meine", "statistik", "hilfe", "verbinden", "trennen", "vergessen"]),
        (Lang.EN, ["open", "mine", "stats", "help", "link", "unlink", "forget"]),
    ],
)
def test_help_card_lists_every_command_in_its_own_language(lang: Lang, words: list[str]) -> None:
    [facts] = [element for element in walk(build_help_card(lang)["body"]) if element.get("type") == "FactSet"]
    listed = [fact["title"].split()[0] for fact in facts["facts"]]
    assert listed == words
    assert sorted(ALIASES[word] for word in listed) == sorted(set(ALIASES.values()))


@pytest.mark.parametrize("lang", list(Lang))
def test_help_names_the_buttons_as_they_are_labelled(lang: Lang) -> None:
    intro = all_text(build_help_card(lang))
    quoted = set(re.findall(r"[„“]([^“”]+)[“”]", intro))
    buttons = {action["title"] for action in executes(build_case_card(case_view(open_case(), lang=lang)))}
    assert quoted == {text(lang, "verb_claim"), text(lang, "verb_done")}
    assert quoted <= buttons


def test_help_for_unknown_text_quotes_it_inert() -> None:
    card = build_help_card(Lang.EN, unknown_text=HOSTILE)
    assert "I don't know the command" in all_text(card)
    assert markdown_link_targets(card) == []


def test_link_confirmations_name_the_line() -> None:
    assert "**Zentrale**" in all_text(build_link_confirmation_card("Zentrale", Lang.DE))
    assert "Channel unlinked" in all_text(build_unlink_confirmation_card("Zentrale", Lang.EN))
    assert markdown_link_targets(build_link_confirmation_card(HOSTILE, Lang.DE)) == []


# --- per viewer ---------------------------------------------------------------------------------------------------


def test_the_holder_is_offered_done_and_release_only() -> None:
    case = claimed_case()
    assert case.claimed_by is not None

    own = build_case_card(replace(case_view(case), viewer=case.claimed_by))
    colleague = build_case_card(replace(case_view(case), viewer=Actor("aad-other", "Ben Weber")))

    assert [action["verb"] for action in executes(own)] == ["done", "release"]
    assert all(action["type"] != "Action.ShowCard" for action in own["actions"])
    assert "take_over" in {action["verb"] for action in executes(colleague)}


def test_a_claimed_card_asks_each_viewer_to_refresh_it() -> None:
    case = claimed_case()

    refresh = build_case_card(case_view(case))["refresh"]["action"]

    assert refresh["type"] == "Action.Execute" and refresh["verb"] == "refresh"
    assert refresh["data"] == {"case_id": case.id, "version": case.version}
    assert "refresh" not in build_case_card(case_view(open_case()))
