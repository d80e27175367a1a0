"""Personal data's way out of the database: voicemail links, retention purges and erasure of a caller's number.

A purge or an erasure deletes a case with everything that names it (events, mail references, the card reference,
voicemail links, its pending card and thread jobs) and, in the same transaction, enqueues the job that turns its
Teams card into a "deleted" card: the card never outlives its data by a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.effects import ERASED_CARD
from bot.core.ports import (
    ErasedCard,
    ErasureOutcome,
    LinkRedemption,
    PrivacyRepository,
    VoicemailGrant,
)
from bot.storage import stats_rollups
from bot.storage.database import Cursor, Database, require_utc, to_json


def mail_hash(mailbox: str, message_id: str) -> str:
    """What is kept of a deleted case's mail: enough to recognise it, nothing to find it by."""
    return hashlib.sha256(f"{mailbox.lower()}\n{message_id}".encode()).hexdigest()


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


@dataclass(frozen=True, slots=True)
class _Doomed:
    case_id: str
    line_id: str


class SqlPrivacyRepository(PrivacyRepository):
    def __init__(self, database: Database) -> None:
        self._db = database

    # Voicemail links -----------------------------------------------------------------------------------------

    async def issue_voicemail_link(self, grant: VoicemailGrant, token_hash: str, now: datetime) -> None:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO voicemail_links (token_hash, case_id, source_id, user_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, grant.case_id, grant.source_id, grant.user_id, now, grant.expires_at),
            )

    async def redeem_voicemail_link(self, token_hash: str, now: datetime) -> LinkRedemption:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "UPDATE voicemail_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? "
                "RETURNING case_id, source_id, user_id, expires_at",
                (now, token_hash, now),
            )
            row = await cursor.fetchone()
            if row is not None:
                grant = VoicemailGrant(row["case_id"], row["source_id"], row["user_id"], require_utc(row["expires_at"]))
                return LinkRedemption(grant=grant)
            await cursor.execute("SELECT used_at FROM voicemail_links WHERE token_hash = ?", (token_hash,))
            known = await cursor.fetchone()
        if known is None:
            return LinkRedemption(refusal="unknown link")
        return LinkRedemption(refusal="link already used" if known["used_at"] is not None else "link expired")

    # Retention and erasure -------------------------------------------------------------------------------------

    async def purge_done_cases(self, done_before: datetime, now: datetime, limit: int = 200) -> ErasureOutcome:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "SELECT id, line_id FROM cases WHERE state = 'done' AND done_at < ? ORDER BY done_at LIMIT ?",
                (done_before, limit),
            )
            doomed = [_Doomed(row["id"], row["line_id"]) for row in await cursor.fetchall()]
            return await self._delete(cursor, doomed, now, reason="expired")

    async def erase_caller(self, number: str, now: datetime, actor: str) -> ErasureOutcome:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "SELECT id, line_id FROM cases WHERE caller = ? OR caller_key = ? "
                "OR id IN (SELECT case_id FROM events WHERE caller = ?) ORDER BY id",
                (number, number, number),
            )
            doomed = [_Doomed(row["id"], row["line_id"]) for row in await cursor.fetchall()]
            outcome = await self._delete(cursor, doomed, now, reason="erased")
            await self._audit(cursor, now, "erase", actor, outcome)
            return outcome

    async def record_purge(self, now: datetime, outcome: ErasureOutcome) -> None:
        async with self._db.transaction() as cursor:
            await self._audit(cursor, now, "retention", "retention", outcome)

    async def is_forgotten(self, mailbox: str, message_id: str) -> bool:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "SELECT 1 AS found FROM forgotten_mails WHERE mail_hash = ?", (mail_hash(mailbox, message_id),)
            )
            return await cursor.fetchone() is not None

    async def purge_finished_jobs(self, finished_before: datetime) -> int:
        async with self._db.transaction() as cursor:
            return await cursor.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'dead') AND updated_at < ?", (finished_before,)
            )

    async def purge_voicemail_links(self, expired_before: datetime) -> int:
        async with self._db.transaction() as cursor:
            return await cursor.execute("DELETE FROM voicemail_links WHERE expires_at < ?", (expired_before,))

    async def _audit(self, cursor: Cursor, now: datetime, action: str, actor: str, outcome: ErasureOutcome) -> None:
        await cursor.execute(
            "INSERT INTO privacy_audit (at, action, actor, cases, events) VALUES (?, ?, ?, ?, ?)",
            (now, action, actor, outcome.cases, outcome.events),
        )

    async def _delete(self, cursor: Cursor, doomed: list[_Doomed], now: datetime, reason: str) -> ErasureOutcome:
        if not doomed:
            return ErasureOutcome(cases=0, events=0, cards=())
        ids = [case.case_id for case in doomed]
        marks = _placeholders(ids)
        await cursor.execute(f"SELECT * FROM cards WHERE case_id IN ({marks})", ids)  # noqa: S608 - placeholders
        cards = {row["case_id"]: row for row in await cursor.fetchall()}
        await cursor.execute(f"SELECT COUNT(*) AS n FROM events WHERE case_id IN ({marks})", ids)  # noqa: S608
        counted = await cursor.fetchone()
        await cursor.execute(f"SELECT mailbox, message_id FROM mails WHERE case_id IN ({marks})", ids)  # noqa: S608
        mails = [(row["mailbox"], row["message_id"]) for row in await cursor.fetchall()]
        flag_keys = [f"flag:{mailbox}:{message_id}" for mailbox, message_id in mails]
        for mailbox, message_id in mails:
            await cursor.execute(
                "INSERT INTO forgotten_mails (mail_hash, forgotten_at) VALUES (?, ?) "
                "ON CONFLICT (mail_hash) DO NOTHING",
                (mail_hash(mailbox, message_id), now),
            )
        await stats_rollups.forget_cases(cursor, self._db.dialect, ids)
        for table in ("events", "mails", "cards", "card_posts", "voicemail_links", "contacts"):
            await cursor.execute(f"DELETE FROM {table} WHERE case_id IN ({marks})", ids)  # noqa: S608 - fixed names
        # Pending card, thread and flag jobs of these cases have nothing left to do.
        keys = [f"card:{case_id}" for case_id in ids] + flag_keys
        await cursor.execute(
            f"DELETE FROM jobs WHERE state <> 'leased' AND dedupe_key IN ({_placeholders(keys)})",  # noqa: S608
            keys,
        )
        for case_id in ids:
            await cursor.execute(
                "DELETE FROM jobs WHERE state <> 'leased' AND dedupe_key LIKE ?", (f"reply:{case_id}:%",)
            )
        # A later case of the caller keeps its note "last done by ... on ..." (a colleague and a date, no caller data).
        await cursor.execute(f"DELETE FROM cases WHERE id IN ({marks})", ids)  # noqa: S608
        erased = []
        for case in doomed:
            card = cards.get(case.case_id)
            if card is None:
                continue
            erased.append(ErasedCard(case.line_id, card["conversation_id"], card["activity_id"]))
            payload = {
                "line_id": case.line_id,
                "conversation_id": card["conversation_id"],
                "activity_id": card["activity_id"],
                "reason": reason,
            }
            await cursor.execute(
                "INSERT INTO jobs (kind, payload, state, attempts, dedupe_key, run_at, created_at, updated_at) "
                "VALUES (?, ?, 'pending', 0, NULL, ?, ?, ?)",
                (ERASED_CARD, to_json(payload), now, now, now),
            )
        return ErasureOutcome(cases=len(ids), events=int(counted["n"]) if counted else 0, cards=tuple(erased))
