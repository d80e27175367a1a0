"""Logging that never shows a full phone number or a secret."""

from __future__ import annotations

import logging
import re

_NUMBER = re.compile(r"(?<![\w/])(?:\+|0)\d[\d ()/-]{5,}\d(?!\w)")
_BEARER = re.compile(r"(?i)(bearer\s+|client_secret=|clientstate\W+)[^\s,&\"']+")


def mask_number(number: str | None) -> str:
    """``+4930123456789`` → ``+49…789``: enough to tell calls apart in logs, not enough to call back."""
    if not number:
        return "-"
    digits = re.sub(r"[^\d+]", "", number)
    if len(digits) <= 5:
        return "…"
    return f"{digits[:3]}…{digits[-3:]}"


def redact(text: str) -> str:
    """Mask phone numbers and bearer tokens in free text (exception messages, URLs)."""
    text = _BEARER.sub(lambda m: m.group(1) + "***", text)
    return _NUMBER.sub(lambda m: mask_number(m.group(0)), text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("azure", "msrest", "httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
