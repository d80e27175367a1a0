"""Finds a case's card among a channel's messages, for a card POST whose outcome is unknown.

Reads ``GET /teams/{group}/channels/{channel}/messages`` with the resource-specific permission
``ChannelMessage.Read.Group`` that the team grants when it installs the app (manifest ``authorization``). A case card
carries the marker :func:`cards.case_card.card_marker` as the id of its first element.
"""

from __future__ import annotations

import logging

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.teams.item.channels.item.messages.messages_request_builder import MessagesRequestBuilder

from bot.graph.errors import as_job_error

log = logging.getLogger(__name__)

PAGE = 50
"""Graph's largest page of channel messages."""
NO_CONSENT = {403, 404}
"""Graph's answers when the app may not read the team's channel (no resource-specific consent, app removed)."""
PAGES = 4
"""Pages looked at, newest first: the card in doubt was posted moments before its job's next attempt."""


class ChannelCards:
    def __init__(self, client: GraphServiceClient) -> None:
        self._client = client

    async def find(self, group_id: str, channel_id: str, marker: str, *, besides: str | None = None) -> str | None:
        """The id of the newest channel message whose card carries ``marker`` (other than ``besides``, a card being
        replaced); None when there is none, or when the team has not granted the read (403/404: nothing to wait
        for). Another failed read raises the job runner's retry exceptions: posting again without knowing would risk
        the duplicate this lookup exists to prevent."""
        messages = self._client.teams.by_team_id(group_id).channels.by_channel_id(channel_id).messages
        query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(top=PAGE)
        try:
            page = await messages.get(RequestConfiguration(query_parameters=query))
            for _ in range(PAGES):
                for message in page.value if page and page.value else []:
                    if message.deleted_date_time is not None or message.id in (None, besides):
                        continue
                    if any(marker in (attachment.content or "") for attachment in message.attachments or []):
                        return message.id
                if page is None or not page.odata_next_link:
                    break
                page = await messages.with_url(page.odata_next_link).get()
        except APIError as error:
            if error.response_status_code in NO_CONSENT:
                log.warning(
                    "cannot read the messages of channel %s (Graph answered %s); ChannelMessage.Read.Group consented?",
                    channel_id[-12:],
                    error.response_status_code,
                )
                return None
            raise as_job_error(error) from error
        except Exception as error:
            raise as_job_error(error) from error
        return None
