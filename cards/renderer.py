"""Draws a case's card as one viewer sees it, from the settings and the case: the same drawing for a click's answer
(:mod:`bot.core.actions`) and for the card in the channel (:mod:`bot.teams.posting`). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from bot.clock import Clock, system_clock
from bot.config import Settings
from bot.domain.callers import CallerIdentity
from bot.domain.cases import Actor, Case
from bot.line_rules import line_due_state
from cards.case_card import CaseCardView, build_case_card
from cards.elements import Json
from cards.i18n import Lang


class CardRenderer:
    """Adds what a card shows beyond the case (line name, the caller's identity, how due it is) and builds it."""

    def __init__(
        self,
        settings: Settings,
        identify_caller: Callable[[Case], CallerIdentity | None] | None = None,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._identify_caller = identify_caller
        self._clock = clock

    @property
    def claim_timeout(self) -> timedelta:
        return timedelta(minutes=self._settings.claim_timeout_minutes)

    def case_card(
        self,
        case: Case,
        lang: Lang,
        notice: str | None = None,
        viewer: Actor | None = None,
        listen_link: tuple[str, str] | None = None,
    ) -> Json:
        line = self._settings.lines_by_id.get(case.line_id)
        now = self._clock()
        return build_case_card(
            CaseCardView(
                case=case,
                line_name=line.display_name if line else case.line_id,
                lang=lang,
                now=now,
                claim_timeout=self.claim_timeout,
                listen_link=listen_link,
                notice=notice,
                viewer=viewer,
                identity=self._identify_caller(case) if self._identify_caller else None,
                notice_positive=listen_link is not None,
                due=line_due_state(line, case, now) if line else None,
            )
        )
