"""Parser profiles: per-PBX rules (sender domains, patterns, attachment types), built-in or from configuration.

Every pattern is a Python regular expression, matched case-insensitively and multi-line against the mail's
plain text (HTML already stripped; table cells separated by a tab, rows by a line break). A pattern's named
group ``value`` — or else its first group, or else the whole match — is the extracted text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.domain.events import WITHHELD_KEYWORDS
from bot.placetel.trust import SenderAuthentication

_FLAGS = re.IGNORECASE | re.MULTILINE


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern, _FLAGS)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return pattern


Regex = Annotated[str, AfterValidator(_check_regex)]
Patterns = tuple[Regex, ...]


@lru_cache(maxsize=512)
def compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, _FLAGS)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KindPatterns(_Frozen):
    """Wording that marks a mail as one kind; tried on the subject first, then on the body."""

    missed_call: Patterns = ()
    voicemail: Patterns = ()
    fax: Patterns = ()


class BodyPatterns(_Frozen):
    """Where the details sit. Tried on the subject and the body text, in order; the first usable hit wins."""

    caller: Patterns = ()
    caller_name: Patterns = ()
    called_number: Patterns = ()
    time: Patterns = ()
    """Each hit may hold a date with a clock time, a date only, or a clock time only; they are combined."""
    duration: Patterns = ()


class AttachmentRule(_Frozen):
    """An attachment with one of these extensions or content types makes the mail a voicemail or a fax."""

    kind: Literal["voicemail", "fax"]
    extensions: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    """Exact (``application/pdf``) or a whole family (``audio/*``)."""
    requires: Regex | None = None
    """Optional wording that must appear in the subject or body too (a PDF alone may be an invoice)."""

    @field_validator("extensions")
    @classmethod
    def _dotted_lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple("." + ext.lower().lstrip(".") for ext in value if ext.strip("."))

    @field_validator("content_types")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(ct.strip().lower() for ct in value if ct.strip())

    def matches(self, name: str, content_type: str) -> bool:
        lowered = name.lower()
        if any(lowered.endswith(ext) for ext in self.extensions):
            return True
        mime = content_type.split(";", 1)[0].strip().lower()
        return any(mime == ct or (ct.endswith("/*") and mime.startswith(ct[:-1])) for ct in self.content_types)


_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)+")


class ParserProfile(_Frozen):
    """One PBX: who sends its notices (the trusted senders), how they read, and how the sender is verified."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    sender_domains: tuple[str, ...] = ()
    """A sender matches a domain exactly or any of its subdomains."""
    sender_addresses: tuple[str, ...] = ()
    """Single trusted sender addresses (``pbx@example.de``), for a PBX sharing its domain with people."""
    sender_authentication: SenderAuthentication = "dmarc_or_spf"
    """What the mail's ``Authentication-Results`` must show (bot/placetel/trust.py); ``off`` trusts the From."""
    trusted_arc_sealers: tuple[str, ...] = ()
    """authserv-ids whose ``ARC-Authentication-Results`` count when the mail was relayed (e.g. mx.microsoft.com)."""
    notice_patterns: Patterns = ()
    """Wording of the PBX's notices that are no calls (mailbox full, invoice, maintenance): tried on the subject,
    then the body, before the kind; such a mail becomes an unrecognised item."""
    subject_patterns: KindPatterns = KindPatterns()
    body_patterns: BodyPatterns = BodyPatterns()
    attachment_rules: tuple[AttachmentRule, ...] = ()
    withheld_keywords: tuple[str, ...] = ()
    """A caller text made only of such words (or empty) means the number was withheld."""
    missed_call_without_attachment: bool = True
    """A mail of this profile that names a caller but has no kind wording and no attachment is a missed call."""

    @field_validator("sender_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        domains = tuple(d.strip().lower().lstrip("@").rstrip(".") for d in value)
        for domain in domains:
            if not _DOMAIN.fullmatch(domain):
                raise ValueError(f"not a domain name: {domain!r}")
        return domains

    @field_validator("sender_addresses")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        addresses = tuple(a.strip().lower() for a in value)
        for address in addresses:
            local, _, domain = address.rpartition("@")
            if not local or any(ch.isspace() or ch == "@" for ch in local) or not _DOMAIN.fullmatch(domain):
                raise ValueError(f"not an e-mail address: {address!r}")
        return addresses

    @field_validator("trusted_arc_sealers")
    @classmethod
    def _sealers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(s.strip().lower() for s in value if s.strip())

    @field_validator("withheld_keywords")
    @classmethod
    def _keywords(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(k.strip().lower() for k in value if k.strip())

    def matches_sender(self, address: str) -> bool:
        """The sender is one of the profile's trusted senders (by From address only: see :meth:`verify`)."""
        lowered = address.strip().lower().strip("<>").rstrip(".")
        if lowered in self.sender_addresses:
            return True
        domain = lowered.rsplit("@", 1)[-1] if "@" in lowered else ""
        return bool(domain) and any(domain == d or domain.endswith("." + d) for d in self.sender_domains)


class ProfileConfigError(ValueError):
    """Raised by :func:`load_profiles`; the message names every offending field."""


def load_profiles(json_text: str) -> list[ParserProfile]:
    """Profiles from configuration: a JSON list of profile objects (or one object).

    Raises :class:`ProfileConfigError` naming each bad field, e.g. ``[0].body_patterns.caller.1: …``.
    """
    try:
        data = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise ProfileConfigError(f"parser profiles: not valid JSON: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    profiles: list[ParserProfile] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            profiles.append(ParserProfile.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                problems.append(f"[{index}]{'.' + where if where else ''}: {error['msg']}")
    names = [p.name for p in profiles]
    problems += [f"duplicate profile name {n!r}" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise ProfileConfigError("parser profiles invalid: " + "; ".join(problems))
    return profiles


def merge_profiles(configured: Iterable[ParserProfile], builtin: Sequence[ParserProfile]) -> tuple[ParserProfile, ...]:
    """Configured profiles first; a configured profile replaces the built-in one of the same name."""
    chosen = tuple(configured)
    names = {p.name for p in chosen}
    return chosen + tuple(p for p in builtin if p.name not in names)


# --- building blocks of the built-in profiles -------------------------------------------------------------

_OPEN_QUOTE = "['‘’\"„“«»‚]"
_CLOSE_QUOTE = "['‘’\"“”«»]"
_QUOTED = f"[ \\t]*{_OPEN_QUOTE}(?P<value>[^'‘’\"“”«»\\n]{{0,60}}){_CLOSE_QUOTE}"


def _labelled(*labels: str, colon: bool = True) -> str:
    """``Label: value`` up to the end of the line or table cell."""
    return rf"\b(?:{'|'.join(labels)})[ \t]*{':' if colon else ':?'}[ \t]*(?P<value>[^\t\n]*)"


_CALLER_LABELS = _labelled(
    "Anrufer(?:nummer)?",
    "Anrufende[rn]? Nummer",
    "Rufnummer(?: des Anrufers)?",
    "Anrufende Rufnummer",
    "Caller(?: ID| number)?",
    "Calling number",
    "Absendernummer",
    "Von",
    "From",
)
_NAME_LABELS = _labelled("Name(?: des Anrufers)?", "Anrufername", "Caller name", "Kontakt", "Contact")
_CALLED_LABELS = _labelled(
    "Angerufene (?:Rufnummer|Nummer)",
    "Gewählte (?:Rufnummer|Nummer)",
    "Zielrufnummer",
    "Ziel",
    "Called number",
    "Dialled number",
    "Dialed number",
    "To",
    "An",
    "Für",
    "For",
    "Leitung",
    "Line",
)
_TIME_LABELS = _labelled(
    "Datum",
    "Uhrzeit",
    "Zeit",
    "Zeitpunkt",
    "Anrufzeit",
    "Empfangen(?: am)?",
    "Eingegangen(?: am)?",
    "Date",
    "Time",
    "Received",
)
_DURATION_LABELS = _labelled(
    "Dauer",
    "Länge",
    "Laenge",
    "Nachrichtenlänge",
    "Gesprächsdauer",
    "Duration",
    "Length",
    colon=False,
)

_MISSED_WORDING = (
    r"verpasste[rn]?\s+anruf",
    r"anruf\s+in\s+abwesenheit",
    r"entgangene[rn]?\s+anruf",
    r"nicht\s+angenommen",
    r"missed\s+call",
    r"verpasst",
)
_VOICEMAIL_WORDING = (
    r"sprachnachricht",
    r"voice\s*-?mail",
    r"mailbox",
    r"anrufbeantworter",
    r"voice\s+message",
    r"neue\s+nachricht\s+(?:von|auf|f[üu]r)",
)
_FAX_WORDING = (r"\b(?:tele)?fax\b", r"\bfax\s+(?:von|from)\b")
_NOTICE_WORDING = (
    # The PBX writes about itself or the account, not about a call.
    r"(?:mailbox|sprachbox|voice\s*-?mail(?:box)?|anrufbeantworter|speicher(?:platz)?)\s+(?:ist\s+|is\s+)?"
    r"(?:fast\s+|bald\s+|almost\s+|nearly\s+)?(?:voll|full|belegt)",
    r"\b(?:rechnung|invoice|gutschrift|mahnung|zahlungserinnerung|lastschrift|einzelverbindungsnachweis)",
    r"\b(?:wartung|wartungsarbeiten|maintenance|st[öo]rung|outage|systemhinweis|system\s+notice)",
    r"\b(?:passwort|password|kennwort|zugangsdaten|zwei-faktor|two-factor)",
    r"\b(?:newsletter|guthaben|kontostand|account\s+balance)\b",
)


_AUDIO_EXTENSIONS = (".mp3", ".wav", ".ogg", ".m4a", ".wma", ".gsm")
_VOICEMAIL_ATTACHMENT = AttachmentRule(kind="voicemail", extensions=_AUDIO_EXTENSIONS, content_types=("audio/*",))
_TIFF_FAX = AttachmentRule(kind="fax", extensions=(".tif", ".tiff"), content_types=("image/tiff",))
_PDF_FAX = AttachmentRule(
    kind="fax", extensions=(".pdf",), content_types=("application/pdf",), requires=r"\b(?:tele)?fax"
)

_GENERIC_KIND_PATTERNS = KindPatterns(missed_call=_MISSED_WORDING, voicemail=_VOICEMAIL_WORDING, fax=_FAX_WORDING)
_GENERIC_BODY_PATTERNS = BodyPatterns(
    caller=(_CALLER_LABELS,),
    caller_name=(_NAME_LABELS,),
    called_number=(_CALLED_LABELS,),
    time=(_TIME_LABELS,),
    duration=(_DURATION_LABELS,),
)

PLACETEL_PROFILE = ParserProfile(
    name="placetel",
    sender_domains=("placetel.de",),
    subject_patterns=_GENERIC_KIND_PATTERNS,
    body_patterns=BodyPatterns(
        # Placetel quotes numbers: "Fax von '<from>' auf '<to>'"; the label forms are a fallback.
        caller=(rf"\b(?:von|from){_QUOTED}", _CALLER_LABELS),
        caller_name=(_NAME_LABELS,),
        called_number=(rf"\b(?:auf|an|to|for){_QUOTED}", _CALLED_LABELS),
        time=(_TIME_LABELS,),
        duration=(_DURATION_LABELS,),
    ),
    attachment_rules=(_VOICEMAIL_ATTACHMENT, _TIFF_FAX, _PDF_FAX),
    withheld_keywords=WITHHELD_KEYWORDS,
    notice_patterns=_NOTICE_WORDING,
)

WAV_PBX_PROFILE = ParserProfile(
    name="wav-pbx",
    # German cloud PBXs whose voicemail mails carry a .wav and a "Rufnummer/Name/Datum/Uhrzeit/Dauer" list.
    sender_domains=("nfon.com", "nfon.net", "cloudpbx.telekom.de", "netcologne.de", "webex.com"),
    subject_patterns=_GENERIC_KIND_PATTERNS,
    body_patterns=_GENERIC_BODY_PATTERNS,
    attachment_rules=(_VOICEMAIL_ATTACHMENT, _TIFF_FAX, _PDF_FAX),
    withheld_keywords=WITHHELD_KEYWORDS,
    notice_patterns=_NOTICE_WORDING,
)

BUILTIN_PROFILES: tuple[ParserProfile, ...] = (PLACETEL_PROFILE, WAV_PBX_PROFILE)
