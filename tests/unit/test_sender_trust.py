"""The trust rule: a mail is a PBX's only when the sender matches a profile and passed sender authentication."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.domain.events import EventKind
from bot.placetel import BUILTIN_PROFILES, MailMessage, ParserProfile, load_profiles, merge_profiles, parse_mail
from bot.placetel.classify import conversation_reason, ignore_reason
from bot.placetel.trust import check_sender
from tests.support.pbx_mail import eop_headers

SENDER = "no-reply@placetel.de"
EOP_PASS = eop_headers(SENDER)
ARC_PASS = ("ARC-Authentication-Results", "i=2; mx.microsoft.com 1; spf=pass smtp.mailfrom=placetel.de; "
            "dmarc=pass action=none header.from=placetel.de; dkim=pass header.d=placetel.de")
RELAYED = ("Authentication-Results", "spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=relay.example; "
           "dmarc=fail action=none header.from=placetel.de;compauth=pass reason=130")


def results(value: str) -> tuple[tuple[str, str], ...]:
    return (("Authentication-Results", value),)


@pytest.mark.parametrize(("headers", "requirement", "passed"), [
    (EOP_PASS, "dmarc_or_spf", True),
    (EOP_PASS, "dmarc", True),
    (results("dmarc=pass action=none header.from=placetel.de"), "dmarc", True),
    (results("dmarc=pass action=none header.from=mail.placetel.de"), "dmarc", True),  # relaxed alignment
    (results("dmarc=pass action=none header.from=attacker.example"), "dmarc_or_spf", False),
    (results("spf=pass smtp.mailfrom=bounce.placetel.de; dmarc=none"), "dmarc_or_spf", True),
    (results("spf=pass smtp.mailfrom=bounce.placetel.de; dmarc=none"), "dmarc", False),
    (results("spf=pass smtp.mailfrom=attacker.example; dmarc=none"), "dmarc_or_spf", False),
    (results("spf=pass smtp.mailfrom=placetel.de.attacker.example; dmarc=none"), "dmarc_or_spf", False),
    (results("spf=softfail smtp.mailfrom=placetel.de; dmarc=fail header.from=placetel.de"), "dmarc_or_spf", False),
    (results("spf=pass (comment (nested) smtp.mailfrom=attacker.example) smtp.mailfrom=placetel.de"), "dmarc_or_spf",
     True),
    (results("dmarc=pass (header.from=placetel.de) header.from=attacker.example"), "dmarc", False),
    ((), "dmarc_or_spf", False),
    (None, "dmarc_or_spf", False),
    (None, "off", True),
    (results("(((((;;;===="), "dmarc_or_spf", False),
])
def test_authentication_results_verdicts(headers: tuple[tuple[str, str], ...] | None, requirement: str,
                                         passed: bool) -> None:
    assert check_sender(headers, SENDER, requirement).passed is passed  # type: ignore[arg-type]


def test_only_the_topmost_authentication_results_counts() -> None:
    forged_below = (*results("dmarc=fail header.from=placetel.de"), *EOP_PASS)
    assert not check_sender(forged_below, SENDER, "dmarc_or_spf").passed
    assert check_sender((*EOP_PASS, *results("dmarc=fail header.from=placetel.de")), SENDER, "dmarc_or_spf").passed


def test_arc_counts_only_for_a_trusted_sealer_and_not_against_arc_fail() -> None:
    relayed = (RELAYED, ARC_PASS)
    assert not check_sender(relayed, SENDER, "dmarc_or_spf").passed
    assert check_sender(relayed, SENDER, "dmarc_or_spf", ["mx.microsoft.com"]).passed
    assert not check_sender(relayed, SENDER, "dmarc_or_spf", ["arc.other.example"]).passed
    arc_failed = (("Authentication-Results", RELAYED[1] + "; arc=fail"), ARC_PASS)
    assert not check_sender(arc_failed, SENDER, "dmarc_or_spf", ["mx.microsoft.com"]).passed
    older = ("ARC-Authentication-Results", "i=1; mx.microsoft.com 1; dmarc=fail header.from=placetel.de")
    assert check_sender((RELAYED, older, ARC_PASS), SENDER, "dmarc", ["mx.microsoft.com"]).passed  # highest i


def mail(sender: str = SENDER, headers: tuple[tuple[str, str], ...] | None = EOP_PASS) -> MailMessage:
    return MailMessage(mailbox="zentrale@musterfirma.de", message_id="m1",
                       subject="Verpasster Anruf von '0151 11223344' auf '030 1234500'", sender_address=sender,
                       body="Sie haben einen Anruf verpasst.", received_at=datetime(2026, 11, 27, 9, 35, tzinfo=UTC),
                       headers=headers)


def test_a_trusted_authenticated_sender_gives_a_call_and_a_forged_one_an_item_without_number() -> None:
    assert parse_mail(mail(), ["+49 30 1234500"]).caller == "+4915111223344"
    forged = parse_mail(mail(headers=results("dmarc=fail header.from=placetel.de")), ["+49 30 1234500"])
    assert (forged.kind, forged.caller, forged.is_pbx_mail) == (EventKind.UNRECOGNISED, None, False)
    assert any(note.startswith("sender authentication failed") for note in forged.notes)


def test_an_admin_adds_a_pbx_sender_by_address_with_its_own_rule() -> None:
    config = json.dumps([{
        "name": "hauszentrale",
        "sender_addresses": ["TK-Anlage@Musterfirma.de"],
        "sender_authentication": "off",
        "subject_patterns": {"missed_call": ["Verpasster Anruf"]},
        "body_patterns": {"caller": ["\\bvon[ \\t]*'(?P<value>[^'\\n]*)'"]},
    }])
    profiles = merge_profiles(load_profiles(config), BUILTIN_PROFILES)
    parsed = parse_mail(mail("tk-anlage@musterfirma.de", headers=()), ["+49 30 1234500"], profiles)
    assert (parsed.profile, parsed.kind, parsed.caller) == ("hauszentrale", EventKind.MISSED_CALL, "+4915111223344")
    colleague = parse_mail(mail("anna@musterfirma.de", headers=()), ["+49 30 1234500"], profiles)
    assert colleague.kind is EventKind.UNRECOGNISED and colleague.caller is None
    assert any("member of the team" in note for note in colleague.notes)


@pytest.mark.parametrize(("config", "fragment"), [
    ('[{"name": "x", "sender_authentication": "maybe"}]', "[0].sender_authentication"),
    ('[{"name": "x", "sender_addresses": ["no address"]}]', "[0].sender_addresses"),
])
def test_bad_trust_settings_are_named(config: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_profiles(config)


def test_profile_sender_matching_is_exact_on_the_domain() -> None:
    profile = ParserProfile(name="p", sender_domains=("placetel.de",), sender_addresses=("pbx@firma.de",))
    assert profile.matches_sender("fax@mail.placetel.de") and profile.matches_sender("PBX@firma.de")
    assert not profile.matches_sender("x@placetel.de.example") and not profile.matches_sender("x@notplacetel.de")
    assert not profile.matches_sender("placetel.de") and not profile.matches_sender("anna@firma.de")


@pytest.mark.parametrize(("headers", "subject", "sender", "klass", "ignored"), [
    ((("Auto-Submitted", "auto-replied"),), "Hallo", "a@b.de", "", True),
    ((("Auto-Submitted", "auto-generated"),), "Verpasster Anruf", "a@b.de", "", False),  # PBX notices say this
    ((("X-Auto-Response-Suppress", "All"),), "Verpasster Anruf", "a@b.de", "", False),
    ((), "Automatische Antwort: Verpasster Anruf", "a@b.de", "", True),
    ((), "Out of Office: x", "a@b.de", "", True),
    ((), "Hallo", "a@b.de", "IPM.Note.Rules.OofTemplate.Microsoft", True),
    ((), "Hallo", "a@b.de", "REPORT.IPM.Note.NDR", True),
    ((), "Unzustellbar: x", "postmaster@b.de", "", True),
    ((), "Verpasster Anruf von x", "a@b.de", "IPM.Note", False),
])
def test_ignore_classes(headers: tuple[tuple[str, str], ...], subject: str, sender: str, klass: str,
                        ignored: bool) -> None:
    assert (ignore_reason(headers, subject, sender, klass) is not None) is ignored


@pytest.mark.parametrize(("subject", "headers", "sender", "people"), [
    ("AW: Verpasster Anruf", (), "x@kunde.de", True),
    ("WG: Verpasster Anruf", (), "x@kunde.de", True),
    ("Fwd: Verpasster Anruf", (), "x@kunde.de", True),
    ("[EXTERN] RE: Verpasster Anruf", (), "x@kunde.de", True),
    ("Verpasster Anruf", (("In-Reply-To", "<a@b>"),), "x@kunde.de", True),
    ("Rückruf bitte", (), "anna@musterfirma.de", True),
    ("Verpasster Anruf von '0151' auf '030'", (), "no-reply@placetel.de", False),
])
def test_peoples_mail(subject: str, headers: tuple[tuple[str, str], ...], sender: str, people: bool) -> None:
    assert (conversation_reason(headers, subject, sender, "zentrale@musterfirma.de") is not None) is people
