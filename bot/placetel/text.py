"""Turning a mail's subject and body into plain text the rules can read."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from html import unescape

_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:WG|AW|FW|FWD|RE|WTR|TR|Fwd|Antw)\s*:\s*)+", re.IGNORECASE)
_HTML_HINT = re.compile(
    r"<\s*(?:html|body|head|div|p|br|table|tr|td|span|a|script|style|font|b|strong)\b", re.IGNORECASE
)
# Every pattern here must stay linear on hostile text (issue: a quadratic e-mail pattern froze the bot): each
# starts at a character its own repeated part cannot contain, or is anchored, so no start position is rescanned.
_MARKDOWN_LINK = re.compile(r"!?\[([^\[\]\n]{0,200})\]\([ \t]*([^()\s]{0,500})(?:[ \t][^()\n]{0,200})?\)")
_URL = re.compile(r"\b(?:https?|ftp|mailto|cid|data):[^\s<>\"')\]]+|\bwww\.[^\s<>\"')\]]+", re.IGNORECASE)
_EMAIL = re.compile(r"(?<![\w.+\-])[\w.+\-]{1,64}@[\w\-]{1,63}(?:\.[\w\-]{1,63}){1,8}")
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


_TAG_START = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:\-]{0,30})")
_HREF = re.compile(r"\bhref[ \t\r\n]*=[ \t\r\n]*", re.IGNORECASE)
_ATTRIBUTE_VALUE = re.compile(r""""([^"]{0,500})"|'([^']{0,500})'|([^\s>"']{1,500})""")
_ATTRIBUTES_READ = 1_000
_MAX_MARKUP = 5_000
"""Tags and comments read per body: a PBX notice has a few hundred; the rest of a bigger body is not read."""
_HIDDEN_END = {tag: re.compile(rf"</{tag}\b", re.IGNORECASE) for tag in _HIDDEN_TAGS}


class _TextExtractor:
    """Visible text of HTML in one forward scan; table cells stay on one line, so ``Anrufer: | 030…`` reads as one row.

    Not :class:`html.parser.HTMLParser`: it rescans unterminated comments and tags (quadratic; a body of
    ``<!--`` repeated took minutes). Here every search starts where the last one ended, and an unterminated
    comment, tag or hidden element ends the visible text. Stops once ``limit`` characters are collected or
    :data:`_MAX_MARKUP` tags were read.
    """

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self._tel_targets: list[str | None] = []
        self._digits_at_anchor: list[int] = []
        self._digits_seen = 0
        """Digits in the visible text so far: whether a link's text shows a number costs O(1), even nested."""

    def feed(self, html: str) -> None:
        pos, end, markup = 0, len(html), 0
        while pos < end and self.size < self.limit and markup < _MAX_MARKUP:
            markup += 1
            lt = html.find("<", pos)
            if lt < 0:
                self._data(html[pos:])
                return
            if lt > pos:
                self._data(html[pos:lt])
            if html.startswith("<!--", lt):
                close = html.find("-->", lt + 4)
                if close < 0:
                    return
                pos = close + 3
                continue
            if html.startswith(("<!", "<?"), lt):
                close = html.find(">", lt + 2)
                if close < 0:
                    return
                pos = close + 1
                continue
            tag = _TAG_START.match(html, lt)
            if tag is None:
                self._data("<")
                pos = lt + 1
                continue
            close = html.find(">", tag.end())
            if close < 0:
                return
            pos = close + 1
            name = tag.group(2).lower()
            if tag.group(1):
                self._end_tag(name)
            elif name in _HIDDEN_TAGS:
                hidden_end = _HIDDEN_END[name].search(html, pos)
                if hidden_end is None:
                    return
                close = html.find(">", hidden_end.end())
                if close < 0:
                    return
                pos = close + 1
            else:
                self._start_tag(name, html[tag.end() : close])

    def _start_tag(self, name: str, attributes: str) -> None:
        if name in _BLOCK_TAGS:
            self._add("\n")
        elif name in _CELL_TAGS:
            self._add("\t")
        elif name == "a" and not attributes.rstrip().endswith("/"):
            href = _HREF.search(attributes, 0, _ATTRIBUTES_READ)
            value = _ATTRIBUTE_VALUE.match(attributes, href.end()) if href else None
            target = next((group for group in value.groups() if group is not None), "") if value else ""
            tel = _TEL_LINK.match(unescape(target))
            self._tel_targets.append(tel.group(1).strip() if tel else None)
            self._digits_at_anchor.append(self._digits_seen)

    def _end_tag(self, name: str) -> None:
        if name in _BLOCK_TAGS:
            self._add("\n")
        elif name == "a" and self._tel_targets:
            target, digits_before = self._tel_targets.pop(), self._digits_at_anchor.pop()
            if target and self._digits_seen == digits_before:
                self._add(f" ({target})")

    def _data(self, raw: str) -> None:
        self._add(unescape(raw[: self.limit - self.size + 16]))

    def _add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self._tel_targets:  # only the digits inside an open link are ever compared
            self._digits_seen += sum(ch.isdigit() for ch in text)


def html_to_text(html: str, limit: int = 1_000_000) -> str:
    extractor = _TextExtractor(limit)
    extractor.feed(html)
    return "".join(extractor.parts)[:limit]


def _markdown_link_text(match: re.Match[str]) -> str:
    label, target = match.group(1), match.group(2)
    tel = _TEL_LINK.match(target)
    if tel and not re.search(r"\d", label):
        return f"{label} ({tel.group(1).strip()})"
    return label


def body_to_text(body: str, body_type: str, limit: int = 1_000_000) -> str:
    """Visible text of a body: HTML stripped (scripts and styles dropped), markdown links reduced to their
    labels, whitespace tidied. ``tel:`` link targets are kept when the link text shows no number.

    About ``limit`` characters of visible text are read (a plain body: twice that, before whitespace is tidied).
    """
    if body_type.lower() == "html" or looks_like_html(body[: 2 * limit]):
        text = html_to_text(body, limit)
    else:
        text = body[: 2 * limit]
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
