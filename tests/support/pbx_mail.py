"""Headers of a PBX notice as Exchange Online stamps them on receipt (for tests of the sender-trust rule)."""

from __future__ import annotations

from bot.core.values import MailHeaders


def eop_headers(sender: str, *, dmarc: str = "pass", spf: str = "pass", mail_from: str | None = None) -> MailHeaders:
    """``Authentication-Results`` as Exchange Online Protection writes it for a mail from ``sender``."""
    domain = sender.rsplit("@", 1)[-1]
    envelope = mail_from or domain
    value = (
        f"spf={spf} (sender IP is 192.0.2.25) smtp.mailfrom={envelope}; dkim={dmarc} (signature was verified) "
        f"header.d={domain};dmarc={dmarc} action=none header.from={domain};compauth={dmarc} reason=100"
    )
    return (("Authentication-Results", value),)
