"""Identity stand-in: Entra client credentials through azure-identity / MSAL, Bot Framework metadata, tokens."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential

from sandbox.identity import (
    BOT_FRAMEWORK_AUDIENCE,
    GRAPH_AUDIENCE,
    IdentityServer,
    SigningKey,
)
from sandbox.tls import TlsMaterial, ensure_tls
from tests.support.teams_standins import BOT_APP, GRAPH_APP, TENANT

GRAPH_SCOPE = f"{GRAPH_AUDIENCE}/.default"


def _credential(server: IdentityServer, tls: TlsMaterial, secret: str) -> ClientSecretCredential:
    return ClientSecretCredential(
        TENANT, GRAPH_APP.client_id, secret, authority=server.base_url,
        connection_verify=str(tls.trust_bundle), disable_instance_discovery=True,
    )


def test_azure_identity_obtains_a_graph_token(identity_server: IdentityServer, sandbox_tls: TlsMaterial) -> None:
    token = _credential(identity_server, sandbox_tls, GRAPH_APP.client_secret).get_token(GRAPH_SCOPE)

    claims = identity_server.stand_in.token_validator(GRAPH_AUDIENCE).claims(token.token)
    assert claims is not None
    assert claims["appid"] == GRAPH_APP.client_id
    assert claims["tid"] == TENANT
    assert claims["roles"] == list(GRAPH_APP.roles)
    assert token.expires_on > time.time() + 3000


async def test_async_azure_identity_obtains_a_token(identity_server: IdentityServer, sandbox_tls: TlsMaterial) -> None:
    async with AsyncClientSecretCredential(
        TENANT, GRAPH_APP.client_id, GRAPH_APP.client_secret, authority=identity_server.base_url,
        connection_verify=str(sandbox_tls.trust_bundle),
    ) as credential:
        token = await credential.get_token(GRAPH_SCOPE)

    assert identity_server.stand_in.token_validator(GRAPH_AUDIENCE)(token.token)


def test_wrong_secret_is_refused_like_entra(identity_server: IdentityServer, sandbox_tls: TlsMaterial) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        _credential(identity_server, sandbox_tls, "not-the-secret").get_token(GRAPH_SCOPE)
    assert identity_server.stand_in.token_requests[-1]["outcome"] == "invalid_client"
    assert "not-the-secret" not in json.dumps(identity_server.stand_in.token_requests)


@pytest.mark.parametrize(
    ("form", "tenant", "status", "code"),
    [
        ({"client_id": "unknown-app", "client_secret": "x", "scope": GRAPH_SCOPE}, TENANT, 400, 700016),
        ({"client_id": BOT_APP.client_id, "client_secret": BOT_APP.client_secret, "scope": GRAPH_SCOPE},
         "other-tenant", 400, 700016),
        ({"client_id": BOT_APP.client_id, "client_secret": BOT_APP.client_secret, "scope": GRAPH_AUDIENCE},
         TENANT, 400, 1002012),
        ({"client_id": BOT_APP.client_id, "client_secret": BOT_APP.client_secret,
          "scope": "https://unknown.example.com/.default"}, TENANT, 400, 500011),
    ],
    ids=["unknown-client", "wrong-tenant", "scope-without-default", "unknown-resource"],
)
def test_token_endpoint_errors_have_entras_shape(
    identity_server: IdentityServer, sandbox_tls: TlsMaterial, form: dict[str, str], tenant: str, status: int,
    code: int,
) -> None:
    response = requests.post(
        f"{identity_server.base_url}/{tenant}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", **form}, verify=str(sandbox_tls.trust_bundle), timeout=10,
    )

    assert response.status_code == status
    body = response.json()
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")
    assert {"error", "timestamp", "trace_id", "correlation_id"} <= body.keys()


def test_unsupported_grant_is_refused(identity_server: IdentityServer, sandbox_tls: TlsMaterial) -> None:
    response = requests.post(
        f"{identity_server.base_url}/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "password", "client_id": BOT_APP.client_id}, verify=str(sandbox_tls.trust_bundle),
        timeout=10,
    )
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")


def test_validator_refuses_wrong_audience_foreign_key_and_expired(identity_server: IdentityServer) -> None:
    stand_in = identity_server.stand_in
    validator = stand_in.token_validator(BOT_FRAMEWORK_AUDIENCE)
    good = stand_in.issue_access_token(BOT_APP, BOT_FRAMEWORK_AUDIENCE)
    now = int(time.time())
    foreign = SigningKey.generate().sign(jwt.decode(good, options={"verify_signature": False}),
                                         kid=stand_in.entra_key.kid)

    assert validator(good)
    assert not validator(stand_in.issue_access_token(BOT_APP, GRAPH_AUDIENCE))
    assert not validator(foreign)
    assert not validator(stand_in.issue_access_token(BOT_APP, BOT_FRAMEWORK_AUDIENCE, lifetime=-60))
    assert not validator(stand_in.entra_key.sign({"aud": BOT_FRAMEWORK_AUDIENCE, "exp": now + 60,
                                                  "iss": "https://evil.example.com/", "tid": TENANT}))
    assert not validator("garbage")


def test_bot_framework_metadata_publishes_endorsed_keys(
    identity_server: IdentityServer, sandbox_tls: TlsMaterial
) -> None:
    metadata = requests.get(identity_server.channel_openid_metadata_url, verify=str(sandbox_tls.trust_bundle),
                            timeout=10).json()
    keys = requests.get(metadata["jwks_uri"], verify=str(sandbox_tls.trust_bundle), timeout=10).json()["keys"]

    assert metadata["issuer"] == "https://api.botframework.com"
    assert [k["kid"] for k in keys] == [identity_server.stand_in.channel_key.kid]
    assert "msteams" in keys[0]["endorsements"]
    token = identity_server.stand_in.channel_token(BOT_APP.client_id, "https://service.example/")
    claims = jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=["RS256"], audience=BOT_APP.client_id)
    assert claims["serviceurl"] == "https://service.example/"
    assert claims["iss"] == "https://api.botframework.com"


def test_tenant_discovery_document_points_at_this_server(
    identity_server: IdentityServer, sandbox_tls: TlsMaterial
) -> None:
    document = requests.get(f"{identity_server.authority(TENANT)}/v2.0/.well-known/openid-configuration",
                            verify=str(sandbox_tls.trust_bundle), timeout=10).json()
    assert document["token_endpoint"] == f"{identity_server.authority(TENANT)}/oauth2/v2.0/token"
    assert document["jwks_uri"].startswith(identity_server.base_url)


def test_tls_material_is_reused(sandbox_tls: TlsMaterial) -> None:
    before = sandbox_tls.ca_file.read_bytes()
    assert ensure_tls(sandbox_tls.ca_file.parent) == sandbox_tls
    assert sandbox_tls.ca_file.read_bytes() == before


def test_runs_as_a_standalone_process(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.identity", "--port", "0", "--cert-dir", str(tmp_path),
         "--app", f"standalone-app:s3cret:{TENANT}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        response = requests.post(
            f"{started['base_url']}/_control/channel-token",
            json={"appId": "standalone-app", "serviceUrl": "http://127.0.0.1:1/"},
            verify=started["trust_bundle"], timeout=10,
        )
        token = requests.post(
            f"{started['base_url']}/{TENANT}/oauth2/v2.0/token", verify=started["trust_bundle"], timeout=10,
            data={"grant_type": "client_credentials", "client_id": "standalone-app", "client_secret": "s3cret",
                  "scope": f"{BOT_FRAMEWORK_AUDIENCE}/.default"},
        )
    finally:
        process.terminate()
        process.wait(10)

    assert jwt.decode(response.json()["token"], options={"verify_signature": False})["aud"] == "standalone-app"
    assert token.json()["token_type"] == "Bearer"
