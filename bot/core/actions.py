"""Card actions: one handler per ``Action.Execute`` verb. No botbuilder here; the Teams layer translates.

Every transition is a compare-and-set in the store. The clicker gets the new card back; everyone else sees it
through the ``teams.card`` job that edits the channel message; the thread gets one line per state change; the
mails' Outlook flags follow through the flag sync.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.clock import Clock, system_clock
from bot.config import Settings
from bot.core import effects
from bot.core.ports import ChannelLink, Store
from bot.core.voicemail import VoicemailAccess
from bot.domain.cases import Actor, Case
from bot.domain.state_machine import USER_VERBS, Verb
from bot.logging_setup import mask_number
from bot.tasks import SharedCalls
from cards.case_card import LISTEN_VERB, REFRESH_VERB
from cards.i18n import Lang, conversation_language, refusal_text, text
from cards.list_card import LIST_PAGE_VERB
from cards.reminder_cards import NUDGE_ORIGIN, build_nudge_answer
from cards.renderer import CardRenderer

log = logging.getLogger(__name__)

Json = dict[str, Any]
MAX_ID_LENGTH = 64
"""Case ids are 32 hex digits; anything much longer in a click's data is not one."""
REFUSAL_CARD_REUSE = timedelta(seconds=1)
MAX_REFUSAL_CARDS = 256


@dataclass(frozen=True, slots=True)
class ActionRequest:
    verb: str
    data: Mapping[str, Any]
    actor: Actor
    tenant_id: str | None
    conversation_id: str
    channel_id: str | None
    """The Teams channel the click came from; None in a personal or group chat."""
    locale: str | None = None
    is_team_member: Callable[[str], Awaitable[bool]] | None = None
    """Checks that the clicking user belongs to a team (for clicks in personal chat); supplied by the Teams layer."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    status: int
    card: Json | None = None
    message: str | None = None
    applied: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class ListPage(Protocol):
    """Renders a page of the open/mine list (``bot.core.commands.Commands.list_page``)."""

    async def __call__(self, request: ActionRequest, notice: str | None, positive: bool) -> ActionResult: ...


class CardActions:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        list_page: ListPage,
        voicemail: VoicemailAccess,
        renderer: CardRenderer | None = None,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._renderer = renderer or CardRenderer(settings, clock=clock)
        self._clock = clock
        self._store = store
        self._voicemail = voicemail
        self._handlers: dict[str, Callable[[ActionRequest], Awaitable[ActionResult]]] = {
            verb.value: self._transition_handler(verb) for verb in USER_VERBS
        }
        self._list_page = list_page
        # Fifty people clicking one card at once: their snapshots of the case, the line's link and the refresh for
        # everyone come from one read each instead of fifty (see SharedCalls; the transition is a compare-and-set).
        self._case_reads: SharedCalls[str, Case | None] = SharedCalls()
        self._link_reads: SharedCalls[str, ChannelLink | None] = SharedCalls()
        self._refreshes: SharedCalls[str, None] = SharedCalls()
        self._refusal_cards: dict[tuple[str, int, Lang, str, bool], tuple[datetime, Json]] = {}

        async def page(request: ActionRequest) -> ActionResult:
            return await list_page(request, None, False)

        self._handlers[LIST_PAGE_VERB] = page
        self._handlers[REFRESH_VERB] = self._refresh
        self._handlers[LISTEN_VERB] = self._listen

    @property
    def claim_timeout(self) -> timedelta:
        return self._renderer.claim_timeout

    async def handle(self, request: ActionRequest) -> ActionResult:
        handler = self._handlers.get(request.verb)
        if handler is None:
            return ActionResult(400, message=f"unknown action {request.verb!r}")
        return await handler(request)

    def _transition_handler(self, verb: Verb) -> Callable[[ActionRequest], Awaitable[ActionResult]]:
        async def handle(request: ActionRequest) -> ActionResult:
            return await self._transition(verb, request)

        handle.__name__ = f"handle_{verb.value}"
        return handle

    async def _refused_by_origin(self, case: Case, request: ActionRequest) -> str | None:
        """Actions count only from the case's own channel (or a member's personal chat) in the case's tenant."""
        link = await self._link_reads.call(case.line_id, lambda: self._store.links.link_for_line(case.line_id))
        if link is None:
            return "line not linked"
        if request.tenant_id != link.tenant_id:
            return "other tenant"
        if request.channel_id is not None:
            return None if request.channel_id == link.channel_id else "other channel"
        if request.is_team_member is not None and await request.is_team_member(link.team_id):
            return None
        return "not a member of the line's team"

    async def _listen(self, request: ActionRequest) -> ActionResult:
        """ "Anhören": a member of the line's team gets a fresh single-use link, in a card only they see."""
        lang = self.language(request)
        case_id, source_id = request.data.get("case_id"), request.data.get("event")
        if not isinstance(case_id, str) or not isinstance(source_id, str) or not 0 < len(case_id) <= MAX_ID_LENGTH:
            return ActionResult(400, message="listen needs a case_id and an event (strings)")
        case = await self._store.cases.get(case_id)
        if case is None:
            return ActionResult(404, message=text(lang, "action_unknown_case"))
        event = next((e for e in case.events if e.source_id == source_id and e.voicemail is not None), None)
        if event is None:
            return ActionResult(404, message=text(lang, "listen_unknown"))
        refused = await self._refused_by_origin(case, request)
        link = await self._store.links.link_for_line(case.line_id)
        if refused is None and link is not None:
            # Also in the line's own channel: a guest or a removed member may still see an old card there.
            member = request.is_team_member is not None and await request.is_team_member(link.team_id)
            refused = None if member else "not a member of the line's team"
        if refused is not None or link is None:
            log.warning("voicemail of case %s refused: %s", case.id[:8], refused)
            return ActionResult(403, message=text(lang, "action_wrong_conversation"))
        url = await self._voicemail.issue(case, event.source_id, request.actor.id)
        minutes = int(self._voicemail.lifetime.total_seconds() // 60)
        notice = text(lang, "listen_ready", minutes=minutes)
        listen_link = (event.source_id, url)
        return ActionResult(
            200, card=self._renderer.case_card(case, lang, notice, request.actor, listen_link=listen_link)
        )

    def language(self, request: ActionRequest) -> Lang:
        """The channel's language in a channel, where everyone shares one message (an answer in the clicker's
        own language would flip back at the next update); the user's own language in a personal chat."""
        return conversation_language(self._settings.default_locale, request.locale, in_channel=request.channel_id)

    async def _transition(self, verb: Verb, request: ActionRequest) -> ActionResult:
        lang = self.language(request)
        case_id = request.data.get("case_id")
        if not isinstance(case_id, str) or not 0 < len(case_id) <= MAX_ID_LENGTH:
            return ActionResult(400, message="the action's data needs a case_id (a string)")
        case = await self._case_reads.call(case_id, lambda: self._store.cases.get(case_id))
        if case is None:
            return ActionResult(404, message=text(lang, "action_unknown_case"))
        refused = await self._refused_by_origin(case, request)
        if refused is not None:
            log.warning("refused %s on case %s from elsewhere: %s", verb, case.id[:8], refused)
            return ActionResult(403, message=text(lang, "action_wrong_conversation"))
        now = self._clock()
        try:
            outcome = await self._store.cases.transition(
                case.id,
                verb,
                request.actor,
                now,
                self.claim_timeout,
                effects=lambda outcome: effects.transition_effects(outcome, verb, request.actor, now),
                seen=case,
            )
        except Exception:
            # The change and its effects commit together or not at all; the clicker learns which, never a 5xx.
            log.exception("%s on case %s could not be stored", verb, case.id[:8])
            return await self._answer_after_failure(case, lang, request)
        if outcome.refusal is not None:
            notice = refusal_text(outcome.refusal, lang)
            # The clicker may look at a stale card: answer with the current one, and refresh it for everyone.
            if _card_version(request.data) != outcome.case.version:
                await self._refresh_for_everyone(outcome.case.id)
            if request.data.get("origin") == NUDGE_ORIGIN:
                return ActionResult(200, card=build_nudge_answer(lang, notice, positive=False), message=notice)
            if _list_origin(request) is not None:
                return await self._back_to_list(request, notice, positive=False)
            return ActionResult(200, card=self._refusal_card(outcome.case, lang, notice, request.actor), message=notice)
        log.info("%s: case %s (%s) by %s", verb, case.id[:8], mask_number(case.caller), request.actor.id[:8])
        if request.data.get("origin") == NUDGE_ORIGIN:
            answer = build_nudge_answer(lang, text(lang, "nudge_released"), positive=True)
            return ActionResult(200, card=answer, applied=True)
        if _list_origin(request) is not None:
            return replace(
                await self._back_to_list(request, text(lang, "list_action_done"), positive=True), applied=True
            )
        return ActionResult(200, card=self._renderer.case_card(outcome.case, lang, viewer=request.actor), applied=True)

    def _refusal_card(self, case: Case, lang: Lang, notice: str, viewer: Actor) -> Json:
        """The card for a refused click. The losers of a race on one card are refused against the same case within
        milliseconds: they share one drawing, reused for at most :data:`REFUSAL_CARD_REUSE` (what a card shows of the
        time, minutes ago and how due the case is, moves on in minutes)."""
        key = (case.id, case.version, lang, notice, viewer == case.claimed_by)
        now = self._clock()
        drawn = self._refusal_cards.get(key)
        if drawn is not None and now - drawn[0] < REFUSAL_CARD_REUSE:
            return drawn[1]
        card = self._renderer.case_card(case, lang, notice, viewer)
        if len(self._refusal_cards) >= MAX_REFUSAL_CARDS:
            self._refusal_cards.clear()
        self._refusal_cards[key] = (now, card)
        return card

    async def _refresh_for_everyone(self, case_id: str) -> None:
        """Queue a refresh of a card someone saw stale; the clicker's answer does not depend on it."""
        try:
            await self._refreshes.call(case_id, lambda: self._store.jobs.add([effects.RefreshCard(case_id)]))
        except Exception:
            log.exception("could not queue the refresh of case %s's card", case_id[:8])

    async def _answer_after_failure(self, seen: Case, lang: Lang, request: ActionRequest) -> ActionResult:
        """The card as committed: unchanged with "try again" when the change was not stored, or the new state when
        it was (an error after the commit); a plain "try again" when the store cannot be read either."""
        try:
            case = await self._store.cases.get(seen.id)
        except Exception:
            log.exception("case %s could not be read after a failed action", seen.id[:8])
            case = None
        if case is None:
            return ActionResult(200, message=text(lang, "action_not_saved"))
        notice = text(lang, "action_not_saved") if case.version == seen.version else None
        return ActionResult(200, card=self._renderer.case_card(case, lang, notice, request.actor), message=notice)

    async def _refresh(self, request: ActionRequest) -> ActionResult:
        """A Teams client refreshing a claimed card: the current card as this user should see it; no change."""
        lang = self.language(request)
        case_id = str(request.data.get("case_id", ""))
        case = await self._store.cases.get(case_id) if case_id else None
        if case is None:
            return ActionResult(404, message=text(lang, "action_unknown_case"))
        if await self._refused_by_origin(case, request) is not None:
            return ActionResult(403, message=text(lang, "action_wrong_conversation"))
        return ActionResult(200, card=self._renderer.case_card(case, lang, viewer=request.actor))

    async def _back_to_list(self, request: ActionRequest, notice: str, *, positive: bool) -> ActionResult:
        """A button clicked in an open/mine list answers with the list again, so the clicker keeps their place."""
        return await self._list_page(replace(request, data=_list_origin(request) or {}), notice, positive)


def _list_origin(request: ActionRequest) -> dict[str, Any] | None:
    origin = request.data.get("list")
    return origin if isinstance(origin, dict) else None


def _card_version(data: Mapping[str, Any]) -> int | None:
    try:
        return int(data["version"])
    except (KeyError, TypeError, ValueError):
        return None
