"""Mail that is no PBX notice however much it quotes one: auto-replies, bounces, replies, forwards, team mail.

Decided per class (docs/parser.md, "Classes of mail"):

* **ignored** (no item at all): automatic replies (out-of-office and other auto-responders) and bounces, delivery
  and read reports. Nobody has to act on them, and they typically quote the mail they answer — call notices
  included.
* **unrecognised item** (shown with sender and subject, never a call, never joins a case): people's mail —
  replies and forwards (``AW:``/``RE:``/``WG:``/``FW:``, ``In-Reply-To``/``References``), notes from members of
  the team (the mailbox's own domain) — and automated mail of any other sender (newsletters, ``Precedence: bulk``).

Every check is a bounded, linear look at a few headers and the subject.
"""

from __future__ import annotations

import re

from bot.core.values import MailHeaders
from bot.placetel.trust import header_values

# Outlook / Exchange message classes (PidTagMessageClass) of automatic replies and reports.
_AUTO_REPLY_CLASSES = ("ipm.note.rules.ooftemplate.microsoft", "ipm.note.rules.replytemplate.microsoft")
_REPORT_CLASS_PREFIX = "report."

_AUTO_REPLY_SUBJECT = re.compile(
    r"^[ \t]*(?:automatische[ \t]+antwort|automatic[ \t]+reply|auto(?:matic)?[ \t-]*repl(?:y|ied)|autoreply|"
    r"abwesenheitsnotiz|abwesenheit|abwesend|out[ \t]+of[ \t]+(?:the[ \t]+)?office|ooo|"
    r"r[ée]ponse[ \t]+automatique|risposta[ \t]+automatica|respuesta[ \t]+autom[áa]tica)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^[ \t]*(?:unzustellbar|nicht[ \t]+zustellbar|undeliverable|undelivered[ \t]+mail|"
    r"delivery[ \t]+status[ \t]+notification|delivery[ \t]+(?:has[ \t]+)?failed|mail[ \t]+delivery[ \t]+failed|"
    r"returned[ \t]+mail|failure[ \t]+notice|zustellung[ \t]+fehlgeschlagen|"
    r"(?:gelesen|read|nicht[ \t]+gelesen|not[ \t]+read)[ \t]*:)",
    re.IGNORECASE,
)
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "microsoftexchange329e71ec88ae4615bbc36ab6ce41109e")
_CONVERSATION_PREFIX = re.compile(
    r"^[ \t]*(?:\[[^\]\n]{0,40}\][ \t]*)?(?:AW|RE|WG|FW|FWD|WTR|TR|Antw|Antwort|SV|VS|Doorst)"
    r"[ \t]*(?:\[\d{1,3}\])?[ \t]*:",
    re.IGNORECASE,
)
_SUBJECT_HEAD = 200


def _first(headers: MailHeaders, name: str) -> str:
    values = header_values(headers, name)
    return values[0].strip().lower() if values else ""


def ignore_reason(headers: MailHeaders, subject: str, sender: str, message_class: str) -> str | None:
    """Why the mail is an automatic reply or a report and so no item at all, or None."""
    head = subject[:_SUBJECT_HEAD]
    klass = message_class.strip().lower()
    if klass.startswith(_REPORT_CLASS_PREFIX):
        return "delivery or read report (message class)"
    if klass in _AUTO_REPLY_CLASSES:
        return "automatic reply (message class)"
    auto_submitted = _first(headers, "Auto-Submitted")
    if auto_submitted.startswith("auto-replied"):
        return "automatic reply (Auto-Submitted: auto-replied)"
    if _first(headers, "Precedence") in {"auto_reply", "auto-reply"}:
        return "automatic reply (Precedence: auto_reply)"
    if any(header_values(headers, name) for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply")):
        return "automatic reply (X-Autoreply)"
    if _AUTO_REPLY_SUBJECT.match(head):
        return "automatic reply (subject)"
    content_type = _first(headers, "Content-Type")
    if header_values(headers, "X-Failed-Recipients") or "report-type=delivery-status" in content_type:
        return "bounce (delivery status report)"
    local_part = sender.rsplit("@", 1)[0].strip().lower()
    if local_part in _BOUNCE_SENDERS or _BOUNCE_SUBJECT.match(head):
        return "bounce or read report"
    return None


def conversation_reason(headers: MailHeaders, subject: str, sender: str, mailbox: str) -> str | None:
    """Why the mail is people's mail (a reply, a forward, a team member's note), or None."""
    if _CONVERSATION_PREFIX.match(subject[:_SUBJECT_HEAD]):
        return "reply or forward (subject prefix)"
    if header_values(headers, "In-Reply-To") or header_values(headers, "References"):
        return "reply or forward (In-Reply-To/References)"
    sender_domain = sender.rsplit("@", 1)[-1].strip().lower() if "@" in sender else ""
    mailbox_domain = mailbox.rsplit("@", 1)[-1].strip().lower() if "@" in mailbox else ""
    if sender_domain and sender_domain == mailbox_domain:
        return "mail from a member of the team"
    return None


def automated_reason(headers: MailHeaders) -> str | None:
    """Why the mail looks machine-made (bulk, list, auto-generated), or None — for the notes only."""
    precedence = _first(headers, "Precedence")
    if precedence in {"bulk", "list", "junk"}:
        return f"automated mail (Precedence: {precedence})"
    if header_values(headers, "List-Id") or header_values(headers, "List-Unsubscribe"):
        return "automated mail (mailing list)"
    if _first(headers, "Auto-Submitted") not in {"", "no"}:
        return "automated mail (Auto-Submitted)"
    if header_values(headers, "X-Auto-Response-Suppress"):
        return "automated mail (X-Auto-Response-Suppress)"
    return None
