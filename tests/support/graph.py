"""msgraph-sdk pointed at the Graph stand-in, with a fixed token (the identity stand-in is tested on its own)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from azure.core.credentials import AccessToken
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory

from sandbox.graph import GraphStandIn

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhcHBpZCI6ImFwcC0xIn0."  # unsigned: the stand-in accepts any


class FixedTokenCredential:
    """An azure.core AsyncTokenCredential handing out one fixed token (the identity stand-in is tested elsewhere)."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> FixedTokenCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


def graph_client(stand_in: GraphStandIn, *, retries: bool = True) -> GraphServiceClient:
    """msgraph-sdk pointed at the stand-in: set base_url on the adapter *before* building the client."""
    auth = AzureIdentityAuthenticationProvider(FixedTokenCredential(), scopes=["https://graph.microsoft.com/.default"])
    http_client = None
    if not retries:
        http_client = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(), options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0)}
        )
    adapter = GraphRequestAdapter(auth, client=http_client)
    adapter.base_url = f"{stand_in.base_url}/v1.0"
    return GraphServiceClient(request_adapter=adapter)
