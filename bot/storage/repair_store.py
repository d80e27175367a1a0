"""The repair sweep's queries (:mod:`bot.core.repair`): what a case's state requires in Teams and Outlook but is neither
there nor on its way.

Each query walks the cases changed since a horizon, newest first, through the ``cases_by_update`` index, and
skips what a pending or running job already does (by its dedupe key: the unique index of pending keys, and the
few leased jobs).
"""

from __future__ import annotations

from datetime import datetime

from bot.core.ports import MailToRepair
from bot.storage.database import Database

_NO_CARD_JOB = (
    "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = 'card:' || c.id AND j.state = 'pending') "
    "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.state = 'leased' AND j.dedupe_key = 'card:' || c.id)"
)
_NO_FLAG_JOB = (
    "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = 'flag:' || m.mailbox || ':' || m.message_id "
    "AND j.state = 'pending') AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.state = 'leased' "
    "AND j.dedupe_key = 'flag:' || m.mailbox || ':' || m.message_id)"
)
_KNOWN_FLAG = "COALESCE(m.written_flag, m.observed_flag, '')"
"""What the bot last wrote (or took in from Outlook), else what it last read: a flag the bot never wrote shows."""
_FLAG_DISAGREES = (
    f"((c.state = 'claimed' AND {_KNOWN_FLAG} <> 'flagged') OR (c.state = 'done' AND {_KNOWN_FLAG} <> 'complete') "
    f"OR (c.state = 'open' AND {_KNOWN_FLAG} = 'complete'))"
)
""":func:`bot.core.sync.flag_agrees` in SQL: claimed → flagged, done → complete, open → not complete."""


class SqlRepairQueries:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def _case_ids(self, sql: str, since: datetime, limit: int) -> list[str]:
        async with self._db.read() as cursor:
            await cursor.execute(sql, (since, limit))
            return [str(row["id"]) for row in await cursor.fetchall()]

    async def cases_without_card(self, since: datetime, limit: int) -> list[str]:
        """Cases of linked lines without a card: active ones, and done ones that came after the line was linked
        (linking posts the cards of the active cases only)."""
        return await self._case_ids(
            "SELECT c.id FROM cases c JOIN channel_links l ON l.line_id = c.line_id "  # noqa: S608 - fixed fragments
            "WHERE c.updated_at >= ? AND (c.state <> 'done' OR c.created_at >= l.linked_at) "
            f"AND NOT EXISTS (SELECT 1 FROM cards k WHERE k.case_id = c.id) AND {_NO_CARD_JOB} "
            "ORDER BY c.updated_at DESC, c.id LIMIT ?",
            since,
            limit,
        )

    async def cases_with_stale_card(self, since: datetime, limit: int) -> list[str]:
        """Cases of linked lines whose card shows an older version than the case's."""
        return await self._case_ids(
            "SELECT c.id FROM cases c JOIN cards k ON k.case_id = c.id "  # noqa: S608 - fixed fragments
            "JOIN channel_links l ON l.line_id = c.line_id "
            f"WHERE c.updated_at >= ? AND k.posted_version < c.version AND {_NO_CARD_JOB} "
            "ORDER BY c.updated_at DESC, c.id LIMIT ?",
            since,
            limit,
        )

    async def mails_with_wrong_flag(self, since: datetime, limit: int) -> list[MailToRepair]:
        """Mails whose known flag disagrees with their case's state."""
        async with self._db.read() as cursor:
            await cursor.execute(
                "SELECT m.mailbox, m.message_id, m.case_id FROM cases c JOIN mails m ON m.case_id = c.id "  # noqa: S608
                f"WHERE c.updated_at >= ? AND {_FLAG_DISAGREES} AND {_NO_FLAG_JOB} "
                "ORDER BY c.updated_at DESC, m.mailbox, m.message_id LIMIT ?",
                (since, limit),
            )
            rows = await cursor.fetchall()
        return [MailToRepair(row["mailbox"], row["message_id"], row["case_id"]) for row in rows]
