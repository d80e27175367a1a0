"""Who is calling: the name a card shows for a number, from the sources the tenant already has.

Pure matching over an in-memory index of the local caller cache (no I/O here): the first configured source that knows
the number decides. A number that source gives to several different people is ambiguous, and then the card shows no
name at all rather than a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class CallerSource(StrEnum):
    CONTACTS = "contacts"
    """The Outlook contacts of the line's shared mailbox."""
    DIRECTORY = "directory"
    """The organisation's users (internal callers)."""
    PBX = "pbx"
    """The name the PBX mail carries."""


DIRECTORY_SOURCE_KEY = "directory"


def contacts_source_key(mailbox: str) -> str:
    """The cache's source key for one mailbox's contacts."""
    return f"contacts:{mailbox.lower()}"


@dataclass(frozen=True, slots=True, order=True)
class CallerEntry:
    """One person under one number, as cached: a contact or a directory user."""

    source: str
    """:func:`contacts_source_key` or :data:`DIRECTORY_SOURCE_KEY`."""
    entry_id: str
    number: str
    """E.164."""
    display_name: str
    detail: str | None = None
    """Company (contacts) or department (directory)."""


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """What a card says about the caller besides the number."""

    name: str | None
    detail: str | None = None
    source: CallerSource | None = None

    @property
    def known(self) -> bool:
        return self.name is not None


UNKNOWN_CALLER = CallerIdentity(None)
"""Looked up, and nobody (or more than one person) has the number."""


class CallerIndex:
    """Number → cached entries, built from the caller cache; lookups are dictionary reads."""

    def __init__(self, entries: Iterable[CallerEntry] = ()) -> None:
        self._by_number: defaultdict[str, list[CallerEntry]] = defaultdict(list)
        for entry in entries:
            self._by_number[entry.number].append(entry)

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._by_number.values())

    def numbers_changed(self, other: CallerIndex) -> set[str]:
        """The numbers whose entries differ between this index and ``other``."""
        numbers = set(self._by_number) | set(other._by_number)
        return {n for n in numbers if sorted(self._by_number.get(n, ())) != sorted(other._by_number.get(n, ()))}

    def matches(self, number: str, source_key: str) -> list[CallerEntry]:
        return [entry for entry in self._by_number.get(number, ()) if entry.source == source_key]


def identify(
    index: CallerIndex,
    sources: Sequence[CallerSource],
    *,
    number: str | None,
    mailbox: str,
    pbx_name: str | None,
) -> CallerIdentity:
    """The caller's identity from the first of ``sources`` that knows ``number`` (E.164).

    Several entries of one source with the same name (a contact saved twice) are one person; different names are
    ambiguous and end the search with no name.
    """
    for source in sources:
        if source is CallerSource.PBX:
            if pbx_name and pbx_name.strip():
                return CallerIdentity(pbx_name.strip(), None, CallerSource.PBX)
            continue
        if number is None:
            continue
        key = contacts_source_key(mailbox) if source is CallerSource.CONTACTS else DIRECTORY_SOURCE_KEY
        found = index.matches(number, key)
        if not found:
            continue
        names = {entry.display_name.strip().casefold() for entry in found}
        if len(names) > 1:
            return UNKNOWN_CALLER
        details = {entry.detail for entry in found if entry.detail}
        detail = details.pop() if len(details) == 1 else None
        return CallerIdentity(found[0].display_name.strip(), detail, source)
    return UNKNOWN_CALLER
