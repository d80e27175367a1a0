"""Is a mail really from the PBX it names? Sender authentication as the receiving Exchange Online recorded it.

Anyone can write ``From: no-reply@placetel.de``. Exchange Online Protection (EOP) checks SPF, DKIM and DMARC of
every mail it receives from the internet and stamps the verdict on top of the mail as ``Authentication-Results``,
e.g. ``spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=placetel.de; dkim=pass (signature was verified)
header.d=placetel.de;dmarc=pass action=none header.from=placetel.de;compauth=pass reason=100``.

The rule (docs/parser.md, "Trust"):

* Only the **topmost** ``Authentication-Results`` header counts: receivers prepend, so the topmost is the one
  Exchange Online added; any such header further down was written by the sender or a hop on the way and proves
  nothing.
* ``dmarc``: the verdict says ``dmarc=pass`` and its ``header.from`` (when given) is aligned with the sender.
* ``dmarc_or_spf`` (default): as ``dmarc``, or ``spf=pass`` with an ``smtp.mailfrom`` domain aligned with the
  sender's domain (SPF alone says nothing about the ``From`` a person sees; alignment ties the two together).
* ``off``: no check (only for a PBX that cannot pass either; the sender is then taken on trust).
* ARC: a PBX whose mail is relayed (and so fails SPF at Exchange Online) can name the relays it trusts
  (``trusted_arc_sealers``: authserv-ids such as ``mx.microsoft.com``). Then the ``ARC-Authentication-Results``
  with the highest instance ``i=`` whose authserv-id is listed is read the same way — unless the topmost
  ``Authentication-Results`` says ``arc=fail``. Rufpool does not verify ARC seals itself; trusting a sealer means
  trusting that Exchange Online checked its chain.

Aligned means equal or one a subdomain of the other (DMARC's relaxed alignment without a public-suffix list).
Parsing is a linear scan of at most :data:`MAX_HEADER_CHARS` per header; nothing here raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bot.core.values import MAX_HEADERS, MailHeaders

SenderAuthentication = Literal["dmarc", "dmarc_or_spf", "off"]

MAX_HEADER_CHARS = 8_000
AUTHENTICATION_RESULTS = "authentication-results"
ARC_AUTHENTICATION_RESULTS = "arc-authentication-results"


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str
    """For the notes: which result decided, or why the check failed."""


@dataclass(frozen=True, slots=True)
class _Result:
    method: str
    result: str
    properties: dict[str, str]


def header_values(headers: MailHeaders, name: str) -> list[str]:
    """Values of every header called ``name`` (case-insensitive), topmost first, each capped in length."""
    wanted = name.lower()
    return [value[:MAX_HEADER_CHARS] for key, value in headers[:MAX_HEADERS] if key.strip().lower() == wanted]


def _without_comments(value: str) -> str:
    """Drop RFC 5322 comments ``( … )``, nested ones included, in one pass."""
    out: list[str] = []
    depth = 0
    for ch in value:
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return "".join(out)


def _results(value: str, *, arc: bool) -> tuple[str, list[_Result]]:
    """The authserv-id and the method results of one (ARC-)Authentication-Results value."""
    parts = [part.strip() for part in _without_comments(value).split(";")]
    if arc and parts and parts[0].lower().startswith("i="):
        parts = parts[1:]
    authserv = ""
    if parts and "=" not in parts[0].split(" ", 1)[0]:
        authserv = parts[0].split(" ", 1)[0].lower()
        parts = parts[1:]
    results = []
    for part in parts:
        tokens = part.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].partition("=")
        properties: dict[str, str] = {}
        for token in tokens[1:]:
            key, sep, prop = token.partition("=")
            if sep:
                properties.setdefault(key.lower(), prop.strip("\"'<>").lower())
        results.append(_Result(method.lower(), result.lower(), properties))
    return authserv, results


def _arc_instance(value: str) -> int:
    head = value.split(";", 1)[0].strip().lower()
    digits = head[2:].strip() if head.startswith("i=") else ""
    return int(digits) if digits.isdigit() and len(digits) < 4 else -1


def _domain(address_or_domain: str) -> str:
    return address_or_domain.rsplit("@", 1)[-1].strip().strip("<>").rstrip(".").lower()


def aligned(one: str, other: str) -> bool:
    a, b = _domain(one), _domain(other)
    return bool(a) and bool(b) and (a == b or a.endswith("." + b) or b.endswith("." + a))


def _judge(results: Sequence[_Result], sender_domain: str, requirement: SenderAuthentication, source: str) -> Verdict:
    by_method = {r.method: r for r in reversed(results)}  # the first result of a method wins
    dmarc = by_method.get("dmarc")
    if dmarc is not None and dmarc.result == "pass":
        header_from = dmarc.properties.get("header.from", sender_domain)
        if aligned(header_from, sender_domain):
            return Verdict(True, f"{source}: dmarc=pass")
    if requirement == "dmarc_or_spf":
        spf = by_method.get("spf")
        if spf is not None and spf.result == "pass":
            mail_from = spf.properties.get("smtp.mailfrom", "")
            if aligned(mail_from, sender_domain):
                return Verdict(True, f"{source}: spf=pass, aligned")
            return Verdict(False, f"{source}: spf=pass but smtp.mailfrom not aligned with the sender")
    found = ", ".join(f"{r.method}={r.result}" for r in results if r.method in {"dmarc", "spf", "dkim"})
    return Verdict(False, f"{source}: {found or 'no dmarc/spf result'}")


def check_sender(
    headers: MailHeaders | None,
    sender: str,
    requirement: SenderAuthentication,
    trusted_arc_sealers: Sequence[str] = (),
) -> Verdict:
    """Did ``sender``'s mail pass sender authentication under ``requirement``? Never raises."""
    if requirement == "off":
        return Verdict(True, "sender authentication not required by the profile")
    if headers is None:
        return Verdict(False, "the mail's headers were not available")
    try:
        sender_domain = _domain(sender)
        topmost = header_values(headers, AUTHENTICATION_RESULTS)[:1]
        verdict = Verdict(False, "no Authentication-Results header")
        arc_failed = False
        if topmost:
            _, results = _results(topmost[0], arc=False)
            verdict = _judge(results, sender_domain, requirement, "Authentication-Results")
            arc_failed = any(r.method == "arc" and r.result == "fail" for r in results)
        if verdict.passed or not trusted_arc_sealers or arc_failed:
            return verdict
        sealers = {s.strip().lower() for s in trusted_arc_sealers}
        arc_headers = sorted(header_values(headers, ARC_AUTHENTICATION_RESULTS), key=_arc_instance, reverse=True)
        for value in arc_headers:
            authserv, results = _results(value, arc=True)
            if authserv in sealers:
                arc_verdict = _judge(results, sender_domain, requirement, f"ARC-Authentication-Results ({authserv})")
                return arc_verdict if arc_verdict.passed else verdict
        return verdict
    except Exception as exc:  # headers are sender-controlled: a malformed one fails the check, never the parse
        return Verdict(False, f"Authentication-Results unreadable ({type(exc).__name__})")
