"""Reads the people the caller cache knows through msgraph-sdk: a pool mailbox's Outlook contacts and the
directory's users, both by delta query so that a refresh fetches only what changed.

Permissions (application): ``Contacts.Read`` for the mailboxes' contacts (scoped to the pool mailboxes like
Mail.ReadWrite), ``User.Read.All`` for the directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.user import User
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder as UsersDeltaRequestBuilder
from msgraph.generated.users.item.contacts.delta.delta_request_builder import (
    DeltaRequestBuilder as ContactsDeltaRequestBuilder,
)

from bot.core.values import DeltaExpired, PeoplePage, Person
from bot.graph.errors import graph_status, raise_mapped

CONTACT_FIELDS = ["id", "displayName", "companyName", "department", "businessPhones", "homePhones", "mobilePhone"]
USER_FIELDS = ["id", "displayName", "department", "companyName", "businessPhones", "mobilePhone"]
PAGE_SIZE = 200


def _removed(item: Any) -> bool:
    return "@removed" in (item.additional_data or {})


def person_from_contact(contact: Contact) -> Person:
    phones = [*(contact.business_phones or []), *(contact.home_phones or []), contact.mobile_phone or ""]
    return Person(
        id=contact.id or "",
        display_name=contact.display_name or "",
        detail=contact.company_name or contact.department,
        phones=tuple(phone for phone in phones if phone),
    )


def person_from_user(user: User) -> Person:
    phones = [*(user.business_phones or []), user.mobile_phone or ""]
    return Person(
        id=user.id or "",
        display_name=user.display_name or "",
        detail=user.department or user.company_name,
        phones=tuple(phone for phone in phones if phone),
    )


class GraphPeople:
    """The :class:`bot.core.callers.PeopleReader` over Graph."""

    def __init__(self, client: GraphServiceClient, page_size: int = PAGE_SIZE) -> None:
        self._client = client
        self._page_size = page_size

    def contacts_delta(self, mailbox: str, delta_link: str | None) -> AsyncIterator[PeoplePage]:
        builder = self._client.users.by_user_id(mailbox).contacts.delta
        query = ContactsDeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=CONTACT_FIELDS)
        return _pages(
            lambda url: builder.with_url(url) if url else builder,
            query,
            delta_link,
            person_from_contact,
            mailbox,
            self._page_size,
        )

    def users_delta(self, delta_link: str | None) -> AsyncIterator[PeoplePage]:
        builder = self._client.users.delta
        query = UsersDeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=USER_FIELDS)
        return _pages(
            lambda url: builder.with_url(url) if url else builder,
            query,
            delta_link,
            person_from_user,
            "directory",
            self._page_size,
        )


async def _pages(
    builder_for: Callable[[str | None], Any],
    query: Any,
    delta_link: str | None,
    to_person: Callable[[Any], Person],
    what: str,
    page_size: int,
) -> AsyncIterator[PeoplePage]:
    """Follow nextLinks to the deltaLink by hand (msgraph-sdk's PageIterator loses the deltaLink)."""
    next_url = delta_link
    while True:
        config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=None if next_url else query)
        config.headers.add("Prefer", f"odata.maxpagesize={page_size}")
        request: Callable[..., Awaitable[Any]] = builder_for(next_url).get
        try:
            response = await request(config)
        except Exception as exc:
            if graph_status(exc) == 410:
                raise DeltaExpired(f"Graph no longer knows the delta state of {what}") from exc
            raise_mapped(exc)
        values = list(response.value or []) if response else []
        yield PeoplePage(
            people=[to_person(item) for item in values if item.id and not _removed(item)],
            removed_ids=[item.id for item in values if item.id and _removed(item)],
            delta_link=response.odata_delta_link if response else None,
        )
        next_url = response.odata_next_link if response else None
        if not next_url:
            return
