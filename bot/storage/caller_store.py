"""The caller cache: names and numbers from the pool mailboxes' contacts and the directory, per source, in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain.callers import (
    CallerEntry,
)
from bot.storage.database import Database


class CallerCache:
    """The ``caller_entries`` and ``caller_sync`` tables."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def delta_link(self, source: str) -> str | None:
        async with self._db.transaction() as cursor:
            await cursor.execute("SELECT delta_link FROM caller_sync WHERE source = ?", (source,))
            row = await cursor.fetchone()
        return row["delta_link"] if row else None

    async def apply(
        self,
        source: str,
        entry_ids: Sequence[str],
        entries: Sequence[CallerEntry],
        delta_link: str | None,
        now: datetime,
        *,
        replace_all: bool = False,
    ) -> None:
        """Write one delta round (or, with ``replace_all``, a complete listing) in one transaction: the rows of
        ``entry_ids`` (people removed or changed) give way to ``entries``."""
        async with self._db.transaction() as cursor:
            if replace_all:
                await cursor.execute("DELETE FROM caller_entries WHERE source = ?", (source,))
            for entry_id in entry_ids:
                if not replace_all:
                    await cursor.execute(
                        "DELETE FROM caller_entries WHERE source = ? AND entry_id = ?", (source, entry_id)
                    )
            for entry in entries:
                await cursor.execute(
                    "INSERT INTO caller_entries (source, entry_id, number, display_name, detail) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, entry_id, number) DO UPDATE SET "
                    "display_name = excluded.display_name, detail = excluded.detail",
                    (entry.source, entry.entry_id, entry.number, entry.display_name, entry.detail),
                )
            if delta_link is not None:
                await cursor.execute(
                    "INSERT INTO caller_sync (source, delta_link, synced_at) VALUES (?, ?, ?) ON CONFLICT (source) "
                    "DO UPDATE SET delta_link = excluded.delta_link, synced_at = excluded.synced_at",
                    (source, delta_link, now),
                )

    async def forget(self, source: str) -> None:
        async with self._db.transaction() as cursor:
            await cursor.execute("DELETE FROM caller_entries WHERE source = ?", (source,))
            await cursor.execute("DELETE FROM caller_sync WHERE source = ?", (source,))

    async def entries(self) -> list[CallerEntry]:
        async with self._db.transaction() as cursor:
            await cursor.execute("SELECT source, entry_id, number, display_name, detail FROM caller_entries")
            rows = await cursor.fetchall()
        return [
            CallerEntry(row["source"], row["entry_id"], row["number"], row["display_name"], row["detail"])
            for row in rows
        ]
