"""Posting reminders (thread replies with @mentions) and morning overviews (a new thread in the line's channel).

Runs as outbox jobs (``teams.reminder``, ``teams.overview``) through the same paced, retry-mapped calls as the
case cards. Users are mentioned by AAD object id; a team tag by its tag id with ``"type": "tag"`` on the mentioned
account (botbuilder's ``ChannelAccount`` has no such field, so a subclass serialises it).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, ClassVar

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, ChannelAccount, ConversationParameters, Mention

from bot.clock import Clock
from bot.config import PoolLine, Settings
from bot.core.jobs import PermanentFailure, RetryLater
from bot.core.ports import ChannelLink
from bot.domain.cases import Case
from bot.domain.reminders import ReminderKind
from bot.teams.posting import CardPoster, ConversationGone
from cards.reminder_cards import Mention as MentionTarget
from cards.reminder_cards import OverviewView, build_nudge_card, build_overview_card, reminder_text

log = logging.getLogger(__name__)


class _MentionedAccount(ChannelAccount):
    """A mentioned account that may be a team tag (``"type": "tag"``)."""

    _attribute_map: ClassVar[dict[str, Any]] = {**ChannelAccount._attribute_map, "type": {"key": "type", "type": "str"}}

    def __init__(self, *, type: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.type = type


def mention_entities(mentions: list[MentionTarget]) -> list[Mention]:
    return [
        Mention(
            mentioned=_MentionedAccount(id=target.id, name=target.name, type="tag" if target.is_tag else None),
            text=target.markup,
            type="mention",
        )
        for target in mentions
    ]


def _targets(line: PoolLine, kind: ReminderKind, claimer: Any) -> list[MentionTarget]:
    rules = line.reminders
    match kind:
        case ReminderKind.UNCLAIMED:
            if rules.tag is not None:
                return [MentionTarget(rules.tag.id, rules.tag.name, is_tag=True)]
            return [MentionTarget(person.id, person.name) for person in rules.mention]
        case ReminderKind.CLAIMED:
            if isinstance(claimer, dict) and claimer.get("id"):
                return [MentionTarget(str(claimer["id"]), str(claimer.get("name") or "?"))]
            return []
        case ReminderKind.ESCALATION:
            target = rules.escalate_to
            if target is not None and target.user is not None:
                return [MentionTarget(target.user.id, target.user.name)]
            return []
    return []


class ReminderPoster(CardPoster):
    """The case-card poster, plus reminders and overviews."""

    def __init__(self, *args: Any, settings: Settings, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings = settings
        self._clock = clock

    def _line(self, line_id: str) -> PoolLine:
        line = self._settings.lines_by_id.get(line_id)
        if line is None:
            raise PermanentFailure(f"line {line_id} is not configured any more")
        return line

    async def handle_reminder(self, payload: dict[str, Any]) -> None:
        case = await self._store.cases.get(str(payload["case_id"]))
        if case is None:
            raise PermanentFailure(f"case {payload['case_id']} does not exist")
        line = self._line(case.line_id)
        link = await self._store.links.link_for_line(case.line_id)
        if link is None:
            return
        card = await self._store.cards.get_card(case.id)
        if card is None:
            raise RetryLater("the case's card is not posted yet", timedelta(seconds=2))
        kind = ReminderKind(str(payload["kind"]))
        targets = _targets(line, kind, payload.get("claimer"))
        message = reminder_text(
            kind,
            self._lang,
            mentions=targets,
            waited_minutes=int(payload.get("waited_minutes", 0)),
            line_name=line.display_name,
            case=case,
            count=line.reminders.escalate_after,
        )
        activity = MessageFactory.text(message)
        activity.entities = mention_entities(targets)
        if kind is ReminderKind.CLAIMED:
            activity.attachments = [CardFactory.adaptive_card(build_nudge_card(case, self._lang))]
        escalation = line.reminders.escalate_to
        if kind is ReminderKind.ESCALATION and escalation is not None and escalation.channel_id is not None:
            await self._post_new_thread(link, escalation.channel_id, activity)
            return
        reference = self._reference(link, card.conversation_id, card.activity_id)

        async def send(turn_context: TurnContext) -> None:
            reply = TurnContext.apply_conversation_reference(activity, reference)
            await turn_context.adapter.send_activities(turn_context, [reply])

        try:
            await self._call(
                link,
                card.conversation_id,
                lambda: self._adapter.continue_conversation(reference, send, self._app_id),
            )
        except ConversationGone as gone:
            raise PermanentFailure("the case's thread no longer exists") from gone

    async def handle_overview(self, payload: dict[str, Any]) -> None:
        line = self._line(str(payload["line_id"]))
        link = await self._store.links.link_for_line(line.id)
        if link is None:
            log.info("line %s is not linked to a channel; no overview", line.id)
            return
        cases: list[Case] = []
        for case_id in payload.get("case_ids", []):
            case = await self._store.cases.get(str(case_id))
            if case is not None:
                cases.append(case)
        closed_since = payload.get("closed_since")
        view = OverviewView(
            line_name=line.display_name,
            cases=cases,
            total=int(payload.get("total", len(cases))),
            closed_since=datetime.fromisoformat(closed_since) if closed_since else None,
            lang=self._lang,
            now=self._clock(),
        )
        activity = MessageFactory.attachment(CardFactory.adaptive_card(build_overview_card(view)))
        await self._post_new_thread(link, link.channel_id, activity)

    async def _post_new_thread(self, link: ChannelLink, channel_id: str, activity: Activity) -> None:
        parameters = ConversationParameters(
            is_group=True,
            bot=ChannelAccount(id=self._app_id or "rufpool"),
            channel_data={"channel": {"id": channel_id}, "tenant": {"id": link.tenant_id}},
            tenant_id=link.tenant_id,
            activity=activity,
        )

        async def posted(_turn_context: TurnContext) -> None:
            return None

        await self._call(
            link,
            channel_id,
            lambda: self._adapter.create_conversation(
                self._app_id, posted, parameters, "msteams", link.service_url, None
            ),
        )
        log.info("posted a new thread for line %s", link.line_id)
