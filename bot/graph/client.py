"""Builds msgraph-sdk's GraphServiceClient from the settings.

The base URL and the authority come from configuration (public cloud by default, local stand-ins in tests and the
demo); there is no code switch between the two. Kiota's own RetryHandler is left out of the middleware: retries,
backoff and Retry-After are the outbox's job, so there is one retry policy for every effect.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from urllib.parse import urlparse

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import CertificateCredential, ClientSecretCredential
from kiota_abstractions.serialization import ParseNode
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import RetryHandler
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.entity import Entity
from msgraph_core import GraphClientFactory

from bot.config import Settings

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
CONNECT_TIMEOUT_S = 10.0


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def build_credential(settings: Settings) -> AsyncTokenCredential:
    """Client secret or certificate credential for the app registration, at the configured authority."""
    ca_bundle = str(settings.graph_ca_bundle) if settings.graph_ca_bundle else None
    options: dict[str, object] = {"authority": settings.graph_authority_host}
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    if urlparse(settings.graph_authority_host).hostname in {"127.0.0.1", "localhost"}:
        # A local identity stand-in: MSAL must not ask the public cloud to discover the instance.
        options["disable_instance_discovery"] = True
    if settings.graph_client_certificate_path:
        return CertificateCredential(
            settings.graph_tenant_id,
            settings.graph_client_id,
            certificate_path=str(settings.graph_client_certificate_path),
            **options,  # type: ignore[arg-type]
        )
    return ClientSecretCredential(
        settings.graph_tenant_id,
        settings.graph_client_id,
        settings.graph_client_secret.get_secret_value(),
        **options,  # type: ignore[arg-type]
    )


def _entity_fields(self: Entity) -> dict[str, Callable[[ParseNode], None]]:
    return {
        "id": lambda n: setattr(self, "id", n.get_str_value()),
        "@odata.type": lambda n: setattr(self, "odata_type", n.get_str_value()),
    }


def slim_entity_deserializers() -> None:
    """Entity's two fields without the SDK's 1,200 imports.

    msgraph-sdk's ``Entity.get_field_deserializers``, which every model's deserializer reaches through ``super()``,
    imports every Entity subclass of the SDK before returning the same two fields: the first Graph answer parsed
    would load some 1,300 modules (≈ 30 MB resident) that nothing uses. Kiota picks a subclass through
    ``create_from_discriminator_value``, which imports only the one it names, so leaving them out changes nothing.
    """
    Entity.get_field_deserializers = _entity_fields  # type: ignore[method-assign]


def build_graph_client(settings: Settings, credential: AsyncTokenCredential) -> GraphServiceClient:
    slim_entity_deserializers()
    host = urlparse(settings.graph_base_url).hostname or "graph.microsoft.com"
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])
    middleware = [m for m in KiotaClientFactory.get_default_middleware(None) if not isinstance(m, RetryHandler)]
    ca_bundle = str(settings.graph_ca_bundle) if settings.graph_ca_bundle else None
    seconds = settings.graph_timeout_seconds
    timeout = httpx.Timeout(seconds, connect=min(CONNECT_TIMEOUT_S, seconds))
    http_client = GraphClientFactory.create_with_custom_middleware(
        middleware, client=httpx.AsyncClient(verify=ssl_context(ca_bundle), timeout=timeout)
    )
    adapter = GraphRequestAdapter(auth, client=http_client)
    adapter.base_url = settings.graph_base_url
    return GraphServiceClient(request_adapter=adapter)
