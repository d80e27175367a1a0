"""Call times and voicemail durations as PBX mails spell them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from bot.domain.zone import BERLIN
from bot.placetel.text import blank_out

_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})(?:[T ](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?"
    r"(?:\.\d{1,9})?[ ]?(?P<tz>Z|[+-]\d{2}:?\d{2})?)?"
)
_DOTTED = re.compile(r"(?<![\d.])(?P<d>\d{1,2})\.(?P<mo>\d{1,2})\.(?P<y>\d{4}|\d{2})?(?![\d])")
_SLASHED = re.compile(r"(?<![\d/])(?P<d>\d{1,2})/(?P<mo>\d{1,2})/(?P<y>\d{4})(?![\d/])")
_CLOCK = re.compile(
    r"(?<![\d:.])(?P<h>\d{1,2})[:.](?P<mi>\d{2})(?:[:.](?P<s>\d{2}))?(?![\d])"
    r"(?:\s*(?P<ampm>[ap]\.?m\.?)(?!\w))?(?:\s*Uhr)?",
    re.IGNORECASE,
)
_CLOCK_AFTER_DATE = re.compile(r"^[ \t,]*(?:um|at|,)?[ \t]*(?=\d)", re.IGNORECASE)

_HMS = re.compile(r"(?<![\d:])(?:(?P<h>\d{1,2}):)?(?P<m>\d{1,3}):(?P<s>\d{2})(?![\d:])")
_WORDS = re.compile(
    r"(?:(?P<h>\d{1,2})\s*(?:h|std\.?|stunden?|hours?|hrs?)\b\.?\s*)?"
    r"(?:(?P<m>\d{1,3})\s*(?:m|min\.?|minuten?|minutes?|mins?)(?![a-z])\.?\s*)?"
    r"(?:(?P<s>\d{1,5})\s*(?:s|sek\.?|sekunden?|sec\.?|seconds?|secs?)(?![a-z])\.?)?",
    re.IGNORECASE,
)
_BARE_SECONDS = re.compile(r"^\s*(\d{1,5})\s*$")

_MAX_DURATION = 24 * 3600


def _year(raw: str | None, default_year: int) -> int:
    if not raw:
        return default_year
    year = int(raw)
    return year + 2000 if year < 100 else year


def _offset(raw: str | None) -> tzinfo | None:
    if raw is None:
        return None
    if raw == "Z":
        return UTC
    sign = -1 if raw[0] == "-" else 1
    digits = raw[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def parse_clock(text: str) -> tuple[int, int, int] | None:
    """``10:32``, ``10.32 Uhr``, ``3:05 pm`` → (hour, minute, second)."""
    match = _CLOCK.search(text)
    if match is None:
        return None
    hour, minute, second = int(match["h"]), int(match["mi"]), int(match["s"] or 0)
    ampm = (match["ampm"] or "").lower().replace(".", "")
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour, minute, second


def parse_date(text: str, default_year: int) -> tuple[datetime, bool] | None:
    """Find a date (and a clock time right after it) in ``text``.

    Returns the datetime (aware only when the text names an offset) and whether a clock time was found.
    """
    iso = _ISO.search(text)
    if iso is not None:
        try:
            has_time = iso["h"] is not None
            value = datetime(
                int(iso["y"]),
                int(iso["mo"]),
                int(iso["d"]),
                int(iso["h"] or 0),
                int(iso["mi"] or 0),
                int(iso["s"] or 0),
                tzinfo=_offset(iso["tz"]),
            )
            return value, has_time
        except ValueError:
            return None
    for pattern in (_DOTTED, _SLASHED):
        found = pattern.search(text)
        if found is None:
            continue
        try:
            day = datetime(_year(found["y"], default_year), int(found["mo"]), int(found["d"]))
        except ValueError:
            return None
        rest = text[found.end() :]
        lead_in = _CLOCK_AFTER_DATE.match(rest)
        clock = parse_clock(rest[lead_in.end() :][:24]) if lead_in else None
        if clock is None:
            return day, False
        return day.replace(hour=clock[0], minute=clock[1], second=clock[2]), True
    return None


def blank_dates_and_times(text: str) -> str:
    """Blank out whatever reads as a date or clock time: ``27.11.2026 10:32`` is no phone number."""
    for pattern in (_ISO, _DOTTED, _SLASHED, _CLOCK, _HMS):
        text = blank_out(text, pattern)
    return text


def as_aware(value: datetime, zone: tzinfo = BERLIN) -> datetime:
    """Naive wall-clock times in PBX mails are German local time."""
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def parse_duration(text: str) -> int | None:
    """Seconds from ``0:42``, ``00:01:05``, ``42 Sek.``, ``1 Min. 5 Sek.``, ``1m 5s`` or a bare ``42``."""
    bare = _BARE_SECONDS.match(text)
    if bare is not None:
        return _bounded(int(bare.group(1)))
    hms = _HMS.search(text)
    if hms is not None:
        return _bounded(int(hms["h"] or 0) * 3600 + int(hms["m"]) * 60 + int(hms["s"]))
    for words in _WORDS.finditer(text):
        if words.group(0).strip():
            return _bounded(int(words["h"] or 0) * 3600 + int(words["m"] or 0) * 60 + int(words["s"] or 0))
    return None


def _bounded(seconds: int) -> int | None:
    return seconds if 0 <= seconds <= _MAX_DURATION else None
