"""Formatting for people: phone numbers, times in Europe/Berlin, and untrusted text made inert for card markdown."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, tzinfo
from functools import lru_cache
from urllib.parse import quote, urlsplit

import phonenumbers

from bot.domain.cases import Case
from bot.domain.events import WITHHELD, EventKind
from cards.i18n import BERLIN, Lang, clock, text

HOME_REGION = "DE"
"""Numbers of this region are shown in national format (030 …), all others internationally (+43 …)."""

OUTLOOK_HOSTS = frozenset({"outlook.office.com", "outlook.office365.com", "outlook.live.com"})
"""The only hosts a mail's web link may point to; any other link from a mail is dropped."""

GERMAN_MOBILE = re.compile(r"^1[567]\d{7,9}$")
"""German mobile numbers (015x, 016x, 017x): written with the four-digit prefix apart, "0151 23456789" (DIN 5008),
where libphonenumber would split them "01512 3456789"."""

NAME_LIMIT = 80
URL_LIMIT = 2048
SUBJECT_LIMIT = 200


# --- phone numbers ---------------------------------------------------------------------------------------------


def _parse(number: str) -> phonenumbers.PhoneNumber | None:
    try:
        parsed = phonenumbers.parse(number, HOME_REGION)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_possible_number(parsed) else None


PHONE_CACHE_SIZE = 4096
"""Numbers whose formatting is remembered: a card shows its caller on every line of its history, and a burst of
clicks renders the same card for every clicker (libphonenumber's parse is the costliest part of a card)."""


@lru_cache(maxsize=PHONE_CACHE_SIZE)
def format_phone(number: str) -> str:
    """``+4930123456`` → ``030 123456``, ``+4915123456789`` → ``0151 23456789``; foreign numbers in international
    format; unparsable ones inert as given. Numbers are stored as E.164; this is only how people read them."""
    parsed = _parse(number)
    if parsed is None:
        return inert(number, NAME_LIMIT)
    home = phonenumbers.region_code_for_number(parsed) == HOME_REGION
    if home and GERMAN_MOBILE.match(national := phonenumbers.national_significant_number(parsed)):
        return f"0{national[:3]} {national[3:]}"
    style = phonenumbers.PhoneNumberFormat.NATIONAL if home else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, style)


@lru_cache(maxsize=PHONE_CACHE_SIZE)
def call_links(number: str) -> tuple[str, str] | None:
    """The ``tel:`` URI and the Teams PSTN deep link for a dialable number, or None."""
    parsed = _parse(number)
    if parsed is None:
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return f"tel:{e164}", f"https://teams.microsoft.com/l/call/0/0?users=4:{e164}"


def caller_label(case: Case, lang: Lang) -> str:
    """Who called, as a card shows it (already inert): the formatted number, or why there is none."""
    first = case.first_event
    if first is not None and first.kind is EventKind.UNRECOGNISED:
        return text(lang, "caller_unrecognised")
    if case.caller == WITHHELD:
        return text(lang, "caller_withheld")
    if case.caller is None:
        return text(lang, "caller_none")
    as_written = next((e.caller_as_written for e in reversed(case.events) if e.caller_as_written), None)
    if as_written is not None:  # phonenumbers deems it invalid: its formatting would mangle it (0152 … → 152…)
        return inert(as_written, NAME_LIMIT)
    return format_phone(case.caller)


# --- times -----------------------------------------------------------------------------------------------------


def format_absolute(moment: datetime, lang: Lang, tz: tzinfo = BERLIN) -> str:
    """``27.11.2026, 10:32`` (German) or ``2026-11-27 10:32`` (English), in the team's time zone."""
    local = moment.astimezone(tz)
    return text(lang, "date_time", day=local.day, month=local.month, year=local.year, time=clock(local, tz))


def format_date(moment: datetime, lang: Lang, tz: tzinfo = BERLIN) -> str:
    local = moment.astimezone(tz)
    return text(lang, "date", day=local.day, month=local.month, year=local.year)


def format_relative(moment: datetime, now: datetime, lang: Lang) -> str:
    """``vor 5 Min.`` / ``5 min ago``; times in the future (clock skew) count as just now."""
    minutes = int((now - moment).total_seconds() // 60)
    if minutes < 1:
        return text(lang, "just_now")
    if minutes < 60:
        return text(lang, "minutes_ago", n=minutes)
    if minutes < 24 * 60:
        return text(lang, "hours_ago", n=minutes // 60)
    days = minutes // (24 * 60)
    return text(lang, "day_ago") if days == 1 else text(lang, "days_ago", n=days)


def format_duration(seconds: int, lang: Lang) -> str:
    return text(lang, "minutes_seconds", m=seconds // 60, s=seconds % 60)


# --- untrusted text --------------------------------------------------------------------------------------------

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#<>~|!&])")
_LINE_START_MARKUP = re.compile(r"^(\s*)([-+=]|\d+[.)])")
ZERO_WIDTH_SPACE = "\u200b"
LOOKALIKE_AT = "\uff20"
"""FULLWIDTH COMMERCIAL AT: reads as ``@`` but no linkifier takes it for one."""
LOOKALIKE_DOT = "\u2024"
"""ONE DOT LEADER: reads as ``.`` but is punctuation, so it ends a host name for every linkifier."""
_SCHEME_SLASHES = re.compile(r":/(?=/)")
_DOMAIN_DOT = re.compile(r"(?<=[\w-])\.(?=[^\W\d_])")
_WHITESPACE = re.compile(r"\s+")


def _printable(ch: str) -> str:
    """Format characters (zero-width, bidi overrides) vanish; controls and separators become spaces."""
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""
    return " " if category[0] in "CZ" else ch


def plain(value: str, limit: int) -> str:
    """Untrusted text as one line for places without markdown (button titles, summaries).

    Control and format characters go, whitespace collapses, the text is capped at ``limit`` characters, and URLs
    and e-mail addresses are defused so no client auto-links them: a zero-width space between the slashes of
    ``://``, and look-alike characters for ``@`` and the dots between letters. (A zero-width space alone is not
    enough: linkify-it, which the adaptivecards renderers use, takes it as part of an internationalised host name.)
    """
    # isprintable() is False for exactly the characters _printable changes (every C and Z category but " ").
    printable = value if value.isprintable() else "".join(_printable(ch) for ch in value)
    line = _WHITESPACE.sub(" ", printable).strip()
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    line = _SCHEME_SLASHES.sub(":/" + ZERO_WIDTH_SPACE, line).replace("@", LOOKALIKE_AT)
    return _DOMAIN_DOT.sub(LOOKALIKE_DOT, line)


def inert(value: str, limit: int) -> str:
    """Untrusted text (mail subject, sender, names) made safe for a markdown TextBlock: :func:`plain`, with every
    markdown character backslash-escaped."""
    line = _MARKDOWN_SPECIALS.sub(r"\\\1", plain(value, limit))
    return _LINE_START_MARKUP.sub(lambda m: m.group(1) + "\\" + m.group(2), line)


def safe_link(url: str | None, hosts: frozenset[str] | None = None) -> str | None:
    """``url`` ready for a markdown link target if it is https (to one of ``hosts`` when given), else None.

    Loopback http is accepted without ``hosts`` so the local sandbox can serve voicemails.
    """
    # Whitespace and C-category characters are all not isprintable(), except " ".
    if not url or len(url) > URL_LIMIT or not url.isprintable() or " " in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.username is not None or parts.password is not None or not host:
        return None
    if hosts is not None:
        allowed = parts.scheme == "https" and host in hosts and port is None
    else:
        allowed = parts.scheme == "https" or (parts.scheme == "http" and host in {"localhost", "127.0.0.1"})
    return quote(url, safe="/:?&=%#+@,;~!$'*-._") if allowed else None


def markdown_link(label: str, url: str) -> str:
    """A markdown link from a trusted label and a URL that passed :func:`safe_link`."""
    return f"[{label}]({url})"
