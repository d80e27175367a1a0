"""The answer to ``open`` / ``mine``: one page of cases, oldest first, with a Claim button per open case.

The caller passes only the page's cases plus the total, so building is O(page) however many cases are open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.domain.cases import Case, CaseState
from bot.domain.state_machine import Verb
from cards.case_card import NOTICE_LIMIT, state_label
from cards.elements import Json, adaptive_card, case_action, column, column_set, execute, notice_block, text_block
from cards.format import NAME_LIMIT, caller_label, format_relative, inert
from cards.i18n import Lang, calls_count, text

PAGE_SIZE = 10
"""Cases per page: keeps the card well under 40 KB even with the longest names."""

LIST_PAGE_VERB = "list_page"
"""``Action.Execute`` verb of the paging buttons; data ``{"command": "open"|"mine", "offset": int}``."""


class ListCommand(StrEnum):
    OPEN = "open"
    MINE = "mine"


@dataclass(frozen=True, slots=True)
class CaseListView:
    command: ListCommand
    cases: Sequence[Case]
    """One page of cases, oldest first, starting at ``offset`` of ``total``."""
    total: int
    offset: int
    line_names: Mapping[str, str]
    """Line id → the line's name."""
    lang: Lang
    now: datetime
    page_size: int = PAGE_SIZE
    notice: str | None = None
    """Plain text shown on top, e.g. the outcome of a Claim clicked in this list."""
    notice_positive: bool = False


def build_list_card(view: CaseListView) -> Json:
    lang = view.lang
    body = [text_block(text(lang, f"list_{view.command}_title", total=view.total), size="Large", weight="Bolder")]
    if view.notice:
        body.append(notice_block(inert(view.notice, NOTICE_LIMIT), positive=view.notice_positive))
    if view.total == 0:
        body.append(text_block(text(lang, f"list_{view.command}_empty"), spacing="Medium"))
        return adaptive_card(body, fallback_text=body[-1]["text"])
    body.extend(_row(view, case) for case in view.cases)
    if view.cases:
        first, last = view.offset + 1, view.offset + len(view.cases)
        body.append(
            text_block(
                text(lang, "list_range", first=first, last=last, total=view.total),
                isSubtle=True,
                size="Small",
                horizontalAlignment="Right",
                separator=True,
            )
        )
    return adaptive_card(body, _paging(view), fallback_text=body[0]["text"])


def _row(view: CaseListView, case: Case) -> Json:
    lang = view.lang
    who = f"**{caller_label(case, lang)}**"
    if case.caller_name:
        who += f" · {inert(case.caller_name, NAME_LIMIT)}"
    details = text(
        lang,
        "list_row_details",
        line=inert(view.line_names.get(case.line_id, case.line_id), NAME_LIMIT),
        calls=calls_count(case.call_count, lang),
        relative=format_relative(case.created_at, view.now, lang),
    )
    info = column(
        [
            text_block(who),
            text_block(details, isSubtle=True, size="Small", spacing="None"),
            # In the theme's default colour: the state colours as text fail WCAG AA (yellow on white is 1.5:1).
            text_block(state_label(case, lang, markdown=True), size="Small", spacing="None", weight="Bolder"),
        ]
    )
    columns = [info]
    if case.state is CaseState.OPEN:
        claim = case_action(
            case,
            Verb.CLAIM,
            text(lang, "verb_claim"),
            style="positive",
            extra={"list": {"command": str(view.command), "offset": view.offset}},
        )
        columns.append(
            column([{"type": "ActionSet", "actions": [claim]}], width="auto", verticalContentAlignment="Center")
        )
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": [column_set(columns)]}


def _paging(view: CaseListView) -> list[Json]:
    actions = []
    if view.offset > 0:
        previous = max(0, view.offset - view.page_size)
        actions.append(
            execute(
                text(view.lang, "page_previous"), LIST_PAGE_VERB, {"command": str(view.command), "offset": previous}
            )
        )
    following = view.offset + len(view.cases)
    if following < view.total:
        actions.append(
            execute(
                text(view.lang, "page_next"),
                LIST_PAGE_VERB,
                {"command": str(view.command), "offset": following},
                style="positive",
            )
        )
    return actions
