"""Subscriptions of the Graph stand-in: request validation, the validation handshake, notification delivery."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from sandbox.graph_model import GraphError, Mailbox, Message, graph_timestamp, utcnow

log = logging.getLogger(__name__)

CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
MAX_CLIENT_STATE = 128
VALIDATION_TIMEOUT_S = 10.0
# users/{u}/mailFolders('inbox')/messages, users/{u}/mailFolders/inbox/messages, users('{u}')/..., leading '/'.
_RESOURCE = re.compile(
    r"^/?users(?:\('(?P<u1>[^']+)'\)|/(?P<u2>[^/]+))"
    r"/mailFolders(?:\('(?P<f1>[^']+)'\)|/(?P<f2>[^/]+))/messages$",
    re.IGNORECASE,
)


@dataclass
class Subscription:
    resource: str
    mailbox_id: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    expiration: datetime
    client_state: str | None
    application_id: str
    latest_tls: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_timestamp(self.expiration),
            "creatorId": self.application_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": self.latest_tls,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
            "notificationContentType": None,
        }


def _invalid(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)


def parse_expiration(raw: Any, max_minutes: int) -> datetime:
    if not isinstance(raw, str):
        raise _invalid("expirationDateTime is a required property for subscription creation.")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _invalid(f"Cannot convert the literal '{raw}' to Edm.DateTimeOffset.") from exc
    if moment.tzinfo is None:
        raise _invalid("expirationDateTime must carry a time zone offset.")
    now = utcnow()
    if moment <= now:
        raise _invalid("Subscription expiration must be in the future.")
    if moment > now + timedelta(minutes=max_minutes):
        raise _invalid(f"Subscription expiration can only be {max_minutes} minutes in the future.")
    return moment


def resource_mailbox_key(resource: Any) -> str:
    """The user id or UPN named by an inbox-messages resource; other resources are not supported."""
    match = _RESOURCE.match(resource) if isinstance(resource, str) else None
    if match is None:
        raise _invalid(f"Resource '{resource}' is not supported by the stand-in (inbox messages only).")
    folder = match.group("f1") or match.group("f2")
    if folder.lower() != "inbox":
        raise _invalid(f"Resource '{resource}' is not supported by the stand-in (inbox messages only).")
    return str(match.group("u1") or match.group("u2"))


def parse_subscription_request(
    body: Any, mailbox: Mailbox | None, max_minutes: int, application_id: str
) -> Subscription:
    """Check a POST /subscriptions body like Graph does, before the handshake."""
    if not isinstance(body, dict):
        raise GraphError(400, "ErrorInvalidRequest", "Empty Payload. JSON content expected.")
    for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
        if not body.get(required):
            raise _invalid(f"{required} is a required property for subscription creation.")
    change_types = tuple(part.strip() for part in str(body["changeType"]).split(","))
    if not all(part in CHANGE_TYPES for part in change_types):
        raise _invalid(f"Invalid 'changeType' attribute: '{body['changeType']}'.")
    client_state = body.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE):
        raise _invalid(f"clientState must be a string of at most {MAX_CLIENT_STATE} characters.")
    for key in ("notificationUrl", "lifecycleNotificationUrl"):
        url = body.get(key)
        if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
            raise _invalid(f"Invalid {key}: '{url}'.")
    resource_mailbox_key(body["resource"])
    if mailbox is None:
        raise GraphError(404, "ResourceNotFound", "Resource not found for the segment 'users'.")
    return Subscription(
        resource=body["resource"],
        mailbox_id=mailbox.user_id,
        change_types=change_types,
        notification_url=body["notificationUrl"],
        lifecycle_url=body.get("lifecycleNotificationUrl"),
        expiration=parse_expiration(body["expirationDateTime"], max_minutes),
        client_state=client_state,
        application_id=application_id,
        latest_tls=body.get("latestSupportedTlsVersion") or "v1_2",
    )


def validation_token() -> str:
    """A token like Graph's: it contains characters that must be URL-encoded and decoded by the receiver."""
    return (
        f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()} "
        f"<&+?={secrets.token_urlsafe(6)}>"
    )


def change_notification(
    sub: Subscription, mailbox: Mailbox, message: Message, change: str, tenant: str
) -> dict[str, Any]:
    resource = f"Users/{mailbox.user_id}/Messages/{message.id}"
    return {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": graph_timestamp(sub.expiration),
        "changeType": change,
        "resource": resource,
        "clientState": sub.client_state,
        "tenantId": tenant,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "@odata.etag": message.etag,
            "id": message.id,
        },
    }


def lifecycle_notification(sub: Subscription, event: str, tenant: str) -> dict[str, Any]:
    return {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": graph_timestamp(sub.expiration),
        "tenantId": tenant,
        "clientState": sub.client_state,
        "lifecycleEvent": event,
    }


@dataclass
class Delivery:
    """One notification POST as the stand-in sent it (for assertions)."""

    url: str
    payload: dict[str, Any]
    attempts: int = 0
    status: int | None = None
    delivered: bool = False


class Notifier:
    """Posts handshakes and notifications with an aiohttp client session owned by the stand-in."""

    def __init__(self, ssl_context: ssl.SSLContext | None, retry_delays: tuple[float, ...], timeout_s: float) -> None:
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._retry_delays = retry_delays
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.deliveries: list[Delivery] = []

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("notifier not started")
        return self._session

    async def handshake(self, url: str) -> None:
        """Graph's validation request: 200, text/plain and the exact decoded token within 10 s."""
        token = validation_token()
        try:
            async with self._client().post(
                url,
                params={"validationToken": token},
                ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=VALIDATION_TIMEOUT_S),
            ) as response:
                text = await response.text()
                content_type = response.content_type
                status = response.status
        except TimeoutError as exc:
            raise _invalid("Subscription validation request timed out.") from exc
        except aiohttp.ClientError as exc:
            raise _invalid(
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                "validation request."
            ) from exc
        if status != 200:
            raise _invalid(
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                "validation request."
            )
        if content_type != "text/plain" or text != token:
            raise _invalid(
                "Subscription validation request failed. Response must exactly match validationToken query parameter."
            )

    async def deliver(self, url: str, payload: dict[str, Any]) -> Delivery:
        """POST one notification batch; retry on errors, non-2xx and timeouts, then give up (Graph drops it)."""
        delivery = Delivery(url=url, payload=payload)
        self.deliveries.append(delivery)
        for delay in (0.0, *self._retry_delays):
            if delay:
                await asyncio.sleep(delay)
            delivery.attempts += 1
            try:
                async with self._client().post(url, json=payload, ssl=self._ssl, timeout=self._timeout) as response:
                    delivery.status = response.status
                    if 200 <= response.status < 300:
                        delivery.delivered = True
                        return delivery
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.info("notification to %s failed: %s", url, type(exc).__name__)
                delivery.status = None
        log.warning("notification to %s dropped after %d attempts", url, delivery.attempts)
        return delivery
