"""Graph change-notification payloads, validated with pydantic."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LifecycleEvent = Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]


class ResourceData(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    odata_type: str | None = Field(default=None, alias="@odata.type")
    odata_id: str | None = Field(default=None, alias="@odata.id")
    etag: str | None = Field(default=None, alias="@odata.etag")
    id: str = Field(min_length=1, max_length=512)


class Notification(BaseModel):
    model_config = ConfigDict(extra="ignore")

    subscriptionId: str = Field(min_length=1, max_length=128)
    subscriptionExpirationDateTime: datetime | None = None
    changeType: Literal["created", "updated", "deleted"] | None = None
    resource: str | None = Field(default=None, max_length=1024)
    clientState: str | None = Field(default=None, max_length=128)
    tenantId: str | None = None
    resourceData: ResourceData | None = None
    lifecycleEvent: LifecycleEvent | None = None

    def dedupe_key(self) -> str:
        """Graph may deliver one change twice; identical pending notifications collapse into one job."""
        if self.lifecycleEvent:
            return f"lifecycle:{self.subscriptionId}:{self.lifecycleEvent}"
        resource_id = self.resourceData.id if self.resourceData else self.resource
        return f"change:{self.subscriptionId}:{resource_id}:{self.changeType}"


class NotificationCollection(BaseModel):
    value: list[Notification] = Field(min_length=1, max_length=1000)
