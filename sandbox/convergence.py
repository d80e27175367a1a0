"""What the stand-ins show against what the store holds: the invariants of exactly-once delivery (issue 13).

Every mail in a watched Inbox became exactly one event; every case has exactly one card thread in its channel and
that card shows the case's latest version; every mail's Outlook flag agrees with its case; no job is dead-lettered.
The crash-point tests and the soak (``bench.soak``) both judge a run by :func:`check`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.core.ports import Store
from bot.core.sync import flag_agrees
from bot.core.values import FlagStatus
from sandbox.connector import ConnectorStandIn
from sandbox.graph import GraphStandIn


@dataclass
class Convergence:
    """Counts of one check; ``problems`` says what is wrong, one line each (empty when everything holds)."""

    mails: int = 0
    events: int = 0
    cases: int = 0
    cards: int = 0
    duplicate_cards: int = 0
    lost: int = 0
    """Mails without an event, and cases without a card."""
    stale_cards: int = 0
    flags_wrong: int = 0
    dead_letters: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.problems


def _case_actions(node: Any) -> Iterator[dict[str, Any]]:
    """Every action ``data`` in a card that names a case (the buttons and the refresh carry id and version)."""
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and isinstance(data.get("case_id"), str):
            yield data
        for value in node.values():
            yield from _case_actions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _case_actions(value)


def channel_cards(connector: ConnectorStandIn) -> dict[str, list[int]]:
    """Case id → the version each of its card threads shows now (root messages of threads in any channel)."""
    shown: dict[str, list[int]] = {}
    for conversation_id, records in connector.conversations.items():
        if ";messageid=" not in conversation_id:
            continue
        for record in records:
            if record.operation != "create":
                continue
            actions = list(_case_actions(record.current.get("attachments", [])))
            if actions:  # a backlog summary names no case
                versions = [int(data.get("version", -1)) for data in actions]
                shown.setdefault(str(actions[0]["case_id"]), []).append(max(versions))
    return shown


async def check(
    store: Store,
    graph: GraphStandIn,
    connector: ConnectorStandIn,
    mailboxes: Iterable[str],
    *,
    only: Collection[str] | None = None,
    jobs_after: int = 0,
) -> Convergence:
    """Compare every Inbox mail of ``mailboxes`` (or just the mail ids ``only``) with its event, case, card and
    flag; dead letters count from job id ``jobs_after`` on."""
    result = Convergence()
    cards = channel_cards(connector)
    case_ids: set[str] = set()
    for address in mailboxes:
        for mail in graph.mailbox(address).messages.values():
            if only is not None and mail.id not in only:
                continue
            result.mails += 1
            case = await store.cases.find_by_message(address, mail.id)
            events = [] if case is None else [e for e in case.events if e.mail and e.mail.message_id == mail.id]
            result.events += len(events)
            if case is None or len(events) != 1:
                result.lost += case is None
                result.problems.append(f"mail {mail.id[-12:]} in {address} has {len(events)} events")
                continue
            case_ids.add(case.id)
            flag = FlagStatus(mail.flag.get("flagStatus", FlagStatus.NOT_FLAGGED))
            if not flag_agrees(case, flag):
                result.flags_wrong += 1
                result.problems.append(f"mail {mail.id[-12:]} is {flag}, its case {case.id[:8]} is {case.state}")
    for case_id in sorted(case_ids):
        case = await store.cases.get(case_id)
        shown = cards.get(case_id, [])
        result.cards += len(shown)
        if not shown:
            result.lost += 1
            result.problems.append(f"case {case_id[:8]} has no card")
        elif len(shown) > 1:
            result.duplicate_cards += len(shown) - 1
            result.problems.append(f"case {case_id[:8]} has {len(shown)} cards")
        if case is not None and shown and max(shown) != case.version:
            result.stale_cards += 1
            result.problems.append(f"the card of case {case_id[:8]} shows version {max(shown)}, not {case.version}")
    result.cases = len(case_ids)
    dead = [job for job in await store.jobs.dead_letters(limit=10_000) if job.id > jobs_after]
    result.dead_letters = len(dead)
    result.problems += [f"dead letter {job.kind}: {job.last_error}" for job in dead]
    return result
