"""Fault injection for the Graph stand-in: rules that answer matching requests with a Graph error, a delay or a
dropped connection, the way Graph and Exchange throttle or refuse."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from dataclasses import dataclass, field

from sandbox.graph_model import GraphError

FAULT_KINDS = ("429", "503", "403", "delay", "drop")


@dataclass
class FaultRule:
    """Answer matching requests (path regex, optional method) with a fault at `rate`; `count` limits uses."""

    kind: str
    rate: float = 1.0
    path: str = ".*"
    method: str | None = None
    retry_after: int = 1
    delay_ms: int = 0
    count: int | None = None
    after: int = 0
    """Let this many matching requests through first (a fault on the third delta page, say)."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    hits: int = 0
    """How many requests this rule has faulted so far."""

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        return (self.method is None or self.method.upper() == method) and re.search(self.path, path) is not None


class ConnectionDropped(Exception):
    """Fault injection: close the connection without answering."""


class FaultInjector:
    """The fault rules of one stand-in; ``rng`` decides each rule's ``rate`` (seeded, so a run can be repeated)."""

    def __init__(self, rng: random.Random) -> None:
        self.rules: list[FaultRule] = []
        self._random = rng

    def add(
        self,
        kind: str,
        *,
        rate: float = 1.0,
        path: str = ".*",
        method: str | None = None,
        retry_after: int = 1,
        delay_ms: int = 0,
        count: int | None = None,
        after: int = 0,
    ) -> FaultRule:
        """Inject a fault ('429', '503', '403', 'delay', 'drop') for Graph requests whose path matches the regex,
        from the ``after + 1``-th such request on."""
        if kind not in FAULT_KINDS or not 0.0 <= rate <= 1.0:
            raise GraphError(400, "InvalidRequest", f"fault kind must be one of {FAULT_KINDS}, rate in [0, 1].")
        re.compile(path)
        rule = FaultRule(kind, rate, path, method, retry_after, delay_ms, count, after)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    async def inject(self, method: str, path: str) -> None:
        """Apply the matching rules to one request: wait out a delay; raise the error or the dropped connection."""
        for rule in self.rules:
            if not rule.matches(method, path) or self._random.random() >= rule.rate:
                continue
            if rule.after > 0:
                rule.after -= 1
                continue
            if rule.count is not None:
                rule.count -= 1
            rule.hits += 1
            if rule.kind == "delay":
                await asyncio.sleep(rule.delay_ms / 1000)
            elif rule.kind == "429":
                raise GraphError(
                    429,
                    "TooManyRequests",
                    "Too many requests. Please retry after some time.",
                    {"Retry-After": str(rule.retry_after)},
                )
            elif rule.kind == "403":
                # What Exchange answers when the app's permission does not cover the mailbox (RBAC scope).
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            elif rule.kind == "503":
                raise GraphError(
                    503,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Please retry.",
                    {"Retry-After": str(rule.retry_after)},
                )
            else:
                raise ConnectionDropped
