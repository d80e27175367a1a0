"""What tests read back from the SQL store that the bot itself never asks for (kept out of the product's ports)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.ports import MailState, Store
from bot.storage.database import require_utc, to_utc
from bot.storage.factory import sql_database
from bot.storage.sql_store import _mail_from_row


@dataclass(frozen=True, slots=True)
class SentReminder:
    case_id: str
    episode: str
    step: int
    kind: str
    line_id: str
    due_at: datetime
    sent_at: datetime


async def mails_of_case(store: Store, case_id: str) -> list[MailState]:
    async with sql_database(store).read() as cursor:
        await cursor.execute("SELECT * FROM mails WHERE case_id = ? ORDER BY mailbox, message_id", (case_id,))
        return [_mail_from_row(row) for row in await cursor.fetchall()]


async def audit_entries(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    async with sql_database(store).read() as cursor:
        await cursor.execute(
            "SELECT at, action, actor, cases, events FROM privacy_audit ORDER BY id DESC LIMIT ?", (limit,)
        )
        rows = await cursor.fetchall()
    return [
        {
            "at": require_utc(row["at"]),
            "action": row["action"],
            "actor": row["actor"],
            "cases": int(row["cases"]),
            "events": int(row["events"]),
        }
        for row in rows
    ]


async def sent_reminders(store: Store, case_id: str | None = None) -> list[SentReminder]:
    where, params = ("WHERE case_id = ?", [case_id]) if case_id else ("", [])
    async with sql_database(store).read() as cursor:
        await cursor.execute(f"SELECT * FROM reminders_sent {where} ORDER BY sent_at, case_id, step", params)
        rows = await cursor.fetchall()
    return [
        SentReminder(
            row["case_id"],
            row["episode"],
            int(row["step"]),
            row["kind"],
            row["line_id"],
            require_utc(row["due_at"]),
            require_utc(row["sent_at"]),
        )
        for row in rows
    ]


async def next_due(store: Store, line_id: str) -> datetime | None:
    async with sql_database(store).read() as cursor:
        await cursor.execute(
            "SELECT MIN(due_at) AS due_at FROM reminder_schedule WHERE line_id = ? AND due_at IS NOT NULL", (line_id,)
        )
        row = await cursor.fetchone()
    return to_utc(row["due_at"]) if row else None
