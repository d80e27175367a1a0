"""The Teams activity handler: translates activities into the application's commands and card actions.

Card clicks (``adaptiveCard/action`` invokes) never enter botbuilder's turn: :meth:`RufpoolBot.answer_card_action`
answers them from the activity's JSON, with an ``InvokeResponse`` whose body is already plain JSON. That also keeps
clear of botbuilder 4.17.1's invoke trap: its ``ActivityHandler`` serialises the ``AdaptiveCardInvokeResponse`` it
builds, and ``CloudAdapter`` then serialises that dict again (``'dict' object has no attribute 'is_xml_model'``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from botbuilder.core import ActivityHandler, BotAdapter, CardFactory, InvokeResponse, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount, ErrorResponseException
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import AuthenticateRequestResult

from bot.core.actions import ActionRequest, ActionResult, CardActions
from bot.core.commands import CommandRequest, Commands, parse_command
from bot.core.ports import Store
from bot.domain.cases import Actor
from bot.teams.auth import json_str
from cards.i18n import Lang, conversation_language, text

log = logging.getLogger(__name__)

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


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _card_click(body: dict[str, Any]) -> Activity:
    """What a card click's handling reads of its activity, as botbuilder's model built field by field: msrest's
    deserializer walks the whole activity schema, a third of a click's CPU time."""
    sender, conversation = _object(body.get("from")), _object(body.get("conversation"))
    return Activity(
        service_url=json_str(body.get("serviceUrl")),
        locale=json_str(body.get("locale")),
        value=body.get("value"),
        channel_data=_object(body.get("channelData")),
        from_property=ChannelAccount(
            id=json_str(sender.get("id")),
            name=json_str(sender.get("name")),
            aad_object_id=json_str(sender.get("aadObjectId")),
        ),
        conversation=ConversationAccount(
            id=json_str(conversation.get("id")),
            conversation_type=json_str(conversation.get("conversationType")),
            tenant_id=json_str(conversation.get("tenantId")),
        ),
    )


def _turn_connector(turn_context: TurnContext) -> Callable[[], Awaitable[ConnectorClient]]:
    async def connector() -> ConnectorClient:
        client: ConnectorClient = turn_context.turn_state[BotAdapter.BOT_CONNECTOR_CLIENT_KEY]
        return client

    return connector


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
            is_team_member=lambda team_id: self._is_member(_turn_connector(turn_context), actor.teams_id, team_id),
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

    async def answer_card_action(
        self, body: dict[str, Any], authenticated: AuthenticateRequestResult
    ) -> InvokeResponse:
        """An ``adaptiveCard/action`` invoke, answered from its JSON outside botbuilder's turn (see
        :func:`bot.teams.auth.authenticated_messages_handler`)."""
        activity = _card_click(body)

        async def connector() -> ConnectorClient:
            factory = authenticated.connector_factory
            client: ConnectorClient = await factory.create(activity.service_url, authenticated.audience)
            return client

        return card_invoke_response(await self._card_action(activity, connector))

    async def _card_action(
        self, activity: Activity, connector: Callable[[], Awaitable[ConnectorClient]]
    ) -> ActionResult:
        value = activity.value if isinstance(activity.value, dict) else {}
        raw_action = value.get("action")
        action: dict[str, Any] = raw_action if isinstance(raw_action, dict) else {}
        verb, data = action.get("verb"), action.get("data", {})
        if action.get("type") != "Action.Execute" or not isinstance(verb, str) or len(verb) > MAX_VERB_LENGTH:
            return ActionResult(400, message="expected an Action.Execute with a verb")
        if not isinstance(data, dict):
            return ActionResult(400, message="the action's data must be an object")
        actor = _actor(activity.from_property)
        if actor is None:
            return ActionResult(400, message="from.aadObjectId is required")
        request = ActionRequest(
            verb=verb,
            data=data,
            actor=actor,
            tenant_id=_tenant_id(activity),
            conversation_id=activity.conversation.id if activity.conversation else "",
            channel_id=_channel_id(activity),
            locale=activity.locale,
            is_team_member=lambda team_id: self._is_member(connector, actor.teams_id, team_id),
        )
        try:
            return await self._actions.handle(request)
        except (TypeError, ValueError) as error:
            # The data of a click is the sender's: whatever it trips over is a bad request, not a server error.
            log.warning("card action %r with unusable data: %s", verb[:32], type(error).__name__, exc_info=error)
            return ActionResult(400, message="the action's data is malformed")
        except Exception:
            # The store or another dependency failed: the clicker is told to try again, Teams never sees a 5xx.
            log.exception("card action %r failed", verb[:32])
            return ActionResult(200, message=text(self._actions.language(request), "turn_failed"))

    # Membership (personal chat) -------------------------------------------------------------------------------

    async def _is_member(
        self, connector: Callable[[], Awaitable[ConnectorClient]], user_id: str | None, team_id: str
    ) -> bool:
        if not user_id:
            return False
        key = (team_id, user_id)
        cached = self._membership.get(key)
        if cached is not None and time.monotonic() - cached[0] < MEMBERSHIP_CACHE_SECONDS:
            return cached[1]
        # Not TeamsInfo.get_team_member: in botbuilder 4.17.1 it ignores team_id and asks the activity's own
        # conversation, which in personal chat always contains the user.
        try:
            await (await connector()).conversations.get_conversation_member(team_id, user_id)
            member = True
        except Exception as error:
            if not _definitely_not_member(error):
                log.warning("team membership lookup failed (%s); not cached", type(error).__name__)
                return False
            member = False
        self._membership[key] = (time.monotonic(), member)
        return member
