"""Where the bot reads the time. Production reads the system clock; only the local sandbox may shift it, so the demo
can show what reminders and the morning overview do an hour (or a night) later."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ShiftableClock:
    """The system clock plus an offset that only moves forward (sandbox only)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> datetime:
        if delta <= timedelta(0):
            raise ValueError("the clock only moves forward")
        self.offset += delta
        return self()
