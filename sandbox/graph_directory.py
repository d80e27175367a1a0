"""People in the Graph stand-in: each mailbox's Outlook contacts and the directory's users, with delta queries.

Modelled on Graph v1.0: ``GET /users/{id}/contacts``, ``GET /users/{id}/contacts/delta``, ``GET /users/delta``.
A delta round returns every selected property of each changed item (Graph's default without
``Prefer: return=minimal``), removed items as ``{"id", "@removed": {"reason"}}``, pages follow ``@odata.nextLink``
and the last page carries ``@odata.deltaLink``; an unknown or forgotten token answers 410 ``SyncStateNotFound``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox.graph_model import GraphError, SyncState, apply_select, parse_select

CONTACT_PROPERTIES = (
    "id",
    "displayName",
    "givenName",
    "surname",
    "companyName",
    "department",
    "jobTitle",
    "businessPhones",
    "homePhones",
    "mobilePhone",
    "emailAddresses",
)
USER_PROPERTIES = (
    "id",
    "displayName",
    "userPrincipalName",
    "mail",
    "department",
    "companyName",
    "jobTitle",
    "businessPhones",
    "mobilePhone",
)
DIRECTORY_KEY = "users"
_LIST_DEFAULTS: dict[str, list[Any]] = {"businessPhones": [], "homePhones": [], "emailAddresses": []}


def contacts_key(mailbox_id: str) -> str:
    return f"contacts:{mailbox_id}"


@dataclass
class PeopleCollection:
    """Items with a change sequence, so that a delta token can ask what changed after its watermark."""

    odata_type: str
    properties: tuple[str, ...]
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed_at: dict[str, int] = field(default_factory=dict)
    removed_at: dict[str, int] = field(default_factory=dict)
    sequence: int = 0

    def upsert(self, data: dict[str, Any]) -> dict[str, Any]:
        unknown = set(data) - set(self.properties)
        if unknown:
            raise GraphError(400, "BadRequest", f"Unknown properties for {self.odata_type}: {sorted(unknown)}")
        item_id = str(data.get("id") or uuid.uuid4().hex)
        merged = {**_LIST_DEFAULTS, **self.items.get(item_id, {}), **data, "id": item_id}
        self.sequence += 1
        self.items[item_id] = merged
        self.changed_at[item_id] = self.sequence
        self.removed_at.pop(item_id, None)
        return merged

    def remove(self, item_id: str) -> None:
        if self.items.pop(item_id, None) is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        self.sequence += 1
        self.changed_at.pop(item_id, None)
        self.removed_at[item_id] = self.sequence

    def to_graph(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"@odata.type": self.odata_type, **item}


class PeopleDirectory:
    """The contacts of every mailbox and the directory's users, and the server side of their delta tokens."""

    def __init__(self) -> None:
        self.collections: dict[str, PeopleCollection] = {}
        self._states: dict[str, SyncState] = {}

    def collection(self, key: str) -> PeopleCollection:
        if key not in self.collections:
            if key == DIRECTORY_KEY:
                self.collections[key] = PeopleCollection("#microsoft.graph.user", USER_PROPERTIES)
            else:
                self.collections[key] = PeopleCollection("#microsoft.graph.contact", CONTACT_PROPERTIES)
        return self.collections[key]

    def reset(self) -> None:
        self.collections.clear()
        self._states.clear()

    def expire_tokens(self) -> None:
        self._states.clear()

    def select(self, key: str, raw: str | None) -> tuple[str, ...] | None:
        collection = self.collection(key)
        return parse_select(raw, collection.properties, collection.odata_type.removeprefix("#"))

    def list(self, key: str, select: tuple[str, ...] | None) -> list[dict[str, Any]]:
        collection = self.collection(key)
        return [apply_select(collection.to_graph(item), select) for item in collection.items.values()]

    def delta(
        self, key: str, query: dict[str, str], select: tuple[str, ...] | None, page_size: int, link_base: str
    ) -> dict[str, Any]:
        """One page of a delta round: ``link_base`` is the delta URL without query."""
        collection = self.collection(key)
        token = query.get("$deltatoken") or query.get("$skiptoken")
        if token is not None:
            state = self._states.get(token)
            if state is None or state.mailbox_id != key:
                raise GraphError(
                    410,
                    "SyncStateNotFound",
                    "The sync state generation is not found. The delta token is expired and data must be "
                    "synchronized again.",
                )
            if "$deltatoken" in query:
                changed = sorted(
                    (i for i, seq in collection.changed_at.items() if seq > state.watermark),
                    key=collection.changed_at.__getitem__,
                )
                removed = [i for i, seq in collection.removed_at.items() if seq > state.watermark]
                state = SyncState(key, collection.sequence, state.select, changed, removed)
        else:
            state = SyncState(key, collection.sequence, select, list(collection.items), [])
        values: list[dict[str, Any]] = []
        while state.pending_ids and len(values) < page_size:
            item = collection.items.get(state.pending_ids.pop(0))
            if item is not None:
                values.append(apply_select(collection.to_graph(item), state.select))
        while state.pending_removed and len(values) < page_size:
            values.append(
                {
                    "@odata.type": collection.odata_type,
                    "id": state.pending_removed.pop(0),
                    "@removed": {"reason": "deleted"},
                }
            )
        next_token = uuid.uuid4().hex + uuid.uuid4().hex
        body: dict[str, Any] = {"value": values}
        if state.pending_ids or state.pending_removed:
            self._states[next_token] = state
            body["@odata.nextLink"] = f"{link_base}?$skiptoken={next_token}"
        else:
            self._states[next_token] = SyncState(key, state.watermark, state.select)
            body["@odata.deltaLink"] = f"{link_base}?$deltatoken={next_token}"
        return body
