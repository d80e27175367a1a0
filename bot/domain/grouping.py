"""Grouping: repeat calls of the same caller on the same line fold into one case."""

from __future__ import annotations

from bot.domain.cases import Case, CaseState, PreviousCase
from bot.domain.events import CallEvent


def is_active(case: Case) -> bool:
    """Open or claimed: a case a new call from the same caller joins."""
    return case.state is not CaseState.DONE


def place_event(event: CallEvent, active_case: Case | None, last_done_case: Case | None, new_case_id: str) -> Case:
    """The case ``event`` belongs to after grouping.

    ``active_case`` is the caller's open or claimed case on the event's line (if any), ``last_done_case`` their most
    recently finished one; a new case links the latter ("zuletzt erledigt von …").
    """
    if event.grouping_key is not None and active_case is not None:
        if active_case.line_id != event.line_id or active_case.caller != event.caller or not is_active(active_case):
            raise ValueError("active_case must be the caller's open or claimed case on the event's line")
        return active_case.with_event(event)
    previous = None
    if event.grouping_key is not None and last_done_case is not None:
        previous = PreviousCase(last_done_case.id, last_done_case.done_by, last_done_case.done_at)
    return Case(
        id=new_case_id,
        line_id=event.line_id,
        caller=event.caller,
        created_at=event.received_at,
        events=(event,),
        caller_name=event.caller_name,
        previous=previous,
        updated_at=event.received_at,
    )
