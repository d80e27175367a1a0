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

from botbuilder.core import ActivityHandler, BotAdapter, CardFactory, InvokeResponse, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import Activity, ChannelAccount, ErrorResponseException
from botframework.connector.aio import ConnectorClient

from bot.core.actions import ActionRequest, ActionResult, CardActions
from bot.core.commands import CommandRequest, Commands, parse_command
from bot.core.ports import Store
from bot.domain.cases import Actor
from cards.i18n import Lang, conversation_language, text

log = logging.getLogger(__name__)

ADAPTIVE_CARD_ACTION = "adaptiveCard/action"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MESSAGE_CONTENT_TYPE = "application/vnd.microsoft.activity.message"
ERROR_CONTENT_TYPE = "application/vnd.microsoft.error"
MEMBERSHIP_CACHE_SECONDS = 300.0
ADMIN_COMMANDS = frozenset({"link", "unlink", "forget"})
MAX_VERB_LENGTH = 64


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


def _actor(account: ChannelAccount | None) -> Actor | None:
    """The person acting, by Entra object id only: ``from.id`` is no identity anyone vouches for. The inbound checks
    refuse activities without ``aadObjectId``; None here means the activity bypassed them."""
    if account is None or not account.aad_object_id:
        return None
    return Actor(account.aad_object_id, account.name or "?", account.id)


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


def _team_group_id(activity: Activity) -> str | None:
    team = _channel_data(activity).get("team")
    return str(team["aadGroupId"]) if isinstance(team, dict) and team.get("aadGroupId") else None


def _tenant_id(activity: Activity) -> str | None:
    tenant = _channel_data(activity).get("tenant")
    if isinstance(tenant, dict) and tenant.get("id"):
        return str(tenant["id"])
    return activity.conversation.tenant_id if activity.conversation else None


def _definitely_not_member(error: Exception) -> bool:
    """The connector's answer for a user outside the team (404), or a team the bot has left (403)."""
    response = error.response if isinstance(error, ErrorResponseException) else None
    return response is not None and response.status_code in (HTTPStatus.NOT_FOUND, HTTPStatus.FORBIDDEN)


class RufpoolBot(ActivityHandler):
    def __init__(self, store: Store, commands: Commands, actions: CardActions, channel_locale: str = "de-DE") -> None:
        self._channel_locale = channel_locale
        self._store = store
        self._commands = commands
        self._actions = actions
        self._membership: dict[tuple[str, str], tuple[float, bool]] = {}

    def _language(self, activity: Activity) -> Lang:
        return conversation_language(self._channel_locale, activity.locale, in_channel=_channel_id(activity))

    # Messages (commands) -------------------------------------------------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.value and not activity.text:
            await turn_context.send_activity(MessageFactory.text(text(self._language(activity), "use_current_card")))
            return
        # Mentions are stripped by parse_command: TurnContext.remove_recipient_mention deletes the bot's name
        # everywhere in the text ("@Rufpool open" → "@ open") and reads it as a regular expression.
        message = (activity.text or "").replace("&nbsp;", " ").strip()
        command, _ = parse_command(message)
        actor = _actor(activity.from_property)
        if actor is None:
            log.warning("message without from.aadObjectId ignored")
            return
        request = CommandRequest(
            text=message,
            actor=actor,
            actor_upn=await self._user_principal_name(turn_context) if command in ADMIN_COMMANDS else None,
            tenant_id=_tenant_id(activity),
            conversation_id=activity.conversation.id,
            service_url=activity.service_url,
            team_id=_team_id(activity),
            channel_id=_channel_id(activity),
            locale=activity.locale,
            is_team_member=lambda team_id: self._is_member(turn_context, team_id),
            team_group_id=_team_group_id(activity),
        )
        reply = await self._commands.handle(request)
        if reply.card is not None:
            await turn_context.send_activity(MessageFactory.attachment(CardFactory.adaptive_card(reply.card)))
        elif reply.text:
            await turn_context.send_activity(MessageFactory.text(reply.text))

    async def _user_principal_name(self, turn_context: TurnContext) -> str | None:
        """The sender's UPN (LINK_ADMINS may name people by UPN); activities carry only the AAD object id."""
        user = turn_context.activity.from_property
        if user is None or not user.id:
            return None
        try:
            member = await TeamsInfo.get_member(turn_context, user.id)
        except Exception as error:
            log.info("could not look up the sender's UPN: %s", type(error).__name__)
            return None
        return getattr(member, "user_principal_name", None)

    # Card actions ---------------------------------------------------------------------------------------------

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        activity = turn_context.activity
        if activity.name != ADAPTIVE_CARD_ACTION:
            return await super().on_invoke_activity(turn_context)
        value = activity.value if isinstance(activity.value, dict) else {}
        raw_action = value.get("action")
        action: dict[str, Any] = raw_action if isinstance(raw_action, dict) else {}
        verb, data = action.get("verb"), action.get("data", {})
        if action.get("type") != "Action.Execute" or not isinstance(verb, str) or len(verb) > MAX_VERB_LENGTH:
            return card_invoke_response(ActionResult(400, message="expected an Action.Execute with a verb"))
        if not isinstance(data, dict):
            return card_invoke_response(ActionResult(400, message="the action's data must be an object"))
        actor = _actor(activity.from_property)
        if actor is None:
            return card_invoke_response(ActionResult(400, message="from.aadObjectId is required"))
        request = ActionRequest(
            verb=verb,
            data=data,
            actor=actor,
            tenant_id=_tenant_id(activity),
            conversation_id=activity.conversation.id if activity.conversation else "",
            channel_id=_channel_id(activity),
            locale=activity.locale,
            is_team_member=lambda team_id: self._is_member(turn_context, team_id),
        )
        try:
            result = await self._actions.handle(request)
        except (TypeError, ValueError) as error:
            # The data of a click is the sender's: whatever it trips over is a bad request, not a server error.
            log.warning("card action %r with unusable data: %s", verb[:32], type(error).__name__, exc_info=error)
            result = ActionResult(400, message="the action's data is malformed")
        except Exception:
            # The store or another dependency failed: the clicker is told to try again, Teams never sees a 5xx.
            log.exception("card action %r failed", verb[:32])
            result = ActionResult(200, message=text(self._actions.language(request), "turn_failed"))
        return card_invoke_response(result)

    # Membership (personal chat) -------------------------------------------------------------------------------

    async def _is_member(self, turn_context: TurnContext, team_id: str) -> bool:
        user = turn_context.activity.from_property
        if user is None or not user.id:
            return False
        key = (team_id, user.id)
        cached = self._membership.get(key)
        if cached is not None and time.monotonic() - cached[0] < MEMBERSHIP_CACHE_SECONDS:
            return cached[1]
        # Not TeamsInfo.get_team_member: in botbuilder 4.17.1 it ignores team_id and asks the activity's own
        # conversation, which in personal chat always contains the user.
        connector: ConnectorClient = turn_context.turn_state[BotAdapter.BOT_CONNECTOR_CLIENT_KEY]
        try:
            await connector.conversations.get_conversation_member(team_id, user.id)
            member = True
        except Exception as error:
            if not _definitely_not_member(error):
                log.warning("team membership lookup failed (%s); not cached", type(error).__name__)
                return False
            member = False
        self._membership[key] = (time.monotonic(), member)
        return member
