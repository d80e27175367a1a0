"""Proactive posting: one card thread per case in its line's channel, kept up to date, plus thread replies.

Runs as outbox jobs (``teams.card``, ``teams.reply``). botbuilder does not retry 429/412/502/504 from the
connector: its ``ErrorResponseException`` is mapped onto the job runner's retry vocabulary here. One card job per
case runs at a time (a store lease, so also across instances): two concurrent jobs could otherwise both post a
first card, or put an older version over a newer one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    ConversationReference,
)
from msrest.exceptions import HttpOperationError

from bot import metrics
from bot.core import effects
from bot.core.jobs import PermanentFailure, RetryLater, RunLater, parse_retry_after
from bot.core.ports import CardRef, ChannelLink, JobState, Store
from bot.domain.cases import Actor, Case
from bot.domain.state_machine import Verb
from bot.heartbeat import LeaseLost, renewing
from bot.teams.pacing import Pacer
from cards.case_card import card_activity_text, card_marker
from cards.i18n import Lang
from cards.messages import (
    build_backlog_summary_card,
    build_erased_card,
    contact_reply,
    repeat_call_reply,
    state_change_reply,
)
from cards.renderer import CardRenderer

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = {408, 412, 429, 500, 502, 503, 504}
MAX_PACING_WAIT_S = 1.0
"""A send that would wait longer for its thread's slot is deferred to a booked slot instead of holding a worker."""
CARD_LEASE = timedelta(seconds=20)
"""One card job per case at a time; renewed every :data:`CARD_LEASE_RENEWAL` while it posts, so a dead holder's
lease is free again within about this long."""
CARD_LEASE_RENEWAL = timedelta(seconds=5)
CARD_BUSY_RETRY = timedelta(seconds=1)
REPLY_ORDER_PATIENCE_S = 1.0
"""How long a thread line waits in its worker for an earlier line of its case before it is put back."""
REPLY_ORDER_POLL_S = 0.05
REPLY_ORDER_WAIT = timedelta(seconds=1)


class CardFinder(Protocol):
    """Looks a card up among a channel's messages (:class:`bot.graph.channel_cards.ChannelCards`)."""

    async def find(self, group_id: str, channel_id: str, marker: str, *, besides: str | None = None) -> str | None: ...


class ConversationGone(Exception):
    """The card's message or thread no longer exists (deleted in Teams)."""


def _status_of(error: HttpOperationError) -> int:
    response = getattr(error, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


def _retry_after(error: HttpOperationError) -> timedelta | None:
    response = getattr(error, "response", None)
    return parse_retry_after(response.headers.get("Retry-After") if response is not None and response.headers else None)


def as_job_error(error: HttpOperationError) -> Exception:
    status = _status_of(error)
    metrics.REMOTE_ERRORS.labels("teams", str(status)).inc()
    if status == 404:
        return ConversationGone(str(error))
    if status in RETRYABLE_STATUSES or status == 0:
        return RetryLater(f"Teams answered {status}", _retry_after(error), status=status)
    return PermanentFailure(f"Teams refused the request ({status}): {error}", status=status)


def _actor(value: Any) -> Actor | None:
    return Actor(str(value["id"]), str(value["name"])) if isinstance(value, dict) else None


class CardPoster:
    def __init__(
        self,
        adapter: CloudAdapter,
        app_id: str,
        store: Store,
        renderer: CardRenderer,
        pacer: Pacer,
        lang: Lang,
        service_url_allowed: Callable[[str | None], bool],
        line_names: Mapping[str, str] | None = None,
        channel_cards: CardFinder | None = None,
    ) -> None:
        self._channel_cards = channel_cards
        self._service_url_allowed = service_url_allowed
        self._line_names = dict(line_names or {})
        self._adapter = adapter
        self._app_id = app_id
        self._store = store
        self._renderer = renderer
        self._pacer = pacer
        self._lang = lang

    def _reference(
        self, link: ChannelLink, conversation_id: str, activity_id: str | None = None
    ) -> ConversationReference:
        """Where to act; ``activity_id`` makes sends replies to that message (the card, root of its thread)."""
        return ConversationReference(
            activity_id=activity_id,
            channel_id="msteams",
            service_url=link.service_url,
            bot=ChannelAccount(id=self._app_id or "rufpool"),
            conversation=ConversationAccount(
                id=conversation_id, is_group=True, conversation_type="channel", tenant_id=link.tenant_id
            ),
        )

    def _card_activity(self, case: Case) -> Activity:
        activity = MessageFactory.attachment(CardFactory.adaptive_card(self._renderer.case_card(case, self._lang)))
        activity.summary = card_activity_text(case, self._lang)
        return activity

    async def _call(
        self, link: ChannelLink, thread: str, operation: Any, *, backlog: bool = False, card_of: str | None = None
    ) -> Any:
        """One request to Teams within the pacing. ``card_of`` names the case whose card a POST creates: its post
        intent is recorded just before the request goes out (not while it waits for its slot), and ended when Teams
        refuses it (a 4xx: nothing was posted); a 5xx or a lost answer leaves the outcome in doubt."""
        if not self._service_url_allowed(link.service_url):
            # Stored when the line was linked; TEAMS_SERVICE_URLS may have been narrowed since.
            raise PermanentFailure("the line's service URL is not a Teams service URL (TEAMS_SERVICE_URLS)")
        delay = self._pacer.delay(thread, link.tenant_id, backlog=backlog)
        if delay > MAX_PACING_WAIT_S:
            # A slot of its own behind the others waiting (backlog behind the backlog, live behind live only): the
            # sends waiting come due one slot after another instead of all at once, each holding a worker.
            after = self._pacer.book(thread, backlog=backlog)
            raise RunLater("waiting for the thread's slot under Teams' rate limits", timedelta(seconds=after))
        await self._pacer.wait(thread, link.tenant_id, backlog=backlog)
        if card_of is not None:
            await self._store.cards.begin_post(card_of, datetime.now(UTC))
        try:
            return await operation()
        except HttpOperationError as error:
            if card_of is not None and 400 <= _status_of(error) < 500:
                await self._store.cards.forget_post(card_of)
            raise as_job_error(error) from error

    # Jobs ---------------------------------------------------------------------------------------------------

    async def handle_card(self, payload: dict[str, Any]) -> None:
        """Post the case's card as a new thread, or update the posted card to the case's current version."""
        case_id = str(payload["case_id"])
        lease, holder = f"teams-card:{case_id}", uuid.uuid4().hex
        # Waiting for another holder is not a failure: the job is put back without counting an attempt (a dead
        # holder's lease runs out within CARD_LEASE).
        if not await self._store.leases.try_acquire(lease, holder, CARD_LEASE, datetime.now(UTC)):
            raise RunLater("another job is posting this card", CARD_BUSY_RETRY)
        try:
            await renewing(
                self._bring_card_up_to_date(
                    case_id,
                    repost=bool(payload.get("repost")),
                    redraw=payload.get("redraw") is True,
                    backlog=bool(payload.get("backlog")),
                ),
                lambda: self._store.leases.try_acquire(lease, holder, CARD_LEASE, datetime.now(UTC)),
                CARD_LEASE_RENEWAL,
                f"the card of case {case_id[:8]}",
            )
        except LeaseLost as lost:
            raise RunLater(str(lost), CARD_BUSY_RETRY) from lost
        finally:
            await self._store.leases.release(lease, holder)

    async def _bring_card_up_to_date(
        self, case_id: str, *, repost: bool = False, redraw: bool = False, backlog: bool = False
    ) -> None:
        case = await self._store.cases.get(case_id)
        if case is None:
            log.info("case %s no longer exists (retention or erasure); no card to update", case_id[:8])
            return
        link = await self._store.links.link_for_line(case.line_id)
        if link is None:
            log.info("line %s is not linked to a channel yet; the card is posted when it is", case.line_id)
            return
        card = await self._store.cards.get_card(case.id)
        replacing = card.activity_id if card is not None else None
        if repost:
            card = None  # a new message; the case's card and thread are the new ones from now on
        elif card is not None and card.posted_version >= case.version and not redraw:
            return
        if card is not None:
            try:
                await self._update(link, card, case, backlog=backlog)
                return
            except ConversationGone:
                log.warning("the card of case %s was deleted in Teams; posting it again", case.id[:8])
        await self._post(link, case, backlog=backlog, replacing=replacing)

    async def _new_thread(
        self, link: ChannelLink, activity: Activity, *, backlog: bool = False, card_of: str | None = None
    ) -> dict[str, str]:
        """Post ``activity`` as a new thread in the link's channel; its conversation and activity ids."""
        created: dict[str, str] = {}

        async def remember(turn_context: TurnContext) -> None:
            created["conversation_id"] = turn_context.activity.conversation.id
            created["activity_id"] = turn_context.activity.id

        parameters = ConversationParameters(
            is_group=True,
            bot=ChannelAccount(id=self._app_id or "rufpool"),
            channel_data={"channel": {"id": link.channel_id}, "tenant": {"id": link.tenant_id}},
            tenant_id=link.tenant_id,
            activity=activity,
        )
        await self._call(
            link,
            link.channel_id,
            lambda: self._adapter.create_conversation(
                self._app_id, remember, parameters, "msteams", link.service_url, None
            ),
            backlog=backlog,
            card_of=card_of,
        )
        return created

    async def handle_backlog_summary(self, payload: dict[str, Any]) -> None:
        """One card saying how many calls a catch-up brought on a line; their own cards follow."""
        line_id, count = str(payload["line_id"]), int(payload["count"])
        link = await self._store.links.link_for_line(line_id)
        if link is None:
            return
        card = build_backlog_summary_card(count, self._line_names.get(line_id, line_id), self._lang)
        await self._new_thread(link, MessageFactory.attachment(CardFactory.adaptive_card(card)))
        log.info("posted the catch-up summary of %s (%d calls)", line_id, count)

    async def _post(self, link: ChannelLink, case: Case, *, backlog: bool, replacing: str | None = None) -> None:
        """Post the case's card as a new thread. The intent is recorded right before the POST: when an earlier
        attempt may have posted it (it died, or its answer was lost, before the card was saved), the card is looked
        for in the channel and adopted instead of posted twice."""
        if await self._store.cards.post_in_doubt(case.id) and await self._adopt(link, case, replacing, backlog=backlog):
            return
        created = await self._new_thread(link, self._card_activity(case), backlog=backlog, card_of=case.id)
        conversation_id = created["conversation_id"]
        if ";messageid=" not in conversation_id:
            conversation_id = f"{link.channel_id};messageid={created['activity_id']}"
        await self._store.cards.save_card(CardRef(case.id, conversation_id, created["activity_id"], case.version))
        log.info("posted the card of case %s", case.id[:8])

    async def _adopt(self, link: ChannelLink, case: Case, replacing: str | None, *, backlog: bool) -> bool:
        """Find the card an earlier attempt posted and make it the case's card (brought up to date); False when
        the channel has none (or it cannot be looked up: a line linked before the team's group id was recorded)."""
        if self._channel_cards is None or link.group_id is None:
            log.warning("cannot look up whether the card of case %s was posted; posting it", case.id[:8])
            return False
        found = await self._channel_cards.find(link.group_id, link.channel_id, card_marker(case.id), besides=replacing)
        if found is None:
            return False
        metrics.CARDS_ADOPTED.inc()
        log.info("the card of case %s was posted by an earlier attempt; adopting it", case.id[:8])
        adopted = CardRef(case.id, f"{link.channel_id};messageid={found}", found, 0)
        await self._store.cards.save_card(adopted)
        await self._update(link, adopted, case, backlog=backlog)
        return True

    async def _update(self, link: ChannelLink, card: CardRef, case: Case, *, backlog: bool) -> None:
        activity = self._card_activity(case)
        activity.id = card.activity_id

        async def update(turn_context: TurnContext) -> None:
            activity.conversation = turn_context.activity.conversation
            await turn_context.update_activity(activity)

        await self._call(
            link,
            card.conversation_id,
            lambda: self._adapter.continue_conversation(
                self._reference(link, card.conversation_id), update, self._app_id
            ),
            backlog=backlog,
        )
        await self._store.cards.save_card(CardRef(case.id, card.conversation_id, card.activity_id, case.version))

    async def handle_reply(self, payload: dict[str, Any]) -> None:
        """One line in the case's thread (a repeat call, a state change), after the lines of the case's earlier
        versions: a line waits (without counting an attempt) while one of them is still to be posted."""
        version = payload.get("version")
        if isinstance(version, int):
            await self._after_earlier_lines(str(payload["case_id"]), version)
        case = await self._store.cases.get(str(payload["case_id"]))
        if case is None:
            log.info("case %s no longer exists (retention or erasure); no thread line", str(payload["case_id"])[:8])
            return
        link = await self._store.links.link_for_line(case.line_id)
        if link is None:
            return
        card = await self._store.cards.get_card(case.id)
        if card is None:
            raise RetryLater("the case's card is not posted yet", timedelta(seconds=2))
        text = self._reply_text(case, payload["message"])
        if text is None:
            raise PermanentFailure(f"unknown reply {payload['message'].get('key')!r}")

        reference = self._reference(link, card.conversation_id, card.activity_id)

        async def send(turn_context: TurnContext) -> None:
            # turn_context.send_activity would reply to the continuation event's random id; address the card.
            reply = TurnContext.apply_conversation_reference(MessageFactory.text(text), reference)
            await turn_context.adapter.send_activities(turn_context, [reply])

        try:
            await self._call(
                link,
                card.conversation_id,
                lambda: self._adapter.continue_conversation(reference, send, self._app_id),
                backlog=bool(payload.get("backlog")),
            )
        except ConversationGone as gone:
            raise PermanentFailure("the case's thread no longer exists") from gone

    async def _after_earlier_lines(self, case_id: str, version: int) -> None:
        """Wait a moment for an earlier thread line of the case that another worker is posting right now; put this
        line back when one waits for its turn or its retry (holding a worker for it could starve the others)."""
        order_key = effects.reply_order_key(case_id)
        deadline = asyncio.get_running_loop().time() + REPLY_ORDER_PATIENCE_S
        while (earlier := await self._store.jobs.earlier_unfinished(order_key, version)) is not None:
            if earlier is JobState.PENDING or asyncio.get_running_loop().time() >= deadline:
                raise RunLater("an earlier line of this case's thread is not posted yet", REPLY_ORDER_WAIT)
            await asyncio.sleep(REPLY_ORDER_POLL_S)

    async def handle_erased(self, payload: dict[str, Any]) -> None:
        """Replace the card of a deleted case (retention, erasure) with a "deleted" card naming nobody."""
        link = await self._store.links.link_for_line(str(payload["line_id"]))
        if link is None:
            log.info("line %s is no longer linked: its deleted card stays as it was", payload["line_id"])
            return
        conversation_id, activity_id = str(payload["conversation_id"]), str(payload["activity_id"])
        card = build_erased_card(self._lang, expired=payload.get("reason") == "expired")
        activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
        activity.id = activity_id
        activity.summary = card["fallbackText"]

        async def update(turn_context: TurnContext) -> None:
            activity.conversation = turn_context.activity.conversation
            await turn_context.update_activity(activity)

        try:
            await self._call(
                link,
                conversation_id,
                lambda: self._adapter.continue_conversation(
                    self._reference(link, conversation_id), update, self._app_id
                ),
            )
        except ConversationGone:
            log.info("the card of a deleted case was already gone from Teams")

    def _reply_text(self, case: Case, message: dict[str, Any]) -> str | None:
        at = datetime.fromisoformat(str(message.get("at"))) if message.get("at") else datetime.now(UTC)
        match message.get("key"):
            case "repeat_call":
                # The event this reply is about, not the newest: two calls may land in the same second.
                event = next((e for e in case.events if e.source_id == message.get("source_id")), case.last_event)
                return (
                    repeat_call_reply(event, int(message.get("count", case.call_count)), self._lang) if event else None
                )
            case "state_change":
                actor = _actor(message.get("actor"))
                if actor is None:
                    return None
                previous = _actor(message.get("previous_holder"))
                return state_change_reply(Verb(message["verb"]), actor, at, self._lang, previous_holder=previous)
            case "contact":
                contact = next((c for c in case.contacts if c.call_id == message.get("call_id")), None)
                return contact_reply(contact, self._lang) if contact else None
        return None
