"""The Teams activity handler: translates activities into the application's commands and card actions.

botbuilder 4.17.1 trap, fixed here and only here: ``ActivityHandler.on_invoke_activity`` parses
``adaptiveCard/action`` into an ``AdaptiveCardInvokeValue`` whose ``action`` stays a plain dict, and its
``_create_invoke_response`` serialises the body that ``CloudAdapter`` then serialises again (``'dict' object has no
attribute 'is_xml_model'``). :meth:`RufpoolBot.on_invoke_activity` reads the raw ``value`` dict itself and returns an
``InvokeResponse`` whose body is already plain JSON; :func:`bot.teams.auth.invoke_response_json` passes such a body
through unchanged and serialises only msrest models.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Any

from botbuilder.core import ActivityHandler, CardFactory, InvokeResponse, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import Activity, ChannelAccount

from bot.actions import ActionRequest, ActionResult, CardActions
from bot.commands import CommandRequest, Commands
from bot.domain.cases import Actor
from bot.storage.interface import Installation, Store

log = logging.getLogger(__name__)

ADAPTIVE_CARD_ACTION = "adaptiveCard/action"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MESSAGE_CONTENT_TYPE = "application/vnd.microsoft.activity.message"
ERROR_CONTENT_TYPE = "application/vnd.microsoft.error"
MEMBERSHIP_CACHE_SECONDS = 300.0


def card_invoke_response(result: ActionResult) -> InvokeResponse:
    """The ``adaptiveCard/action`` response as plain JSON (see the module docstring)."""
    if result.card is not None:
        body: dict[str, Any] = {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": result.card}
    elif result.status < 400:
        body = {"statusCode": 200, "type": MESSAGE_CONTENT_TYPE, "value": result.message or ""}
    else:
        body = {
            "statusCode": result.status,
            "type": ERROR_CONTENT_TYPE,
            "value": {"code": HTTPStatus(result.status).phrase.replace(" ", ""), "message": result.message or ""},
        }
    return InvokeResponse(status=int(HTTPStatus.OK), body=body)


def _actor(account: ChannelAccount | None) -> Actor:
    if account is None:
        return Actor("unknown", "?")
    return Actor(account.aad_object_id or account.id or "unknown", account.name or account.id or "?")


def _channel_data(activity: Activity) -> dict[str, Any]:
    data = activity.channel_data
    return data if isinstance(data, dict) else {}


def _channel_id(activity: Activity) -> str | None:
    """The channel of a channel message, from channelData (the thread suffix is not part of it)."""
    channel = _channel_data(activity).get("channel")
    if isinstance(channel, dict) and channel.get("id"):
        return str(channel["id"])
    conversation = activity.conversation
    if conversation is not None and conversation.conversation_type == "channel" and conversation.id:
        return str(conversation.id).split(";", 1)[0]
    return None


def _team_id(activity: Activity) -> str | None:
    team = _channel_data(activity).get("team")
    return str(team["id"]) if isinstance(team, dict) and team.get("id") else None


def _tenant_id(activity: Activity) -> str | None:
    tenant = _channel_data(activity).get("tenant")
    if isinstance(tenant, dict) and tenant.get("id"):
        return str(tenant["id"])
    return activity.conversation.tenant_id if activity.conversation else None


class RufpoolBot(ActivityHandler):
    def __init__(self, store: Store, commands: Commands, actions: CardActions) -> None:
        self._store = store
        self._commands = commands
        self._actions = actions
        self._membership: dict[tuple[str, str], tuple[float, bool]] = {}

    # Installation --------------------------------------------------------------------------------------------

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        bot_id = activity.recipient.id if activity.recipient else None
        if any(member.id == bot_id for member in activity.members_added or []):
            await self._remember_installation(turn_context)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._remember_installation(turn_context)

    async def _remember_installation(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        team_id = _team_id(activity)
        if team_id is None:
            return
        # TeamsInfo.get_team_channels is synchronous inside botbuilder (it would block the event loop): the
        # channel comes from the activity; every channel is recorded again when it is linked.
        channel_id = _channel_id(activity) or team_id
        team = _channel_data(activity).get("team")
        team_name = str(team.get("name") or "") if isinstance(team, dict) else ""
        channels = [{"id": channel_id, "name": team_name or "General"}]
        reference = TurnContext.get_conversation_reference(activity)
        await self._store.links.save_installation(
            Installation(
                team_id=team_id,
                tenant_id=_tenant_id(activity) or "",
                service_url=activity.service_url,
                conversation_reference=reference.serialize(),
                channels=channels,
            )
        )
        log.info("installed in team %s", team_id[:16])

    # Messages (commands) -------------------------------------------------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.value and not activity.text:
            await turn_context.send_activity(MessageFactory.text("Bitte die Schaltflächen der aktuellen Karte nutzen."))
            return
        text = TurnContext.remove_recipient_mention(activity) if activity.entities else activity.text
        request = CommandRequest(
            text=(text or "").replace("&nbsp;", " ").strip(),
            actor=_actor(activity.from_property),
            actor_upn=getattr(activity.from_property, "user_principal_name", None),
            tenant_id=_tenant_id(activity),
            conversation_id=activity.conversation.id,
            service_url=activity.service_url,
            team_id=_team_id(activity),
            channel_id=_channel_id(activity),
            locale=activity.locale,
            member_team_ids=lambda team_ids: self._member_teams(turn_context, team_ids),
        )
        reply = await self._commands.handle(request)
        if reply.card is not None:
            await turn_context.send_activity(MessageFactory.attachment(CardFactory.adaptive_card(reply.card)))
        elif reply.text:
            await turn_context.send_activity(MessageFactory.text(reply.text))

    # Card actions ---------------------------------------------------------------------------------------------

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        activity = turn_context.activity
        if activity.name != ADAPTIVE_CARD_ACTION:
            return await super().on_invoke_activity(turn_context)
        value = activity.value if isinstance(activity.value, dict) else {}
        raw_action = value.get("action")
        action: dict[str, Any] = raw_action if isinstance(raw_action, dict) else {}
        verb, data = action.get("verb"), action.get("data")
        if action.get("type") != "Action.Execute" or not isinstance(verb, str):
            return card_invoke_response(ActionResult(400, message="expected an Action.Execute with a verb"))
        request = ActionRequest(
            verb=verb,
            data=data if isinstance(data, dict) else {},
            actor=_actor(activity.from_property),
            tenant_id=_tenant_id(activity),
            conversation_id=activity.conversation.id if activity.conversation else "",
            channel_id=_channel_id(activity),
            locale=activity.locale,
            is_team_member=lambda team_id: self._is_member(turn_context, team_id),
        )
        return card_invoke_response(await self._actions.handle(request))

    # Membership (personal chat) -------------------------------------------------------------------------------

    async def _is_member(self, turn_context: TurnContext, team_id: str) -> bool:
        user = turn_context.activity.from_property
        if user is None or not user.id:
            return False
        key = (team_id, user.id)
        cached = self._membership.get(key)
        if cached is not None and time.monotonic() - cached[0] < MEMBERSHIP_CACHE_SECONDS:
            return cached[1]
        try:
            await TeamsInfo.get_team_member(turn_context, team_id, user.id)
            member = True
        except Exception:
            member = False
        self._membership[key] = (time.monotonic(), member)
        return member

    async def _member_teams(self, turn_context: TurnContext, team_ids: list[str]) -> list[str]:
        return [team_id for team_id in team_ids if await self._is_member(turn_context, team_id)]
