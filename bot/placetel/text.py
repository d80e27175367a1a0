"""Turning a mail's subject and body into plain text the rules can read."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from html.parser import HTMLParser

_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:WG|AW|FW|FWD|RE|WTR|TR|Fwd|Antw)\s*:\s*)+", re.IGNORECASE)
_HTML_HINT = re.compile(
    r"<\s*(?:html|body|head|div|p|br|table|tr|td|span|a|script|style|font|b|strong)\b", re.IGNORECASE
)
_MARKDOWN_LINK = re.compile(r"!?\[([^\]\n]{0,200})\]\(\s*([^)\s]{0,500})[^)\n]{0,200}\)")
_URL = re.compile(r"\b(?:https?|ftp|mailto|cid|data):[^\s<>\"')\]]+|\bwww\.[^\s<>\"')\]]+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_TEL_LINK = re.compile(r"^\s*(?:tel|callto):\s*([+\d\s()./\-]{3,40})", re.IGNORECASE)
_SPACES = re.compile(r"[ \u00a0\u2000-\u200b\u202f\u3000]+")
_TABS = re.compile(r" *\t[\t ]*")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")

_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "br",
        "div",
        "dd",
        "dl",
        "dt",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
    }
)
_CELL_TAGS = frozenset({"td", "th"})
_HIDDEN_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript", "object", "iframe"})


def decode_subject(subject: str) -> str:
    """Decode RFC 2047 encoded words (``=?utf-8?Q?...?=``); anything undecodable stays as it was."""
    if not _ENCODED_WORD.search(subject):
        return subject
    try:
        return str(make_header(decode_header(subject)))
    except Exception:  # unknown charsets and broken encodings: keep the raw subject
        return subject


def strip_reply_prefixes(subject: str) -> str:
    """``WG: Fwd: Verpasster Anruf`` → ``Verpasster Anruf``."""
    return _REPLY_PREFIX.sub("", subject)


def looks_like_html(body: str) -> bool:
    return _HTML_HINT.search(body) is not None


class _TextExtractor(HTMLParser):
    """Collects visible text; table cells stay on one line, so ``Anrufer: | 030…`` reads as one row."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0
        self._tel_targets: list[str | None] = []
        self._anchor_text_start: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append("\t")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            tel = _TEL_LINK.match(href)
            self._tel_targets.append(tel.group(1).strip() if tel else None)
            self._anchor_text_start.append(len(self.parts))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag == "a" and self._tel_targets:
            target = self._tel_targets.pop()
            anchor_text = "".join(self.parts[self._anchor_text_start.pop() :])
            if target and not re.search(r"\d", anchor_text):
                self.parts.append(f" ({target})")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return "".join(extractor.parts)


def _markdown_link_text(match: re.Match[str]) -> str:
    label, target = match.group(1), match.group(2)
    tel = _TEL_LINK.match(target)
    if tel and not re.search(r"\d", label):
        return f"{label} ({tel.group(1).strip()})"
    return label


def body_to_text(body: str, body_type: str) -> str:
    """Visible text of a body: HTML stripped (scripts and styles dropped), markdown links reduced to their
    labels, whitespace tidied. ``tel:`` link targets are kept when the link text shows no number."""
    text = html_to_text(body) if body_type.lower() == "html" or looks_like_html(body) else body
    text = _MARKDOWN_LINK.sub(_markdown_link_text, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (_TABS.sub("\t", _SPACES.sub(" ", line)).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def blank_out(text: str, pattern: re.Pattern[str]) -> str:
    """Replace every match with spaces of equal length, so positions in ``text`` stay valid."""
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def without_addresses(text: str) -> str:
    """Text with URLs and e-mail addresses blanked out: their digits are never phone numbers."""
    return blank_out(blank_out(text, _URL), _EMAIL)
