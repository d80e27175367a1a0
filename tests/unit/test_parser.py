"""Notification-mail parser: the fixture corpus (tests/corpus/mails/*.json) and targeted rules."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.domain.events import WITHHELD, EventKind
from bot.placetel import (
    BUILTIN_PROFILES,
    PLACETEL_PROFILE,
    MailAttachment,
    MailMessage,
    ParsedMail,
    ParserProfile,
    ProfileConfigError,
    load_profiles,
    merge_profiles,
    normalise_number,
    parse_mail,
)
from bot.placetel.text import body_to_text, decode_subject
from bot.placetel.timing import parse_duration
from tests.support.pbx_mail import eop_headers

CORPUS = sorted((Path(__file__).parents[1] / "corpus" / "mails").glob("*.json"))
CORE_FIELDS = {"kind", "caller", "call_time", "profile", "is_pbx_mail"}
POOL = ("+49 30 1234500",)
RECEIVED = datetime(2026, 11, 27, 9, 35, tzinfo=UTC)


def load_case(path: Path) -> tuple[MailMessage, list[str], dict[str, Any]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    raw = doc["mail"]
    body = raw["body"]
    mail = MailMessage(
        mailbox=raw["mailbox"],
        message_id=raw["message_id"],
        internet_message_id=raw.get("internet_message_id"),
        subject=raw["subject"],
        sender_address=raw["sender_address"],
        sender_name=raw.get("sender_name", ""),
        body="\n".join(body) if isinstance(body, list) else body,
        body_type=raw["body_type"],
        received_at=datetime.fromisoformat(raw["received_at"]),
        web_link=raw.get("web_link"),
        attachments=tuple(MailAttachment(**a) for a in raw.get("attachments", ())),
        headers=tuple((name, value) for name, value in raw.get("headers", ())),
        message_class=raw.get("message_class", ""),
    )
    return mail, doc["pool_numbers"], doc["expected"]


def as_comparable(parsed: ParsedMail, field: str) -> Any:
    value = getattr(parsed, field)
    if isinstance(value, EventKind):
        return value.value
    return value


def mail(subject: str, body: str, *, sender: str = "no-reply@placetel.de", body_type: str = "text",
         attachments: tuple[MailAttachment, ...] = ()) -> MailMessage:
    """A mail that passed sender authentication at Exchange Online."""
    return MailMessage(mailbox="zentrale@musterfirma.de", message_id="m1", subject=subject,
                       sender_address=sender, body=body, body_type=body_type, received_at=RECEIVED,
                       attachments=attachments, headers=eop_headers(sender))


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 14


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_mail(path: Path) -> None:
    mail_message, pool, expected = load_case(path)
    assert expected.keys() >= CORE_FIELDS, f"{path.name} must state {sorted(CORE_FIELDS - expected.keys())}"

    parsed = parse_mail(mail_message, pool)

    for field, want in expected.items():
        if field == "call_time":
            assert parsed.call_time == datetime.fromisoformat(want), (field, parsed)
        elif field == "notes_include":
            for fragment in want:
                assert any(fragment in note for note in parsed.notes), (fragment, parsed.notes)
        else:
            assert as_comparable(parsed, field) == want, (field, parsed)
    assert parsed.call_time.tzinfo is not None


def test_repeat_caller_mails_name_the_same_caller_at_different_times() -> None:
    first, second = (parse_mail(*load_case(p)[:2]) for p in CORPUS if p.stem.startswith("repeat_caller"))
    assert first.caller == second.caller == "+492211234567"
    assert first.call_time < second.call_time


@pytest.mark.parametrize("spelling", ["anonymous", "Anonym", "Unbekannt", "unterdrückt", "Withheld", "PRIVATE",
                                      "restricted", "Rufnummer unterdrückt", "", "  "])
def test_every_withheld_spelling(spelling: str) -> None:
    parsed = parse_mail(mail(f"Verpasster Anruf von '{spelling}' auf '030 1234500'", ""), POOL)
    assert parsed.caller == WITHHELD
    assert parsed.kind is EventKind.MISSED_CALL


def test_withheld_wording_without_a_caller_field() -> None:
    parsed = parse_mail(mail("Verpasster Anruf", "Ein unbekannter Anrufer hat es versucht."), POOL)
    assert parsed.caller == WITHHELD
    assert "caller withheld (from the wording)" in parsed.notes


def test_pool_numbers_are_never_the_caller() -> None:
    parsed = parse_mail(mail("Verpasster Anruf", "Anruf auf 030 1234500 von 040 7654321."), POOL)
    assert parsed.caller == "+49407654321"
    assert parsed.pool_number == "+49301234500"


def test_several_numbers_prefer_the_labelled_one() -> None:
    body = "Rückruf unter 089 1234567 möglich.\nAnruf von 040 7654321 auf 030 1234500."
    parsed = parse_mail(mail("Verpasster Anruf", body), POOL)
    assert parsed.caller == "+49407654321"
    assert any("labelled as caller" in note for note in parsed.notes)


def test_several_unlabelled_numbers_are_flagged_uncertain() -> None:
    parsed = parse_mail(mail("Verpasster Anruf", "040 7654321\n089 1234567"), POOL)
    assert parsed.caller == "+49407654321"
    assert any("caller uncertain" in note for note in parsed.notes)


def test_no_number_at_all_is_noted() -> None:
    parsed = parse_mail(mail("Verpasster Anruf", "Bitte zurückrufen."), POOL)
    assert parsed.kind is EventKind.MISSED_CALL
    assert parsed.caller is None
    assert "no caller number found" in parsed.notes


def test_sender_equal_to_mailbox_is_own_mail() -> None:
    parsed = parse_mail(mail("Verpasster Anruf von '040 7654321'", "", sender="Zentrale@Musterfirma.de"), POOL)
    assert (parsed.kind, parsed.is_pbx_mail, parsed.notes) == (EventKind.UNRECOGNISED, False, ("own mail",))


def test_voicemail_wording_without_audio_is_noted() -> None:
    parsed = parse_mail(mail("Neue Voicemail von '040 7654321'", ""), POOL)
    assert parsed.kind is EventKind.VOICEMAIL
    assert parsed.voicemail_attachment_id is None
    assert "voicemail without audio attachment" in parsed.notes


def test_tiff_fax_from_unknown_sender_is_no_fax() -> None:
    attachment = MailAttachment("f1", "seite1.tif", "image/tiff", 100)
    parsed = parse_mail(mail("Eingang", "Absender: 040 7654321", sender="x@pbx.example",
                             attachments=(attachment,)), POOL)
    assert (parsed.kind, parsed.fax_attachment_id, parsed.caller) == (EventKind.UNRECOGNISED, None, None)
    assert not parsed.is_pbx_mail


def test_implausible_time_in_the_mail_falls_back_to_received_time() -> None:
    parsed = parse_mail(mail("Verpasster Anruf von '040 7654321'", "Zeitpunkt: 27.11.2031 10:00"), POOL)
    assert parsed.call_time == RECEIVED
    assert any("implausible" in note for note in parsed.notes)


def test_internal_error_yields_unrecognised_with_note() -> None:
    broken = replace(mail("Verpasster Anruf", ""), attachments=(None,))  # type: ignore[arg-type]
    parsed = parse_mail(broken, POOL)
    assert parsed.kind is EventKind.UNRECOGNISED
    assert parsed.notes == ("parser error: AttributeError",)


@pytest.mark.parametrize(("raw", "e164"), [
    ("0 30 / 12 34 56-7", "+49301234567"),
    ("+49 (0)30 1234567", "+49301234567"),
    ("0049 30 1234567", "+49301234567"),
    ("030-1234567", "+49301234567"),
    ("(030) 123 45 67", "+49301234567"),
    ("tel:+4930 1234567", "+49301234567"),
    ("+44 20 7946 0958", "+442079460958"),
    ("0044 20 7946 0958", "+442079460958"),
    ("+44 (0)20 7946 0958", "+442079460958"),
    ("0043 1 5331234", "+4315331234"),
    ("0151/23456789", "+4915123456789"),
])
def test_normalise_number(raw: str, e164: str) -> None:
    assert normalise_number(raw) == e164


@pytest.mark.parametrize("raw", ["", "anonymous", "123", "0800-FLOWERS", "27.11.2026", "+", "0" * 30])
def test_normalise_number_rejects_non_numbers(raw: str) -> None:
    assert normalise_number(raw) is None


def test_normalise_number_other_default_region() -> None:
    assert normalise_number("01 42 68 53 00", region="FR") == "+33142685300"


@pytest.mark.parametrize(("text", "seconds"), [
    ("0:42", 42), ("42 Sek.", 42), ("1 Min. 5 Sek.", 65), ("00:01:05", 65), ("1m 5s", 65), ("42", 42),
    ("2 Minuten", 120), ("keine Angabe", None),
])
def test_durations(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


def test_html_to_text_drops_scripts_and_keeps_tel_targets() -> None:
    html = ("<p>Hallo&nbsp;Team</p><script>alert('0301111111')</script><style>p{}</style>"
            "<a href='tel:+49 40 7654321'>Zurückrufen</a>")
    text = body_to_text(html, "html")
    assert "0301111111" not in text and "alert" not in text
    assert "Hallo Team" in text
    assert "Zurückrufen (+49 40 7654321)" in text


def test_plain_text_with_angle_bracket_address_is_not_read_as_html() -> None:
    assert "no-reply@placetel.de" in body_to_text("Von: Telefonanlage <no-reply@placetel.de>", "text")


def test_undecodable_subject_stays_as_it_was() -> None:
    assert decode_subject("=?x-unknown?Q?abc?=") == "=?x-unknown?Q?abc?="


def test_load_profiles_and_use_a_configured_profile() -> None:
    config = json.dumps([{
        "name": "sipgate-team",
        "sender_domains": ["sipgate.de"],
        "subject_patterns": {"missed_call": ["Anruf verpasst"]},
        "body_patterns": {"caller": [r"Gegenstelle\s+(?P<value>[+\d ]+)"]},
        "attachment_rules": [{"kind": "voicemail", "extensions": ["OGG"]}],
        "withheld_keywords": ["anonymous"],
    }])
    profiles = merge_profiles(load_profiles(config), BUILTIN_PROFILES)
    assert [p.name for p in profiles] == ["sipgate-team", "placetel", "wav-pbx"]
    assert profiles[0].attachment_rules[0].extensions == (".ogg",)

    parsed = parse_mail(mail("Anruf verpasst", "Gegenstelle +49 40 7654321", sender="team@sipgate.de"), POOL,
                        profiles)
    assert (parsed.profile, parsed.kind, parsed.caller) == ("sipgate-team", EventKind.MISSED_CALL, "+49407654321")


def test_configured_profile_replaces_builtin_of_same_name() -> None:
    custom = ParserProfile(name="placetel", sender_domains=("placetel.de", "placetel.ch"))
    profiles = merge_profiles([custom], BUILTIN_PROFILES)
    assert [p.name for p in profiles] == ["placetel", "wav-pbx"]
    assert profiles[0] is custom


@pytest.mark.parametrize(("config", "fragment"), [
    ("{not json", "not valid JSON"),
    ('[{"name": "x", "body_patterns": {"caller": ["ok", "(unclosed"]}}]', "[0].body_patterns.caller.1"),
    ('[{"name": "x", "sender_domains": ["not a domain"]}]', "[0].sender_domains"),
    ('[{"name": "x", "attachment_rules": [{"kind": "video"}]}]', "[0].attachment_rules.0.kind"),
    ('[{"name": "x", "colour": "blue"}]', "[0].colour"),
    ('[{"sender_domains": []}]', "[0].name"),
    ('[{"name": "x"}, {"name": "x"}]', "duplicate profile name 'x'"),
])
def test_load_profiles_names_the_bad_field(config: str, fragment: str) -> None:
    with pytest.raises(ProfileConfigError) as caught:
        load_profiles(config)
    assert fragment in str(caught.value)


def test_builtin_profiles_round_trip_through_json() -> None:
    config = json.dumps([p.model_dump(mode="json") for p in BUILTIN_PROFILES])
    assert tuple(load_profiles(config)) == BUILTIN_PROFILES
    assert PLACETEL_PROFILE.matches_sender("fax@mail.placetel.de")
    assert not PLACETEL_PROFILE.matches_sender("x@notplacetel.de")
