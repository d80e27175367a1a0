"""Phone-number recognition and normalisation to E.164 (via ``phonenumbers``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import phonenumbers

_TEL_PREFIX = re.compile(r"^\s*(?:tel|callto|sip)\s*:\s*", re.IGNORECASE)
_ALLOWED = re.compile(r"^[+\d\s()./\-\u00a0\u2010-\u2015]+$")
_TRUNK_IN_INTERNATIONAL = re.compile(r"^(\s*(?:\+|00)[\s\-]*\d{1,3}[\s\-./]*)\(\s*0\s*\)")
_INTERNATIONAL_00 = re.compile(r"^00(?=[1-9])")
_DOTTED_DATE = re.compile(r"\d{1,2}\.\d{1,2}\.(?:\d{2}|\d{4})?")

# A run of digits with the separators people put into phone numbers; newlines end a token.
_CANDIDATE = re.compile(r"(?<![\w+@=#])\+?\(?\d[\d \t\u00a0./()\-]{4,32}\d(?![\w@])")
_TOKEN_SPLIT = re.compile(r"\t|\u00a0{2,}| {2,}| / ")
_MIN_DIGITS = 6
_MAX_DIGITS = 17


@dataclass(frozen=True, slots=True)
class NumberCandidate:
    """A phone number found in text: the raw token, its E.164 form and its position."""

    raw: str
    e164: str
    start: int
    end: int


def normalise_number(raw: str, region: str = "DE", *, strict: bool = False) -> str | None:
    """Return ``raw`` as an E.164 string, or None when it is not a phone number.

    National (``030 1234567``, ``0 30 / 12 34 56-7``) and international (``+49 (0)30 …``, ``0049 …``,
    ``0044 …``) spellings are accepted; a lone ``(0)`` after the country code is dropped. ``strict``
    demands a number valid under the numbering plan instead of one of merely possible length.
    Never raises.
    """
    try:
        text = _TEL_PREFIX.sub("", raw).strip().strip("'\"„“”‘’«»<>[]")
        if not text or not _ALLOWED.match(text) or _DOTTED_DATE.fullmatch(text):
            return None
        text = _TRUNK_IN_INTERNATIONAL.sub(r"\1", text)
        digits = re.sub(r"\D", "", text)
        if not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
            return None
        compact = ("+" if text.lstrip().startswith("+") else "") + digits
        compact = _INTERNATIONAL_00.sub("+", compact)
        parsed = phonenumbers.parse(compact, region)
        ok = phonenumbers.is_valid_number(parsed) if strict else phonenumbers.is_possible_number(parsed)
        if not ok:
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except Exception:  # phonenumbers raises NumberParseException and, on odd input, others
        return None


def normalise_numbers(raws: Iterable[str], region: str = "DE") -> frozenset[str]:
    """Normalise a collection (e.g. a pool line's numbers), dropping what is not a number."""
    return frozenset(n for n in (normalise_number(r, region) for r in raws) if n is not None)


def is_valid_number(e164: str) -> bool:
    """Whether ``phonenumbers`` deems the (E.164) number valid under its numbering plan, not merely possible."""
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(e164, None))
    except Exception:  # NumberParseException, and others on odd input
        return False


def find_numbers(text: str, region: str = "DE", *, strict: bool = True, limit: int = 200) -> list[NumberCandidate]:
    """Phone numbers in ``text`` in order of appearance, one entry per occurrence.

    At most ``limit`` number-like tokens are looked at, so a text full of digits costs a bounded amount of work.
    """
    return list(_iter_numbers(text, region, strict, limit))


def _iter_numbers(text: str, region: str, strict: bool, limit: int) -> Iterator[NumberCandidate]:
    for count, match in enumerate(_CANDIDATE.finditer(text)):
        if count >= limit:
            return
        yield from _split_token(match.group(0), match.start(), region, strict)


def _split_token(token: str, offset: int, region: str, strict: bool) -> Iterator[NumberCandidate]:
    """Normalise a token; a token that is too long may be two numbers side by side (table cells)."""
    while token.startswith("(") and token.count("(") > token.count(")"):
        token, offset = token[1:], offset + 1
    e164 = normalise_number(token, region, strict=strict)
    if e164 is not None:
        yield NumberCandidate(token.strip(), e164, offset, offset + len(token))
        return
    position = 0
    for part in _TOKEN_SPLIT.split(token):
        start = token.index(part, position)
        position = start + len(part)
        if part != token and (e164 := normalise_number(part, region, strict=strict)) is not None:
            yield NumberCandidate(part.strip(), e164, offset + start, offset + position)
