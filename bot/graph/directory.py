"""Who owns a team: the owners of the team's Microsoft 365 group, read through Graph (``LINK_TEAM_OWNERS``).

Needs the application permission ``GroupMember.Read.All`` (or ``Group.Read.All``). A failed lookup counts as "not an
owner": linking then stays with ``LINK_ADMINS``, and the log says why.
"""

from __future__ import annotations

import logging

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.groups.item.owners.owners_request_builder import OwnersRequestBuilder

log = logging.getLogger(__name__)

OWNERS_PAGE = 100
"""Owners read per team; a group with more owners than this is not a small team's."""


class GraphDirectory:
    def __init__(self, client: GraphServiceClient) -> None:
        self._client = client

    async def is_team_owner(self, group_id: str, user_id: str) -> bool:
        """Whether the user (AAD object id) owns the team's group (its ``aadGroupId``)."""
        query = OwnersRequestBuilder.OwnersRequestBuilderGetQueryParameters(select=["id"], top=OWNERS_PAGE)
        try:
            page = await self._client.groups.by_group_id(group_id).owners.get(
                RequestConfiguration(query_parameters=query)
            )
        except APIError as error:
            log.warning(
                "cannot read the owners of group %s (Graph answered %s); GroupMember.Read.All granted?",
                group_id[:8],
                error.response_status_code,
            )
            return False
        owners = {owner.id for owner in (page.value if page and page.value else []) if owner.id}
        return user_id in owners
