"""doctor's vocabulary: the report's check names, a problem with its fix, a check's result."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CONFIGURATION = "configuration"


CREDENTIALS = "credentials"


MAILBOXES = "Graph access to the mailboxes"


SUBSCRIPTIONS = "subscriptions"


DATABASE = "database"


PUBLIC_URL = "public notification URL"


PLACETEL_NOTIFY = "Placetel call webhooks (Notify API)"


OUTBOX = "outbox"


CALLER_SOURCES = "caller names (Graph permissions)"


BUSINESS_HOURS = "business hours and reminders"


_AADSTS = re.compile(r"AADSTS\d+:[^\r\n\\]*")


@dataclass(frozen=True)
class Problem:
    check: str
    message: str
    """What is wrong."""
    fix: str
    """What to do: the setting, portal step or command."""
    warning: bool = False
    """A warning is printed but does not make doctor fail."""


@dataclass(frozen=True)
class CheckResult:
    check: str
    problems: list[Problem] = field(default_factory=list)
    skipped: str | None = None
    """Why the check could not run (a prerequisite failed or it does not apply)."""
    notes: list[str] = field(default_factory=list)
    """What the check found that is worth showing although nothing is wrong (e.g. each line's hours)."""

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if not problem.warning]

    @property
    def status(self) -> str:
        if self.skipped:
            return "SKIP"
        if self.errors:
            return "FAIL"
        return "WARN" if self.problems else "OK"


def _brief(error: BaseException) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"[:300] if first_line else type(error).__name__
