"""Rule-based parser for PBX notification mails (missed call, voicemail, fax) with configurable profiles.

The rules, in order (docs/parser.md explains them):

1. Mail of the bot's own making (sender is the mailbox itself, or subject starts ``[Rufpool]``), automatic replies
   and bounces are *ignored*: no item at all.
2. Only a profile's trusted sender can make a call: the sender must match a profile (address or domain) *and* pass
   sender authentication (:mod:`bot.placetel.trust`). Everything else — people's mail (replies, forwards, the
   team's own notes), other senders, forged PBX senders — is an unrecognised item without caller.
3. A PBX notice that is not about a call (mailbox full, invoice, maintenance) is an unrecognised item too.
4. Kind: a voicemail or fax attachment, else the subject's wording, else the body's wording, else a missed
   call when a caller was found (by the number search only if the text speaks of calls).
5. Caller: the profile's caller patterns, else the one phone number in the text that is not the pool line's
   own, else a withheld marker, else none ("unbekannt"). Every uncertain decision leaves a note.

:func:`parse_mail` never raises, and every step is linear in the (capped) mail size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.core.numbers import NumberCandidate, find_numbers, is_valid_number, normalise_numbers
from bot.core.values import MailAttachment, MailMessage, ParsedMail
from bot.domain.events import WITHHELD, EventKind
from bot.placetel.classify import automated_reason, conversation_reason, ignore_reason
from bot.placetel.profiles import BUILTIN_PROFILES, AttachmentRule, ParserProfile, compiled
from bot.placetel.text import body_to_text, decode_subject, strip_reply_prefixes, without_addresses
from bot.placetel.timing import as_aware, blank_dates_and_times, parse_clock, parse_date, parse_duration
from bot.placetel.trust import check_sender

OWN_SUBJECT_MARKER = "[Rufpool]"
"""Subject prefix of every mail the bot itself sends; such mail is never read as a PBX notice."""

_MAX_BODY_CHARS = 300_000
_MAX_TEXT_CHARS = 20_000
"""Visible text read from a body: a PBX notice is a few hundred characters; the cap bounds the work per mail."""
_MAX_SUBJECT_CHARS = 1_000
_MAX_PATTERN_HITS = 20
_FUTURE_TOLERANCE = timedelta(minutes=15)
_PAST_TOLERANCE = timedelta(days=31)

_CALL_WORDING = re.compile(
    r"anruf|verpasst|sprachnachricht|voice\s*-?mail|mailbox|anrufbeantworter|r[üu]ckruf|"
    r"missed\s+call|caller|\bcall\s+from|\b(?:tele)?fax\b",
    re.IGNORECASE,
)
_CALLER_LABEL_BEFORE = re.compile(
    r"\b(?:von|from|anrufer\w*|rufnummer|caller|calling|absender\w*|anruf\s+von)\b[^\n\d]{0,24}$", re.IGNORECASE
)
_LABEL_WINDOW = 48
"""How far before a number :data:`_CALLER_LABEL_BEFORE` looks (the longest label plus its 24-character gap)."""
_MAX_SEARCH_NUMBERS = 50
"""The number search looks at this many candidates at most: a mail full of numbers is no clear call notice."""
_NAME_JUNK = re.compile(r"[()<>\[\]'\"„“”‘’«»:;,|/\\]+")
_LETTER = re.compile(r"[^\W\d_]")


def parse_mail(
    mail: MailMessage,
    pool_numbers: Sequence[str],
    profiles: Sequence[ParserProfile] = BUILTIN_PROFILES,
    default_region: str = "DE",
) -> ParsedMail:
    """Classify one mail and extract caller, pool number, time and attachments. Never raises."""
    try:
        return _Reading(mail, pool_numbers, profiles, default_region).parse()
    except Exception as exc:  # the contract: a mail the parser chokes on is still an (unrecognised) item
        return unrecognised(mail, f"parser error: {type(exc).__name__}")


def unrecognised(mail: MailMessage, note: str) -> ParsedMail:
    """An unrecognised item for ``mail`` without reading it (parser error, time budget exceeded)."""
    return ParsedMail(
        kind=EventKind.UNRECOGNISED,
        call_time=_received_time(mail),
        is_pbx_mail=False,
        subject=mail.subject if isinstance(mail.subject, str) else "",
        notes=(note,),
    )


def _received_time(mail: MailMessage) -> datetime:
    received = mail.received_at
    if not isinstance(received, datetime):
        return datetime.now(UTC)
    return received if received.tzinfo is not None else received.replace(tzinfo=UTC)


def _value(match: re.Match[str]) -> str:
    """A pattern's named group ``value``, else its first group, else the whole match."""
    if "value" in match.re.groupindex:
        return match.group("value") or ""
    return (match.group(1) or "") if match.re.groups else match.group(0)


def _clean_name(raw: str, withheld_keywords: Sequence[str]) -> str | None:
    if "@" in raw or "://" in raw:
        return None
    name = " ".join(_NAME_JUNK.sub(" ", raw).split()).strip(" -–.")
    if len(_LETTER.findall(name)) < 2 or any(k in name.lower() for k in withheld_keywords):
        return None
    return name[:80]


@dataclass(frozen=True, slots=True)
class _Caller:
    value: str | None = None
    raw: str | None = None
    name_hint: str | None = None
    by_search: bool = False
    """Found by the number search rather than by a profile pattern: weaker evidence."""


class _Reading:
    """One parse: the mail, its derived texts, and the notes collected on the way."""

    def __init__(
        self, mail: MailMessage, pool_numbers: Sequence[str], profiles: Sequence[ParserProfile], region: str
    ) -> None:
        self.mail = mail
        self.profiles = profiles
        self.region = region
        self.notes: list[str] = []
        self.profile_name: str | None = None
        """Set once the mail is known to come from this profile's (authenticated) sender."""
        self.received = _received_time(mail)
        if mail.received_at.tzinfo is None:
            self.notes.append("received time had no time zone; read as UTC")
        self.subject = decode_subject((mail.subject or "")[:_MAX_SUBJECT_CHARS])
        self.core_subject = strip_reply_prefixes(self.subject)
        body = mail.body or ""
        if len(body) > _MAX_BODY_CHARS:
            body = body[:_MAX_BODY_CHARS]
            self.notes.append("body truncated")
        self.text = body_to_text(body, mail.body_type or "text", _MAX_TEXT_CHARS)[:_MAX_TEXT_CHARS]
        self.full = f"{self.core_subject}\n{self.text}"
        self.scan_text = blank_dates_and_times(without_addresses(self.full))
        self.pool = normalise_numbers(pool_numbers, region)

    def parse(self) -> ParsedMail:
        mail = self.mail
        headers = mail.headers or ()
        sender = (mail.sender_address or "").strip()
        if self._is_own_mail():
            return self._ignored("own mail")
        ignore = ignore_reason(headers, self.subject, sender, mail.message_class or "")
        if ignore is not None:
            return self._ignored(ignore)
        profile = next((p for p in self.profiles if p.matches_sender(sender)), None)
        conversation = conversation_reason(headers, self.subject, sender, mail.mailbox or "")
        if profile is None:
            reason = conversation or automated_reason(headers) or "sender is no configured PBX"
            return self._result(EventKind.UNRECOGNISED, is_pbx=False, note=f"not a call: {reason}")
        if conversation is not None and conversation != "mail from a member of the team":
            return self._result(EventKind.UNRECOGNISED, is_pbx=False, note=f"not a call: {conversation}")
        verdict = check_sender(mail.headers, sender, profile.sender_authentication, profile.trusted_arc_sealers)
        if not verdict.passed:
            return self._result(
                EventKind.UNRECOGNISED, is_pbx=False, note=f"sender authentication failed: {verdict.reason}"
            )
        self.profile_name = profile.name
        if self._is_notice(profile, self.core_subject):
            return self._result(EventKind.UNRECOGNISED, is_pbx=True, note="PBX notice that is not about a call")
        return self._read(profile)

    # --- which rules apply ---------------------------------------------------------------------------------

    def _is_own_mail(self) -> bool:
        sender = (self.mail.sender_address or "").strip().lower()
        mailbox = (self.mail.mailbox or "").strip().lower()
        return (bool(sender) and sender == mailbox) or self.subject.lstrip().startswith(OWN_SUBJECT_MARKER)

    @staticmethod
    def _is_notice(rules: ParserProfile, text: str) -> bool:
        return any(compiled(p).search(text) for p in rules.notice_patterns)

    # --- reading with one profile ----------------------------------------------------------------------------

    def _read(self, rules: ParserProfile) -> ParsedMail:
        audio = self._attachment(rules, "voicemail")
        fax = self._attachment(rules, "fax")
        kind = self._kind_from_attachments(audio, fax) or self._kind_from_wording(rules, self.core_subject)
        if kind is None and self._is_notice(rules, self.text):
            return self._result(EventKind.UNRECOGNISED, is_pbx=True, note="PBX notice that is not about a call")
        kind = kind or self._kind_from_wording(rules, self.text)
        pool_number = self._called_number(rules)
        caller = self._caller(rules, exclude=pool_number)
        if kind is None:
            if (
                caller.value is not None
                and rules.missed_call_without_attachment
                and (not caller.by_search or _CALL_WORDING.search(self.full))
            ):
                kind = EventKind.MISSED_CALL
                self.notes.append("no attachment and no kind wording: read as missed call")
            else:
                self.notes.append("could not tell what kind of notice this is")
                return self._result(EventKind.UNRECOGNISED, is_pbx=True)
        if pool_number is None:
            self.notes.append("pool number not found in the mail")
        if kind is EventKind.VOICEMAIL and audio is None:
            self.notes.append("voicemail without audio attachment")
        return ParsedMail(
            kind=kind,
            call_time=self._call_time(rules),
            is_pbx_mail=True,
            subject=self.subject,
            caller=caller.value,
            caller_raw=caller.raw,
            caller_as_written=self._as_written(caller),
            caller_name=self._caller_name(rules, caller),
            pool_number=pool_number,
            voicemail_attachment_id=audio.id if audio and kind is EventKind.VOICEMAIL else None,
            voicemail_file_name=audio.name if audio and kind is EventKind.VOICEMAIL else None,
            voicemail_duration_seconds=self._duration(rules) if kind is EventKind.VOICEMAIL else None,
            fax_attachment_id=fax.id if fax and kind is EventKind.FAX else None,
            profile=rules.name,
            notes=tuple(self.notes),
        )

    def _as_written(self, caller: _Caller) -> str | None:
        if caller.value is None or caller.value == WITHHELD or caller.raw is None:
            return None
        if is_valid_number(caller.value):
            return None
        self.notes.append("caller number is not valid under the numbering plan; shown as written")
        return " ".join(caller.raw.split())[:40]

    def _result(self, kind: EventKind, *, is_pbx: bool, note: str | None = None) -> ParsedMail:
        """A result that names no caller: unrecognised items never carry a number, so never a call link."""
        if note:
            self.notes.append(note)
        return ParsedMail(
            kind=kind,
            call_time=self.received,
            is_pbx_mail=is_pbx,
            subject=self.subject,
            profile=self.profile_name,
            notes=tuple(self.notes),
        )

    def _ignored(self, note: str) -> ParsedMail:
        self.notes.append(note)
        return ParsedMail(
            kind=EventKind.UNRECOGNISED,
            call_time=self.received,
            is_pbx_mail=False,
            subject=self.subject,
            notes=tuple(self.notes),
            ignored=True,
        )

    def _hits(self, patterns: Sequence[str], text: str | None = None) -> Iterator[str]:
        """Extracted values of all patterns, pattern by pattern, capped per pattern."""
        for pattern in patterns:
            for count, match in enumerate(compiled(pattern).finditer(self.full if text is None else text)):
                if count >= _MAX_PATTERN_HITS:
                    break
                yield _value(match)

    # --- kind ------------------------------------------------------------------------------------------------

    def _attachment(self, rules: ParserProfile, kind: str) -> MailAttachment | None:
        for attachment in self.mail.attachments:
            for rule in rules.attachment_rules:
                if (
                    rule.kind == kind
                    and rule.matches(attachment.name or "", attachment.content_type or "")
                    and self._confirmed(rule)
                ):
                    return attachment
        return None

    def _confirmed(self, rule: AttachmentRule) -> bool:
        return rule.requires is None or compiled(rule.requires).search(self.full) is not None

    @staticmethod
    def _kind_from_attachments(audio: MailAttachment | None, fax: MailAttachment | None) -> EventKind | None:
        if audio is not None:
            return EventKind.VOICEMAIL
        return EventKind.FAX if fax is not None else None

    def _kind_from_wording(self, rules: ParserProfile, text: str) -> EventKind | None:
        wording = rules.subject_patterns
        # In a subject a voicemail word outranks "missed"; in a body, footers often mention the mailbox,
        # so there "missed" wins.
        in_subject = text is self.core_subject
        voicemail, missed = (EventKind.VOICEMAIL, wording.voicemail), (EventKind.MISSED_CALL, wording.missed_call)
        order = ((EventKind.FAX, wording.fax), *((voicemail, missed) if in_subject else (missed, voicemail)))
        for kind, patterns in order:
            if any(compiled(p).search(text) for p in patterns):
                if not in_subject:
                    self.notes.append("kind taken from the body wording")
                return kind
        return None

    # --- numbers ---------------------------------------------------------------------------------------------

    def _numbers_in(self, value: str, *, strict: bool) -> list[NumberCandidate]:
        return find_numbers(blank_dates_and_times(value), self.region, strict=strict)

    def _called_number(self, rules: ParserProfile) -> str | None:
        for value in self._hits(rules.body_patterns.called_number):
            for candidate in self._numbers_in(value, strict=False):
                if self.pool and candidate.e164 not in self.pool:
                    self.notes.append("called number is not one of the pool numbers")
                return candidate.e164
        for candidate in find_numbers(self.scan_text, self.region, strict=False):
            if candidate.e164 in self.pool:
                return candidate.e164
        return None

    def _is_withheld(self, value: str, keywords: Sequence[str]) -> bool:
        stripped = value.strip(" \t'\"„“”‘’«»<>()[]-–.:")
        if not stripped:
            return True
        lowered = stripped.lower()
        return not re.search(r"\d", lowered) and any(re.search(rf"(?<!\w){re.escape(k)}", lowered) for k in keywords)

    def _caller(self, rules: ParserProfile, exclude: str | None) -> _Caller:
        own = self.pool | frozenset({exclude} if exclude else ())
        for value in self._hits(rules.body_patterns.caller):
            if self._is_withheld(value, rules.withheld_keywords):
                return _Caller(WITHHELD, value.strip())
            for candidate in self._numbers_in(value, strict=False):
                if candidate.e164 not in own:
                    hint = value.replace(candidate.raw, " ")
                    return _Caller(candidate.e164, candidate.raw, _clean_name(hint, rules.withheld_keywords))
        found = self._caller_by_search(own)
        if found.value is not None:
            return found
        if self._withheld_wording(rules.withheld_keywords):
            self.notes.append("caller withheld (from the wording)")
            return _Caller(WITHHELD, None)
        self.notes.append("no caller number found")
        return _Caller()

    def _caller_by_search(self, own: frozenset[str]) -> _Caller:
        """Fallback: every valid phone number in the text that is not the pool line's own."""
        found = find_numbers(self.scan_text, self.region, strict=True, limit=_MAX_SEARCH_NUMBERS)
        candidates = [c for c in found if c.e164 not in own]
        distinct = list(dict.fromkeys(c.e164 for c in candidates))
        if not distinct:
            return _Caller()
        if len(distinct) == 1:
            self.notes.append("caller found by number search")
            return _Caller(candidates[0].e164, candidates[0].raw, by_search=True)
        labelled = [c for c in candidates if _CALLER_LABEL_BEFORE.search(self._before(c.start))]
        labelled_distinct = list(dict.fromkeys(c.e164 for c in labelled))
        if len(labelled_distinct) == 1:
            self.notes.append(f"{len(distinct)} numbers in the mail; chose the one labelled as caller")
            return _Caller(labelled[0].e164, labelled[0].raw, by_search=True)
        chosen = (labelled or candidates)[0]
        self.notes.append(f"{len(distinct)} candidate numbers; caller uncertain")
        return _Caller(chosen.e164, chosen.raw, by_search=True)

    def _before(self, position: int) -> str:
        """The text just before ``position``, where a caller label would stand."""
        return self.scan_text[max(0, position - _LABEL_WINDOW) : position]

    def _withheld_wording(self, keywords: Sequence[str]) -> bool:
        if not keywords:
            return False
        words = "|".join(re.escape(k) for k in keywords)
        near_label = re.compile(
            rf"\b(?:von|from|anrufer\w*|caller|rufnummer|nummer|number|anruf\w*)[ \t:'\"„“]*(?:{words})"
            rf"|(?<!\w)(?:{words})\w*[ \t]+(?:rufnummer|nummer|number|anrufer\w*|caller|call|anruf\w*)",
            re.IGNORECASE,
        )
        return near_label.search(self.full) is not None

    # --- name, time, duration ---------------------------------------------------------------------------

    def _caller_name(self, rules: ParserProfile, caller: _Caller) -> str | None:
        for value in self._hits(rules.body_patterns.caller_name):
            name = _clean_name(value, rules.withheld_keywords)
            if name:
                return name
        return caller.name_hint

    def _call_time(self, rules: ParserProfile) -> datetime:
        day: datetime | None = None
        clock: tuple[int, int, int] | None = None
        stamp: datetime | None = None
        for value in self._hits(rules.body_patterns.time):
            found = parse_date(value, self.received.year)
            if found is not None and found[1]:
                stamp = found[0]
                break
            if found is not None:
                day = day or found[0]
            elif clock is None:
                clock = parse_clock(value)
        if stamp is None and day is not None and clock is not None:
            stamp = day.replace(hour=clock[0], minute=clock[1], second=clock[2])
        if stamp is None:
            found = parse_date(self.full, self.received.year)
            if found is not None and found[1]:
                stamp = found[0]
                self.notes.append("call time found in running text")
        if stamp is None:
            self.notes.append("no call time in the mail; using the received time")
            return self.received
        aware = as_aware(stamp)
        if not self.received - _PAST_TOLERANCE <= aware <= self.received + _FUTURE_TOLERANCE:
            self.notes.append("call time in the mail is implausible; using the received time")
            return self.received
        return aware

    def _duration(self, rules: ParserProfile) -> int | None:
        for value in self._hits(rules.body_patterns.duration):
            seconds = parse_duration(value)
            if seconds is not None:
                return seconds
        return None
