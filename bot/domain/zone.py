"""The pool's home time zone: PBX mails write Berlin wall-clock times, cards and reports show them."""

from __future__ import annotations

from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
