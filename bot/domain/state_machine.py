"""The claim/done state machine as one table.

Cards (which buttons to show), tests (every cell) and the docs (``python -m bot.domain.state_machine`` prints the
Markdown table) all read :data:`TRANSITIONS`. A (state, verb) pair that is not in the table is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.cases import Actor, Case, CaseState


class Verb(StrEnum):
    CLAIM = "claim"
    RELEASE = "release"
    DONE = "done"
    REOPEN = "reopen"
    TAKE_OVER = "take_over"
    OUTLOOK_COMPLETE = "outlook_complete"
    """The mail's flag was set to complete in Outlook."""
    OUTLOOK_FLAG = "outlook_flag"
    """The mail was flagged in Outlook."""
    OUTLOOK_CLEAR = "outlook_clear"
    """The mail's flag was cleared in Outlook."""
    CALLBACK_REACHED = "callback_reached"
    """The phone system reported a callback that reached the caller, on a line that closes cases so."""


USER_VERBS = (Verb.CLAIM, Verb.RELEASE, Verb.DONE, Verb.REOPEN, Verb.TAKE_OVER)
OUTLOOK_VERBS = (Verb.OUTLOOK_COMPLETE, Verb.OUTLOOK_FLAG, Verb.OUTLOOK_CLEAR)
PHONE_VERBS = (Verb.CALLBACK_REACHED,)
REOPENING_VERBS = (Verb.REOPEN, Verb.OUTLOOK_FLAG)
"""Verbs that open a done case again and leave its mails flagged (a release or a cleared flag leaves them clear)."""


class Who(StrEnum):
    """Who may fire a transition."""

    ANYONE = "anyone"
    CLAIMER = "claimer"
    CLAIMER_OR_AFTER_TIMEOUT = "claimer, or anyone once the claim timed out"
    NOT_CLAIMER = "anyone but the claimer"
    OUTLOOK = "Outlook (flag sync)"
    PHONE = "the phone system (callback detection)"


@dataclass(frozen=True, slots=True)
class Rule:
    target: CaseState
    who: Who


TRANSITIONS: dict[tuple[CaseState, Verb], Rule] = {
    (CaseState.OPEN, Verb.CLAIM): Rule(CaseState.CLAIMED, Who.ANYONE),
    (CaseState.OPEN, Verb.DONE): Rule(CaseState.DONE, Who.ANYONE),
    (CaseState.OPEN, Verb.OUTLOOK_COMPLETE): Rule(CaseState.DONE, Who.OUTLOOK),
    (CaseState.OPEN, Verb.CALLBACK_REACHED): Rule(CaseState.DONE, Who.PHONE),
    (CaseState.CLAIMED, Verb.RELEASE): Rule(CaseState.OPEN, Who.CLAIMER_OR_AFTER_TIMEOUT),
    (CaseState.CLAIMED, Verb.DONE): Rule(CaseState.DONE, Who.CLAIMER),
    (CaseState.CLAIMED, Verb.TAKE_OVER): Rule(CaseState.CLAIMED, Who.NOT_CLAIMER),
    (CaseState.CLAIMED, Verb.OUTLOOK_COMPLETE): Rule(CaseState.DONE, Who.OUTLOOK),
    (CaseState.CLAIMED, Verb.OUTLOOK_CLEAR): Rule(CaseState.OPEN, Who.OUTLOOK),
    (CaseState.CLAIMED, Verb.CALLBACK_REACHED): Rule(CaseState.DONE, Who.PHONE),
    (CaseState.DONE, Verb.REOPEN): Rule(CaseState.OPEN, Who.ANYONE),
    (CaseState.DONE, Verb.OUTLOOK_FLAG): Rule(CaseState.OPEN, Who.OUTLOOK),
    (CaseState.DONE, Verb.OUTLOOK_CLEAR): Rule(CaseState.OPEN, Who.OUTLOOK),
}


class RefusalCode(StrEnum):
    ALREADY_CLAIMED = "already_claimed"
    ALREADY_YOURS = "already_yours"
    ALREADY_DONE = "already_done"
    CLAIMED_BY_OTHER = "claimed_by_other"
    NOT_CLAIMED = "not_claimed"
    NOT_DONE = "not_done"
    OUTLOOK_ONLY = "outlook_only"
    USERS_ONLY = "users_only"
    PHONE_ONLY = "phone_only"
    NO_CHANGE = "no_change"
    CALLER_HAS_ACTIVE_CASE = "caller_has_active_case"
    """Reopening is refused while the same caller already has a newer open or claimed case on the line."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a transition was refused, naming who holds the case and since when."""

    code: RefusalCode
    verb: Verb
    state: CaseState
    holder: Actor | None
    since: datetime | None

    @property
    def reason(self) -> str:
        """A plain English reason for logs and tests; cards localise from the fields."""
        holder = f"{self.holder.name} since {self.since:%Y-%m-%d %H:%M} UTC" if self.holder and self.since else ""
        match self.code:
            case RefusalCode.ALREADY_CLAIMED | RefusalCode.CLAIMED_BY_OTHER:
                return f"{self.verb}: already claimed by {holder}"
            case RefusalCode.ALREADY_YOURS:
                return f"{self.verb}: you hold this case already ({holder})"
            case RefusalCode.ALREADY_DONE:
                return f"{self.verb}: already done by {holder}"
            case RefusalCode.NOT_CLAIMED:
                return f"{self.verb}: nobody has claimed this case"
            case RefusalCode.NOT_DONE:
                return f"{self.verb}: the case is not done" + (f" (claimed by {holder})" if holder else "")
            case RefusalCode.OUTLOOK_ONLY:
                return f"{self.verb}: only the Outlook flag sync may do this"
            case RefusalCode.USERS_ONLY:
                return f"{self.verb}: only a person may do this"
            case RefusalCode.PHONE_ONLY:
                return f"{self.verb}: only the phone system's callback detection may do this"
            case RefusalCode.NO_CHANGE:
                return f"{self.verb}: nothing to change in state {self.state}"
            case RefusalCode.CALLER_HAS_ACTIVE_CASE:
                return f"{self.verb}: the caller has a newer active case" + (f" (held by {holder})" if holder else "")


def _refusal(case: Case, verb: Verb, code: RefusalCode) -> Refusal:
    return Refusal(code=code, verb=verb, state=case.state, holder=case.holder, since=case.held_since)


def _refusal_code_for_missing_cell(case: Case, verb: Verb, actor: Actor) -> RefusalCode:
    if verb in OUTLOOK_VERBS or verb in PHONE_VERBS:
        return RefusalCode.NO_CHANGE
    if case.state is CaseState.DONE:
        return RefusalCode.ALREADY_DONE
    if case.state is CaseState.CLAIMED and verb is Verb.CLAIM:
        return RefusalCode.ALREADY_YOURS if case.claimed_by == actor else RefusalCode.ALREADY_CLAIMED
    if verb is Verb.REOPEN:
        return RefusalCode.NOT_DONE
    return RefusalCode.NOT_CLAIMED


def _permission_refusal(
    rule: Rule, case: Case, actor: Actor, now: datetime, claim_timeout: timedelta
) -> RefusalCode | None:
    if rule.who is Who.OUTLOOK:
        return None if actor.is_outlook else RefusalCode.OUTLOOK_ONLY
    if rule.who is Who.PHONE:
        return None if actor.is_callback else RefusalCode.PHONE_ONLY
    if actor.is_outlook or actor.is_callback:
        return RefusalCode.USERS_ONLY
    is_claimer = case.claimed_by == actor
    match rule.who:
        case Who.ANYONE:
            return None
        case Who.CLAIMER:
            return None if is_claimer else RefusalCode.CLAIMED_BY_OTHER
        case Who.CLAIMER_OR_AFTER_TIMEOUT:
            timed_out = case.claimed_at is not None and now - case.claimed_at >= claim_timeout
            return None if is_claimer or timed_out else RefusalCode.CLAIMED_BY_OTHER
        case Who.NOT_CLAIMER:
            return RefusalCode.ALREADY_YOURS if is_claimer else None
    raise AssertionError(f"unhandled permission {rule.who}")


def decide(case: Case, verb: Verb, actor: Actor, now: datetime, claim_timeout: timedelta) -> Case | Refusal:
    """Apply ``verb`` by ``actor`` to ``case``: the new case (version + 1) or the refusal."""
    rule = TRANSITIONS.get((case.state, verb))
    if rule is None:
        return _refusal(case, verb, _refusal_code_for_missing_cell(case, verb, actor))
    refused = _permission_refusal(rule, case, actor, now, claim_timeout)
    if refused is not None:
        return _refusal(case, verb, refused)
    match rule.target:
        case CaseState.CLAIMED:
            return replace(
                case,
                state=rule.target,
                claimed_by=actor,
                claimed_at=now,
                done_by=None,
                done_at=None,
                reopened=False,
                version=case.version + 1,
                updated_at=now,
            )
        case CaseState.DONE:
            return replace(
                case, state=rule.target, done_by=actor, done_at=now, version=case.version + 1, updated_at=now
            )
        case CaseState.OPEN:
            return replace(
                case,
                state=rule.target,
                claimed_by=None,
                claimed_at=None,
                done_by=None,
                done_at=None,
                reopened=verb in REOPENING_VERBS,
                version=case.version + 1,
                updated_at=now,
            )
    raise AssertionError(f"unhandled target {rule.target}")


def markdown_table() -> str:
    """The table as Markdown, for the README."""
    lines = ["| from | action | to | who may |", "|---|---|---|---|"]
    for (state, verb), rule in TRANSITIONS.items():
        lines.append(f"| {state} | {verb} | {rule.target} | {rule.who} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
