"""Hypothesis fuzzing: the parser never raises and always returns a well-formed ParsedMail."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.events import WITHHELD, EventKind
from bot.placetel import (
    BUILTIN_PROFILES,
    MailAttachment,
    MailMessage,
    ParsedMail,
    ParserProfile,
    normalise_number,
    parse_mail,
)
from bot.placetel.profiles import BodyPatterns, KindPatterns
from bot.placetel.timing import parse_duration
from tests.support.pbx_mail import eop_headers

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_LARGE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.data_too_large])
E164 = re.compile(r"^\+[1-9]\d{5,16}$")

WORDS = st.sampled_from([
    "Verpasster Anruf", "von", "auf", "Anrufer:", "Rufnummer:", "Name:", "Datum:", "Uhrzeit:", "Dauer:",
    "Sprachnachricht", "Fax", "Voicemail", "anonymous", "unterdrückt", "Unbekannt", "'", "\"", "(0)", "+49",
    "0049", "0 30 / 12 34 56-7", "+44 20 7946 0958", "030 1234500", "27.11.2026", "10:32", "1 Min. 5 Sek.",
    "=?utf-8?Q?Anruf_=C3=BC?=", "=?utf-8?B?", "?=", "WG:", "[Rufpool]", "tel:", "https://x.example/?0301",
    "\n", "\t", " ", "&nbsp;", "&#", ";", "[", "](", ")", "00:01:05", "2026-11-27T10:32:00+01:00", "31.02.2026",
    "99:99", "0:42", "9" * 25,
])
TAGS = st.sampled_from([
    "<html>", "</html>", "<body>", "<table>", "<tr>", "<td>", "</td>", "</tr>", "<br>", "<br/>", "<p>", "</p>",
    "<script>", "</script>", "<style>", "</style>", "<a href='tel:+49301234567'>", "<a href=\"tel:", "</a>",
    "<!--", "-->", "<![CDATA[", "<div", ">", "<", "</", "<head><title>", "&amp;", "&lt;", "&#x30;",
])
MIXED_TEXT = st.lists(st.one_of(WORDS, TAGS, st.text(max_size=20)), max_size=40).map("".join)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-11, minutes=-30))])
RECEIVED = st.builds(lambda dt, tz: dt.replace(tzinfo=tz),
                     st.datetimes(min_value=datetime(2001, 1, 2), max_value=datetime(2098, 12, 30)), ZONES)
ATTACHMENTS = st.lists(
    st.builds(
        MailAttachment,
        id=st.text(max_size=8),
        name=st.one_of(st.text(max_size=12), st.sampled_from(["vm.mp3", "x.WAV", "fax.pdf", "f.tif", "a.png", ""])),
        content_type=st.sampled_from(["audio/mpeg", "audio/wav", "application/pdf", "image/tiff", "", "x/y;a=b"]),
        size=st.integers(min_value=0, max_value=10**9),
    ),
    max_size=3,
).map(tuple)
SENDERS = st.one_of(
    st.sampled_from(["no-reply@placetel.de", "voicemail@nfon.com", "zentrale@musterfirma.de", "", "@", "x@y"]),
    st.emails(),
    st.text(max_size=20),
)
POOLS = st.lists(st.one_of(st.sampled_from(["+49 30 1234500", "030 1234501", "", "junk"]), st.text(max_size=15)),
                 max_size=3)
HEADER_NAMES = st.sampled_from([
    "Authentication-Results", "ARC-Authentication-Results", "Auto-Submitted", "Precedence", "In-Reply-To",
    "X-Auto-Response-Suppress", "Content-Type", "List-Id", "X-Failed-Recipients", "References", "Received",
])
HEADER_VALUES = st.one_of(
    st.sampled_from([
        "spf=pass smtp.mailfrom=placetel.de; dmarc=pass header.from=placetel.de", "dmarc=fail", "auto-replied",
        "auto-generated", "bulk", "auto_reply", "i=1; mx.microsoft.com 1; dmarc=pass header.from=pbx.example",
        "multipart/report; report-type=delivery-status", "((((", ";;;=", "spf=pass (((x) smtp.mailfrom=",
    ]),
    st.text(max_size=40),
)
RANDOM_HEADERS = st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=5).map(tuple)


def with_headers(mail: MailMessage, headers: tuple[tuple[str, str], ...] | None, authentic: bool) -> MailMessage:
    """Half the mails carry Exchange Online's passing verdict on top, so the profile rules are reached too."""
    stamped = eop_headers(mail.sender_address) + (headers or ()) if authentic else headers
    return replace(mail, headers=stamped)


MAILS = st.builds(
    with_headers,
    st.builds(
        MailMessage,
        mailbox=st.sampled_from(["zentrale@musterfirma.de", ""]),
        message_id=st.text(max_size=10),
        subject=st.one_of(MIXED_TEXT, st.text()),
        sender_address=SENDERS,
        body=st.one_of(MIXED_TEXT, st.text()),
        received_at=RECEIVED,
        body_type=st.sampled_from(["html", "text", "HTML", ""]),
        attachments=ATTACHMENTS,
    ),
    st.one_of(st.none(), RANDOM_HEADERS),
    st.booleans(),
)
LARGE_BODIES = st.builds(
    lambda unit, size: (unit or "9") * (size // len(unit or "9") + 1),
    st.one_of(MIXED_TEXT, st.sampled_from(["@", "<div>", "<!--", "[](", "0", "0 ", "a.", "<a href='tel:1'>"])),
    st.integers(min_value=10_000, max_value=300_000),
).map(lambda body: body[:300_000])


def assert_well_formed(parsed: ParsedMail, pool: list[str]) -> None:
    assert not any(note.startswith("parser error") for note in parsed.notes), parsed.notes
    assert isinstance(parsed, ParsedMail)
    assert isinstance(parsed.kind, EventKind)
    assert parsed.call_time.tzinfo is not None and parsed.call_time.utcoffset() is not None
    assert parsed.caller is None or parsed.caller == WITHHELD or E164.match(parsed.caller)
    assert parsed.pool_number is None or E164.match(parsed.pool_number)
    assert parsed.caller not in {normalise_number(p) for p in pool} - {None}
    assert all(isinstance(note, str) and note for note in parsed.notes)
    assert parsed.is_pbx_mail or parsed.kind is EventKind.UNRECOGNISED
    if parsed.voicemail_attachment_id is not None:
        assert parsed.kind is EventKind.VOICEMAIL
    if parsed.fax_attachment_id is not None:
        assert parsed.kind is EventKind.FAX
    assert parsed.voicemail_duration_seconds is None or parsed.voicemail_duration_seconds >= 0


@FUZZ
@given(mail=MAILS, pool=POOLS)
def test_parse_mail_never_raises(mail: MailMessage, pool: list[str]) -> None:
    parsed = parse_mail(mail, pool)
    assert_well_formed(parsed, pool)
    if parsed.kind is EventKind.UNRECOGNISED:
        assert parsed.caller is None, "an unrecognised item must never carry a number (no call link)"


def fuzz_profile(keyword: str, label: str) -> ParserProfile:
    return ParserProfile(
        name="fuzz",
        sender_domains=("pbx.example",),
        subject_patterns=KindPatterns(missed_call=(re.escape(keyword),)),
        body_patterns=BodyPatterns(caller=(re.escape(label) + r"(?P<value>[^\n]*)",),
                                   time=(re.escape(label) + r"(.*)",), duration=(r"(\d+)",)),
        withheld_keywords=(keyword,),
        notice_patterns=(re.escape(label) + "x",),
    )


def configured(mail: MailMessage, profile: ParserProfile) -> ParsedMail:
    authentic = replace(mail, sender_address="x@pbx.example", headers=eop_headers("x@pbx.example"))
    parsed = parse_mail(authentic, [], (profile, *BUILTIN_PROFILES))
    assert_well_formed(parsed, [])  # includes: no "parser error" note, so a crashing parse fails the test
    assert parsed.profile in {"fuzz", None}
    if not parsed.ignored and parsed.is_pbx_mail:
        assert parsed.profile == "fuzz"
    return parsed


@FUZZ
@given(mail=MAILS, keyword=st.text(min_size=1, max_size=10), label=st.text(min_size=1, max_size=10))
def test_parse_mail_with_configured_profile_never_raises(mail: MailMessage, keyword: str, label: str) -> None:
    configured(mail, fuzz_profile(keyword, label))


@FUZZ_LARGE
@given(mail=MAILS, body=LARGE_BODIES, keyword=st.text(min_size=1, max_size=10), label=st.text(min_size=1, max_size=10))
def test_configured_profile_on_large_bodies(mail: MailMessage, body: str, keyword: str, label: str) -> None:
    assert 10_000 <= len(body) <= 300_000
    configured(replace(mail, body=body), fuzz_profile(keyword, label))


@pytest.mark.parametrize("unit", ["@", "<div>", "<!--", "[](", "9", "0 ", "a.", "<a href='tel:1'>", "Anrufer: "])
def test_configured_profile_on_bodies_at_the_size_cap(unit: str) -> None:
    body = (unit * (300_000 // len(unit) + 1))[:300_000]
    mail = MailMessage(mailbox="zentrale@musterfirma.de", message_id="m", subject="Anruf", sender_address="",
                       body=body, received_at=datetime(2026, 11, 27, tzinfo=UTC))
    parsed = configured(mail, fuzz_profile("Anruf", "Anrufer:"))
    assert parsed.profile == "fuzz"


@FUZZ
@given(raw=st.one_of(st.text(), st.from_regex(r"\A[+(]?[0-9 ()/.\-]{0,30}\Z")),
       region=st.sampled_from(["DE", "AT", "GB", "ZZ", ""]))
def test_normalise_number_never_raises(raw: str, region: str) -> None:
    result = normalise_number(raw, region)
    assert result is None or E164.match(result)


@FUZZ
@given(text=st.text(max_size=40))
def test_parse_duration_never_raises(text: str) -> None:
    seconds = parse_duration(text)
    assert seconds is None or 0 <= seconds <= 24 * 3600
