"""One call, two reports: the notification mail and the phone system's call webhook describe the same call.

Whichever arrives second joins the event of the first instead of counting a second call. They match when they are
on the same line, from the same caller (two withheld callers count as the same here: both reports say "withheld"),
both are a missed call or a voicemail, one has no mail and the other no call id yet, and their times lie within
the configured window; the closest in time wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta

from bot.domain.events import CallEvent, EventKind

CALL_KINDS = (EventKind.MISSED_CALL, EventKind.VOICEMAIL)
"""The kinds both reports share; a fax or an unrecognised mail never matches a call webhook."""


def reports_same_call(recorded: CallEvent, arriving: CallEvent, window: timedelta) -> bool:
    """Whether ``arriving`` is the other report of the call ``recorded`` stands for."""
    if recorded.line_id != arriving.line_id or recorded.caller != arriving.caller or recorded.caller is None:
        return False
    if recorded.kind not in CALL_KINDS or arriving.kind not in CALL_KINDS:
        return False
    from_mail = arriving.mail is not None and recorded.mail is None and recorded.call_id is not None
    from_call = arriving.call_id is not None and recorded.call_id is None and recorded.mail is not None
    return (from_mail or from_call) and abs(recorded.received_at - arriving.received_at) <= window


def find_same_call(arriving: CallEvent, recorded: Iterable[CallEvent], window: timedelta) -> CallEvent | None:
    """The recorded event ``arriving`` reports again, the closest in time when several qualify."""
    candidates = [event for event in recorded if reports_same_call(event, arriving, window)]
    if not candidates:
        return None
    return min(candidates, key=lambda event: (abs(event.received_at - arriving.received_at), event.source_id))


def merge_reports(recorded: CallEvent, arriving: CallEvent) -> CallEvent:
    """``recorded`` with what ``arriving`` adds: the mail (with the voicemail audio) or the call id.

    The event keeps its source id and time (the first report's); a voicemail in either report makes it one.
    """
    voicemail = recorded.voicemail or arriving.voicemail
    kind = EventKind.VOICEMAIL if EventKind.VOICEMAIL in (recorded.kind, arriving.kind) else recorded.kind
    return replace(
        recorded,
        kind=kind,
        mail=recorded.mail or arriving.mail,
        call_id=recorded.call_id or arriving.call_id,
        voicemail=voicemail,
        caller_name=recorded.caller_name or arriving.caller_name,
        caller_as_written=recorded.caller_as_written or arriving.caller_as_written,
        called_number=recorded.called_number or arriving.called_number,
    )
