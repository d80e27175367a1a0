"""The caller cache: Outlook contacts of the pool mailboxes and the directory's users, by phone number.

A background refresh pulls what changed from Graph by delta query (``contacts/delta`` per mailbox, ``users/delta``)
into the ``caller_entries`` table; every instance then rebuilds its in-memory :class:`CallerIndex` from that table.
Cards read only the index, so a card never waits on Graph, and a Graph outage leaves the last known names in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from bot.config import Settings
from bot.core.jobs import failure_status
from bot.core.numbers import normalise_number
from bot.core.ports import CallerStore, LeaseRepository, PeopleReader
from bot.core.values import DeltaExpired, PeoplePage, Person
from bot.domain.callers import (
    DIRECTORY_SOURCE_KEY,
    CallerEntry,
    CallerIdentity,
    CallerIndex,
    CallerSource,
    contacts_source_key,
    identify,
)
from bot.domain.cases import Case
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

NUMBER_REGION = "DE"
"""National numbers in contacts (``0221 4710355``) are read as German, like the PBX mails."""
LEASE_NAME = "caller-cache-refresh"
NAME_LIMIT = 200


def entries_of(source: str, person: Person) -> list[CallerEntry]:
    """The cache rows of one person: one per distinct number that normalises to E.164."""
    name = person.display_name.strip()[:NAME_LIMIT]
    if not name:
        return []
    detail = (person.detail or "").strip()[:NAME_LIMIT] or None
    numbers = {n for n in (normalise_number(raw, NUMBER_REGION) for raw in person.phones if raw) if n}
    return [CallerEntry(source, person.id, number, name, detail) for number in sorted(numbers)]


def _entries(source: str, people: Sequence[Person]) -> list[CallerEntry]:
    return [entry for person in people for entry in entries_of(source, person)]


class CallerDirectory:
    """Keeps the caller cache fresh and answers "who is this?" for cards from memory.

    ``on_numbers_changed`` is told which numbers got other entries after a refresh (not at the first load), so that
    the cards of those callers' active cases show the new name.
    """

    def __init__(
        self,
        settings: Settings,
        cache: CallerStore,
        reader: PeopleReader,
        leases: LeaseRepository,
        instance_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_numbers_changed: Callable[[set[str]], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._sources = [CallerSource(source) for source in settings.caller_sources]
        self._cache = cache
        self._reader = reader
        self._leases = leases
        self._instance_id = instance_id
        self._clock = clock
        self._index = CallerIndex()
        self._loaded = False
        self._on_numbers_changed = on_numbers_changed
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def graph_sources(self) -> list[CallerSource]:
        return [source for source in self._sources if source is not CallerSource.PBX]

    @property
    def index(self) -> CallerIndex:
        return self._index

    def identify(self, case: Case) -> CallerIdentity | None:
        """The identity a card shows; None without a Graph source (the card then shows the mail's name, as it always
        did)."""
        if not self.graph_sources:
            return None
        line = self._settings.lines_by_id.get(case.line_id)
        return identify(
            self._index,
            self._sources,
            number=case.caller,
            mailbox=line.mailbox if line else "",
            pbx_name=case.caller_name,
        )

    def name_for_number(self, number: str) -> str | None:
        """A name for a number outside any one case (the stats card's repeat callers): contacts, then directory."""
        for line in self._settings.pool_lines:
            found = identify(self._index, self.graph_sources, number=number, mailbox=line.mailbox, pbx_name=None)
            if found.name is not None:
                return found.name
        return None

    # Refresh ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.graph_sources:
            self._tasks = [asyncio.create_task(self._refresh_forever(), name="caller-cache")]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def _refresh_forever(self) -> None:
        interval = timedelta(minutes=self._settings.caller_refresh_minutes)
        while True:
            try:
                await self.refresh(interval)
            except Exception:
                log.exception("refreshing the caller cache failed; the last known names stay in use")
            await asyncio.sleep(interval.total_seconds())

    async def refresh(self, lease_for: timedelta = timedelta(minutes=30)) -> None:
        """Pull changes from Graph (one instance at a time), then reload this instance's index from the cache."""
        if await self._leases.try_acquire(LEASE_NAME, self._instance_id, lease_for, self._clock()):
            try:
                await self.pull()
            finally:
                await self._leases.release(LEASE_NAME, self._instance_id)
        await self.reload()

    async def reload(self) -> None:
        """Rebuild the index from the cache; the cards of active cases whose caller's entries changed are refreshed."""
        previous, self._index = self._index, CallerIndex(await self._cache.entries())
        changed = previous.numbers_changed(self._index) if self._loaded else set()
        self._loaded = True
        if changed and self._on_numbers_changed is not None:
            await self._on_numbers_changed(changed)

    async def pull(self) -> None:
        """One delta round per configured source; a failing source does not hold up the others."""
        jobs: list[tuple[str, Callable[[str | None], AsyncIterator[PeoplePage]]]] = []
        if CallerSource.CONTACTS in self._sources:
            for line in self._settings.pool_lines:
                jobs.append(
                    (
                        contacts_source_key(line.mailbox),
                        lambda link, mailbox=line.mailbox: self._reader.contacts_delta(mailbox, link),  # type: ignore[misc]
                    )
                )
        if CallerSource.DIRECTORY in self._sources:
            jobs.append((DIRECTORY_SOURCE_KEY, self._reader.users_delta))
        for source, pages in jobs:
            try:
                await self._pull_source(source, pages)
            except Exception as exc:
                status = failure_status(exc)
                if status == 403:
                    log.warning("caller source %s: Graph refused access (403); run doctor for the permission", source)
                else:
                    log.warning("caller source %s could not be refreshed: %s", source, type(exc).__name__)

    async def _pull_source(self, source: str, pages: Callable[[str | None], AsyncIterator[PeoplePage]]) -> None:
        link = await self._cache.delta_link(source)
        try:
            await self._apply_pages(source, pages(link), full=link is None)
        except DeltaExpired:
            log.info("caller source %s: delta state expired, reading everything again", source)
            await self._apply_pages(source, pages(None), full=True)

    async def _apply_pages(self, source: str, pages: AsyncIterator[PeoplePage], *, full: bool) -> None:
        if full:
            # A complete listing replaces the source at once, so people deleted meanwhile disappear too.
            people: list[Person] = []
            final: str | None = None
            async for page in pages:
                people.extend(page.people)
                final = page.delta_link or final
            await self._cache.apply(source, [], _entries(source, people), final, self._clock(), replace_all=True)
            log.info("caller source %s: %d people read", source, len(people))
            return
        async for page in pages:
            changed = [*page.removed_ids, *(person.id for person in page.people)]
            await self._cache.apply(source, changed, _entries(source, page.people), page.delta_link, self._clock())
