"""The repositories and the job queue over :class:`~bot.storage.database.Database`, one SQL text for both engines."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, Sequence, Sized
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.effects import Effect, EffectsOf, RefreshCard, WriteCaseFlags, WriteFlag, outbox_row
from bot.core.ports import (
    CallPeerRepository,
    CardRef,
    CardRepository,
    CaseRepository,
    ChannelLink,
    ContactOutcome,
    EventOutcome,
    Job,
    JobPriority,
    JobQueue,
    JobState,
    LeaseRepository,
    LinkRepository,
    MailRepository,
    MailState,
    PrivacyRepository,
    ReminderRepository,
    RetryPolicy,
    Subscription,
    SubscriptionRepository,
    TransitionOutcome,
)
from bot.core.values import FlagStatus
from bot.domain.callbacks import AutoDone, apply_contact
from bot.domain.cases import OUTLOOK_ACTOR, Actor, Case, CaseState, Contact, ContactKind, PreviousCase
from bot.domain.events import CallEvent, EventKind, MailSource, Voicemail
from bot.domain.grouping import place_event
from bot.domain.matching import find_same_call, merge_reports
from bot.domain.state_machine import Refusal, RefusalCode, Verb, decide
from bot.storage import stats_rollups
from bot.storage.database import (
    Cursor,
    Database,
    IntegrityConflict,
    Params,
    Row,
    from_json,
    require_utc,
    to_json,
    to_utc,
)
from bot.storage.migrations import migrate
from bot.storage.privacy_store import SqlPrivacyRepository
from bot.storage.reminder_store import SqlReminderRepository

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

NO_MAIL = ""
"""The mail columns of an event only the call webhook has reported so far (they are NOT NULL since 0001)."""

_MAX_ATTEMPTS = 50
"""Bound on optimistic retries of one operation that keeps losing races; reaching it means pathological contention."""


def _second_active_case(conflict: IntegrityConflict) -> bool:
    """The one refusal a transition expects: a reopen while the caller already has an active case on the line."""
    return conflict.refused_by("cases_one_active_per_caller", "cases.line_id, cases.caller_key")


class StorageContention(RuntimeError):
    """An optimistic write kept losing races and gave up."""


class _LostRace(Exception):
    """Raised inside a transaction to roll it back and try again with fresh data."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def _placeholders(values: Sized) -> str:
    return ", ".join("?" * len(values))


def _actor(actor_id: str | None, name: str | None, teams_id: str | None = None) -> Actor | None:
    return Actor(actor_id, name or "", teams_id) if actor_id is not None else None


def _event_from_row(row: Row) -> CallEvent:
    voicemail = None
    if row["voicemail_attachment_id"] is not None:
        voicemail = Voicemail(
            row["voicemail_attachment_id"], row["voicemail_file_name"], row["voicemail_duration_seconds"]
        )
    mail = None
    if row["message_id"] != NO_MAIL:
        mail = MailSource(row["mailbox"], row["message_id"], row["web_link"], row["subject"], row["sender"])
    return CallEvent(
        source_id=row["source_id"],
        kind=EventKind(row["kind"]),
        line_id=row["line_id"],
        caller=row["caller"],
        received_at=require_utc(row["received_at"]),
        mail=mail,
        caller_name=row["caller_name"],
        voicemail=voicemail,
        caller_as_written=row["caller_as_written"],
        called_number=row["called_number"],
        call_id=row["call_id"],
    )


def _contact_from_row(row: Row) -> Contact:
    return Contact(
        call_id=row["call_id"],
        kind=ContactKind(row["kind"]),
        at=require_utc(row["at"]),
        reached=bool(row["reached"]),
        duration_seconds=int(row["duration_seconds"]),
        agent=row["agent"],
    )


def _case_from_row(row: Row, events: tuple[CallEvent, ...], contacts: tuple[Contact, ...] = ()) -> Case:
    previous = None
    if row["previous_case_id"] is not None:
        previous = PreviousCase(
            row["previous_case_id"],
            _actor(row["previous_done_by_id"], row["previous_done_by_name"]),
            to_utc(row["previous_done_at"]),
        )
    return Case(
        id=row["id"],
        line_id=row["line_id"],
        caller=row["caller"],
        created_at=require_utc(row["created_at"]),
        state=CaseState(row["state"]),
        version=row["version"],
        events=events,
        caller_name=row["caller_name"],
        claimed_by=_actor(row["claimed_by_id"], row["claimed_by_name"], row["claimed_by_teams_id"]),
        claimed_at=to_utc(row["claimed_at"]),
        done_by=_actor(row["done_by_id"], row["done_by_name"]),
        done_at=to_utc(row["done_at"]),
        previous=previous,
        updated_at=to_utc(row["updated_at"]),
        reopened=bool(row["reopened"]),
        contacts=contacts,
    )


case_from_row = _case_from_row
"""A case from its row (other repositories over the same tables use it, e.g. the reminder schedule)."""


async def insert_effects(cursor: Cursor, effects: Sequence[Effect], now: datetime) -> None:
    """Insert the outbox rows of ``effects`` in the caller's transaction. A job with the same key still pending
    does the work (it has not started, so it will see what this transaction commits)."""
    inserts: list[tuple[str, Params]] = []
    for effect in effects:
        expanded: Sequence[Effect] = (effect,)
        if isinstance(effect, WriteCaseFlags):
            await cursor.execute(
                "SELECT mailbox, message_id FROM mails WHERE case_id = ? ORDER BY mailbox, message_id",
                (effect.case_id,),
            )
            expanded = [WriteFlag(row["mailbox"], row["message_id"], effect.case_id) for row in await cursor.fetchall()]
        for one in expanded:
            row = outbox_row(one)
            order_key, order_seq = row.ordering or (None, None)
            inserts.append((
                "INSERT INTO jobs (kind, payload, state, attempts, dedupe_key, run_at, priority, ordering_key, "
                "ordering_seq, created_at, updated_at) VALUES (?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING",
                (
                    row.kind,
                    to_json(row.payload),
                    row.dedupe_key,
                    row.run_at or now,
                    int(row.priority),
                    order_key,
                    order_seq,
                    now,
                    now,
                ),
            ))  # fmt: skip
    await cursor.execute_all(inserts)


def _mutable_case_columns(case: Case) -> dict[str, Any]:
    """Columns a transition or a joining event may change."""
    return {
        "caller_name": case.caller_name,
        "state": case.state.value,
        "version": case.version,
        "updated_at": case.updated_at,
        "claimed_by_id": case.claimed_by.id if case.claimed_by else None,
        "claimed_by_name": case.claimed_by.name if case.claimed_by else None,
        "claimed_by_teams_id": case.claimed_by.teams_id if case.claimed_by else None,
        "claimed_at": case.claimed_at,
        "done_by_id": case.done_by.id if case.done_by else None,
        "done_by_name": case.done_by.name if case.done_by else None,
        "done_at": case.done_at,
        "reopened": int(case.reopened),
    }


class SqlCaseRepository(CaseRepository):
    def __init__(self, database: Database, new_case_id: Callable[[], str], clock: Clock = utc_now) -> None:
        self._db = database
        self._new_case_id = new_case_id
        self._clock = clock
        """The outbox's clock: effects are due at once by the job queue's time."""
        self._committing: dict[str, asyncio.Future[Case]] = {}
        """Per case, the transition of this process now in its transaction; resolves to the case it leaves."""

    async def _load_cases(self, cursor: Cursor, where: str, params: Sequence[Any], tail: str = "") -> list[Case]:
        """Cases matching ``where`` with their events in call-time order, in two queries."""
        await cursor.execute(f"SELECT * FROM cases WHERE {where} {tail}", params)  # noqa: S608 - fixed SQL fragments
        rows = await cursor.fetchall()
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        await cursor.execute(
            f"SELECT * FROM events WHERE case_id IN ({_placeholders(ids)}) ORDER BY received_at, source_id",  # noqa: S608
            ids,
        )
        events: dict[str, list[CallEvent]] = {case_id: [] for case_id in ids}
        for event_row in await cursor.fetchall():
            events[event_row["case_id"]].append(_event_from_row(event_row))
        await cursor.execute(
            f"SELECT * FROM contacts WHERE case_id IN ({_placeholders(ids)}) ORDER BY at, call_id",  # noqa: S608
            ids,
        )
        contacts: dict[str, list[Contact]] = {case_id: [] for case_id in ids}
        for contact_row in await cursor.fetchall():
            contacts[contact_row["case_id"]].append(_contact_from_row(contact_row))
        return [_case_from_row(row, tuple(events[row["id"]]), tuple(contacts[row["id"]])) for row in rows]

    async def _load(self, cursor: Cursor, case_id: str) -> Case | None:
        cases = await self._load_cases(cursor, "id = ?", (case_id,))
        return cases[0] if cases else None

    async def _last_done(self, cursor: Cursor, line_id: str, caller_key: str) -> Case | None:
        """The caller's most recently finished case, without its events (only its id and finisher are linked)."""
        await cursor.execute(
            "SELECT * FROM cases WHERE line_id = ? AND caller_key = ? AND state = 'done' ORDER BY done_at DESC LIMIT 1",
            (line_id, caller_key),
        )
        row = await cursor.fetchone()
        return _case_from_row(row, ()) if row else None

    async def _compare_and_set(self, cursor: Cursor, case: Case, expected_version: int) -> bool:
        columns = _mutable_case_columns(case)
        assignments = ", ".join(f"{column} = ?" for column in columns)
        changed = await stats_rollups.rewrite_cases(
            cursor,
            self._db.dialect,
            [case.id],
            lambda: cursor.execute(
                f"UPDATE cases SET {assignments} WHERE id = ? AND version = ?",  # noqa: S608 - column names are fixed
                (*columns.values(), case.id, expected_version),
            ),
            version=expected_version,
        )
        return changed == 1

    async def _insert_case(self, cursor: Cursor, case: Case, caller_key: str | None) -> None:
        previous = case.previous
        columns = {
            "id": case.id,
            "line_id": case.line_id,
            "caller": case.caller,
            "caller_key": caller_key,
            "created_at": case.created_at,
            "previous_case_id": previous.case_id if previous else None,
            "previous_done_by_id": previous.done_by.id if previous and previous.done_by else None,
            "previous_done_by_name": previous.done_by.name if previous and previous.done_by else None,
            "previous_done_at": previous.done_at if previous else None,
            **_mutable_case_columns(case),
        }
        await cursor.execute(
            f"INSERT INTO cases ({', '.join(columns)}) VALUES ({_placeholders(columns)})",  # noqa: S608
            tuple(columns.values()),
        )
        await stats_rollups.count_cases(cursor, self._db.dialect, [case.id], 1)

    async def _insert_event(self, cursor: Cursor, event: CallEvent, case_id: str) -> None:
        await cursor.execute(
            "INSERT INTO events (source_id, case_id, kind, line_id, caller, caller_name, received_at, mailbox, "
            "message_id, web_link, subject, sender, voicemail_attachment_id, voicemail_file_name, "
            "voicemail_duration_seconds, caller_as_written, called_number, call_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.source_id,
                case_id,
                event.kind.value,
                event.line_id,
                event.caller,
                event.caller_name,
                event.received_at,
                *_report_columns(event),
            ),
        )
        await stats_rollups.count_events(cursor, self._db.dialect, "source_id = ?", [event.source_id], 1)
        if event.mail is not None:
            await SqlCaseRepository._insert_mail(cursor, event.mail, case_id)

    @staticmethod
    async def _insert_mail(cursor: Cursor, mail: MailSource, case_id: str) -> None:
        await cursor.execute(
            "INSERT INTO mails (mailbox, message_id, case_id) VALUES (?, ?, ?) "
            "ON CONFLICT (mailbox, message_id) DO NOTHING",
            (mail.mailbox.lower(), mail.message_id, case_id),
        )

    @staticmethod
    async def _update_merged_event(cursor: Cursor, event: CallEvent, took_mail: bool) -> bool:
        """Store what a second report added to an event: its mail (and voicemail) or its call id.

        Only while the event still lacks what is added: two reports racing for one event must not both join it
        (on PostgreSQL the loser's reads may already show the winner's case; this row check cannot be stale).
        """
        still_lacking = "message_id = ?" if took_mail else "call_id IS NULL"
        changed = await cursor.execute(
            "UPDATE events SET kind = ?, caller_name = ?, mailbox = ?, message_id = ?, web_link = ?, subject = ?, "  # noqa: S608 - fixed SQL fragments
            "sender = ?, voicemail_attachment_id = ?, voicemail_file_name = ?, voicemail_duration_seconds = ?, "
            f"caller_as_written = ?, called_number = ?, call_id = ? WHERE source_id = ? AND {still_lacking}",
            (
                event.kind.value,
                event.caller_name,
                *_report_columns(event),
                event.source_id,
                *((NO_MAIL,) if took_mail else ()),
            ),
        )
        return changed == 1

    async def _known_case_id(self, cursor: Cursor, event: CallEvent) -> str | None:
        """The case that already holds this report: by source id, by call id, or by mail."""
        await cursor.execute("SELECT case_id FROM events WHERE source_id = ?", (event.source_id,))
        known = await cursor.fetchone()
        if known is None and event.call_id is not None:
            await cursor.execute("SELECT case_id FROM events WHERE call_id = ?", (event.call_id,))
            known = await cursor.fetchone()
        if known is None and event.mail is not None:
            await cursor.execute(
                "SELECT case_id FROM mails WHERE mailbox = ? AND message_id = ?",
                (event.mail.mailbox.lower(), event.mail.message_id),
            )
            known = await cursor.fetchone()
        return known["case_id"] if known else None

    async def _join_same_call(self, cursor: Cursor, event: CallEvent, window: timedelta) -> EventOutcome | None:
        """When ``event`` is the other source's report of a recorded call, merge it into that event."""
        if window <= timedelta(0) or event.kind not in (EventKind.MISSED_CALL, EventKind.VOICEMAIL):
            return None
        await cursor.execute(
            "SELECT * FROM events WHERE line_id = ? AND received_at >= ? AND received_at <= ? "
            "ORDER BY received_at, source_id",
            (event.line_id, event.received_at - window, event.received_at + window),
        )
        recorded = find_same_call(event, [_event_from_row(row) for row in await cursor.fetchall()], window)
        if recorded is None:
            return None
        await cursor.execute("SELECT case_id FROM events WHERE source_id = ?", (recorded.source_id,))
        row = await cursor.fetchone()
        case = await self._load(cursor, row["case_id"]) if row else None
        if case is None:
            raise LookupError(f"event {recorded.source_id} points at a missing case")
        merged = merge_reports(recorded, event)
        if not await self._update_merged_event(cursor, merged, took_mail=event.mail is not None):
            raise _LostRace
        if event.mail is not None:
            await self._insert_mail(cursor, event.mail, case.id)
        updated = case.with_merged_event(merged)
        if not await self._compare_and_set(cursor, updated, case.version):
            raise _LostRace
        return EventOutcome(updated, event_added=False, case_created=False, merged=True)

    async def _record_once(self, cursor: Cursor, event: CallEvent, match_window: timedelta) -> EventOutcome:
        known = await self._known_case_id(cursor, event)
        if known is not None:
            case = await self._load(cursor, known)
            if case is None:
                raise LookupError(f"event {event.source_id} points at a missing case")
            return EventOutcome(case, event_added=False, case_created=False)
        joined = await self._join_same_call(cursor, event, match_window)
        if joined is not None:
            return joined
        key = event.grouping_key
        active = last_done = None
        if key is not None:
            found = await self._load_cases(
                cursor, "line_id = ? AND caller_key = ? AND state <> 'done'", (event.line_id, key)
            )
            active = found[0] if found else None
            if active is None:
                last_done = await self._last_done(cursor, event.line_id, key)
        case = place_event(event, active, last_done, self._new_case_id())
        if active is None:
            await self._insert_case(cursor, case, key)
        elif not await self._compare_and_set(cursor, case, active.version):
            raise _LostRace
        await self._insert_event(cursor, event, case.id)
        return EventOutcome(case, event_added=True, case_created=active is None)

    async def record_event(
        self, event: CallEvent, match_window: timedelta = timedelta(0), *, effects: EffectsOf[EventOutcome]
    ) -> EventOutcome:
        """Store ``event`` and group it, atomically with its effects.

        Two processes may race for the same caller (both create a case: the unique partial index refuses the second)
        or the same mail (the primary key refuses the second event): the loser rolls back and tries again, and then
        sees the winner's case or event.
        """
        for _ in range(_MAX_ATTEMPTS):
            try:
                async with self._db.transaction() as cursor:
                    outcome = await self._record_once(cursor, event, match_window)
                    await insert_effects(cursor, effects(outcome), self._clock())
                    return outcome
            except (IntegrityConflict, _LostRace):
                continue
        raise StorageContention(f"record_event {event.source_id} kept losing races")

    async def get(self, case_id: str) -> Case | None:
        async with self._db.read() as cursor:
            return await self._load(cursor, case_id)

    async def record_contact(
        self,
        line_id: str,
        caller: str,
        contact: Contact,
        auto_done: AutoDone,
        now: datetime,
        claim_timeout: timedelta,
        *,
        effects: EffectsOf[ContactOutcome],
    ) -> ContactOutcome | None:
        for _ in range(_MAX_ATTEMPTS):
            try:
                async with self._db.transaction() as cursor:
                    outcome = await self._record_contact_once(
                        cursor, line_id, caller, contact, auto_done, now, claim_timeout
                    )
                    if outcome is not None:
                        await insert_effects(cursor, effects(outcome), self._clock())
                    return outcome
            except (IntegrityConflict, _LostRace):
                continue
        raise StorageContention(f"record_contact {contact.call_id} kept losing races")

    async def _record_contact_once(
        self,
        cursor: Cursor,
        line_id: str,
        caller: str,
        contact: Contact,
        auto_done: AutoDone,
        now: datetime,
        claim_timeout: timedelta,
    ) -> ContactOutcome | None:
        found = await self._load_cases(cursor, "line_id = ? AND caller_key = ? AND state <> 'done'", (line_id, caller))
        if not found:
            return None
        case = found[0]
        if any(known.call_id == contact.call_id for known in case.contacts):
            return ContactOutcome(case, added=False)
        updated = apply_contact(case, contact, auto_done, now, claim_timeout)
        if not await self._compare_and_set(cursor, updated, case.version):
            raise _LostRace
        await cursor.execute(
            "INSERT INTO contacts (call_id, case_id, kind, at, reached, duration_seconds, agent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                contact.call_id,
                case.id,
                contact.kind.value,
                contact.at,
                int(contact.reached),
                contact.duration_seconds,
                contact.agent,
            ),
        )
        return ContactOutcome(updated, added=True, closed=updated.state is not case.state)

    async def transition(
        self,
        case_id: str,
        verb: Verb,
        actor: Actor,
        now: datetime,
        claim_timeout: timedelta,
        *,
        effects: EffectsOf[TransitionOutcome],
        seen: Case | None = None,
    ) -> TransitionOutcome:
        # A refusal needs no write: decided on a snapshot, it is as true as at any later moment (the losers of a
        # race on one card are answered without queueing behind the winner's write).
        if seen is None:
            async with self._db.read() as cursor:
                seen = await self._load(cursor, case_id)
        if seen is not None:
            refused = decide(seen, verb, actor, now, claim_timeout)
            if isinstance(refused, Refusal):
                return TransitionOutcome(seen, refused)
        # Clicks that read the snapshot before a concurrent one committed: decided against the case that one leaves,
        # in memory. In the database each would lock the case row in turn, and fifty clicks on one card queued
        # behind each other's transactions for a third of a second.
        while (committing := self._committing.get(case_id)) is not None:
            try:
                seen = await asyncio.shield(committing)
            except Exception:
                break  # that one failed: this one tries on its own
            decided = decide(seen, verb, actor, now, claim_timeout)
            if isinstance(decided, Refusal):
                return TransitionOutcome(seen, decided)
        mine: asyncio.Future[Case] = asyncio.get_running_loop().create_future()
        mine.add_done_callback(lambda done: done.cancelled() or done.exception())  # nobody may be waiting
        self._committing[case_id] = mine
        try:
            outcome = await self._transition_in_transaction(
                case_id, verb, lambda case: decide(case, verb, actor, now, claim_timeout), effects, seen
            )
        except BaseException as error:
            mine.set_exception(error if isinstance(error, Exception) else RuntimeError("cancelled"))
            raise
        else:
            mine.set_result(outcome.case)
            return outcome
        finally:
            if self._committing.get(case_id) is mine:
                del self._committing[case_id]

    async def _transition_in_transaction(
        self,
        case_id: str,
        verb: Verb,
        decide_on: Callable[[Case], Case | Refusal],
        effects: EffectsOf[TransitionOutcome],
        seen: Case | None = None,
    ) -> TransitionOutcome:
        """The first attempt decides on ``seen`` when given, without reading the case again: the compare-and-set on
        its version fails if anything changed since (every change of a case, its events and contacts included, moves
        the version on), and the next attempt reads the case in the transaction."""
        for _ in range(_MAX_ATTEMPTS):
            try:
                async with self._db.transaction() as cursor:
                    case = seen if seen is not None else await self._load(cursor, case_id)
                    seen = None  # after a failed compare-and-set, the case is read anew
                    if case is None:
                        raise LookupError(f"no case {case_id}")
                    decided = decide_on(case)
                    if isinstance(decided, Refusal):
                        return TransitionOutcome(case, decided)
                    if await self._compare_and_set(cursor, decided, case.version):
                        outcome = TransitionOutcome(decided, before=case)
                        await insert_effects(cursor, effects(outcome), self._clock())
                        return outcome
            except IntegrityConflict as conflict:
                if not _second_active_case(conflict):
                    raise
                return await self._refuse_second_active_case(case_id, verb)
        raise StorageContention(f"transition {verb} on case {case_id} kept losing races")

    async def take_in_flag(
        self,
        mailbox: str,
        message_id: str,
        flag: FlagStatus,
        verb: Verb,
        now: datetime,
        claim_timeout: timedelta,
        *,
        effects: EffectsOf[TransitionOutcome],
    ) -> TransitionOutcome:
        refused: TransitionOutcome | None = None
        for _ in range(_MAX_ATTEMPTS):
            try:
                async with self._db.transaction() as cursor:
                    case = await self._observe_person_flag(cursor, mailbox, message_id, flag)
                    outcome = refused
                    if outcome is None:
                        decided = decide(case, verb, OUTLOOK_ACTOR, now, claim_timeout)
                        if isinstance(decided, Refusal):
                            outcome = TransitionOutcome(case, decided)
                        elif await self._compare_and_set(cursor, decided, case.version):
                            outcome = TransitionOutcome(decided, before=case)
                        else:
                            raise _LostRace
                    await insert_effects(cursor, effects(outcome), self._clock())
                    return outcome
            except IntegrityConflict as conflict:
                if refused is not None or not _second_active_case(conflict):
                    raise
                known = await self.find_by_message(mailbox, message_id)
                if known is None:
                    raise LookupError(f"unknown mail {message_id} in {mailbox}") from None
                refused = await self._refuse_second_active_case(known.id, verb)
            except _LostRace:
                continue
        raise StorageContention(f"Outlook flag {flag} on mail {message_id[-12:]} kept losing races")

    async def _observe_person_flag(self, cursor: Cursor, mailbox: str, message_id: str, flag: FlagStatus) -> Case:
        """Record a person's flag as observed and as written (going back to the bot's earlier value is a change
        too); the mail's case."""
        await cursor.execute(
            "UPDATE mails SET observed_flag = ?, written_flag = ? WHERE mailbox = ? AND message_id = ? "
            "RETURNING case_id",
            (flag.value, flag.value, mailbox.lower(), message_id),
        )
        row = await cursor.fetchone()
        case = await self._load(cursor, row["case_id"]) if row else None
        if case is None:
            raise LookupError(f"unknown mail {message_id} in {mailbox}: record its event first")
        return case

    async def _refuse_second_active_case(self, case_id: str, verb: Verb) -> TransitionOutcome:
        """Reopening a done case while the caller already has a newer active case on the line is refused.

        The refusal names the holder of that active case (nobody while it is open).
        """
        async with self._db.transaction() as cursor:
            case = await self._load(cursor, case_id)
            if case is None:
                raise LookupError(f"no case {case_id}")
            await cursor.execute(
                "SELECT other.* FROM cases other JOIN cases this ON other.line_id = this.line_id "
                "AND other.caller_key = this.caller_key WHERE this.id = ? AND other.state <> 'done'",
                (case_id,),
            )
            row = await cursor.fetchone()
        active = _case_from_row(row, ()) if row else None
        refusal = Refusal(
            code=RefusalCode.CALLER_HAS_ACTIVE_CASE,
            verb=verb,
            state=case.state,
            holder=active.holder if active else None,
            since=active.held_since if active else None,
        )
        return TransitionOutcome(case, refusal)

    async def list_active(
        self, line_ids: list[str], *, claimed_by: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Case], int]:
        if not line_ids:
            return [], 0
        where = f"state IN ('open', 'claimed') AND line_id IN ({_placeholders(line_ids)})"
        params: list[Any] = list(line_ids)
        if claimed_by is not None:
            where += " AND claimed_by_id = ?"
            params.append(claimed_by)
        async with self._db.read() as cursor:
            await cursor.execute(f"SELECT COUNT(*) AS total FROM cases WHERE {where}", params)  # noqa: S608
            counted = await cursor.fetchone()
            cases = await self._load_cases(
                cursor, where, [*params, limit, offset], "ORDER BY created_at, id LIMIT ? OFFSET ?"
            )
        return cases, int(counted["total"]) if counted else 0

    async def count_by_state(self) -> dict[str, int]:
        async with self._db.read() as cursor:
            await cursor.execute("SELECT state, COUNT(*) AS n FROM cases GROUP BY state")
            rows = await cursor.fetchall()
        counts = {state.value: 0 for state in CaseState}
        counts.update({row["state"]: int(row["n"]) for row in rows})
        return counts

    async def find_by_message(self, mailbox: str, message_id: str) -> Case | None:
        async with self._db.read() as cursor:
            await cursor.execute(
                "SELECT case_id FROM mails WHERE mailbox = ? AND message_id = ?", (mailbox.lower(), message_id)
            )
            row = await cursor.fetchone()
            return await self._load(cursor, row["case_id"]) if row else None


def _link_from_row(row: Row) -> ChannelLink:
    return ChannelLink(
        line_id=row["line_id"],
        tenant_id=row["tenant_id"],
        team_id=row["team_id"],
        channel_id=row["channel_id"],
        service_url=row["service_url"],
        linked_by=row["linked_by"],
        linked_at=require_utc(row["linked_at"]),
        group_id=row.get("group_id"),
    )


class SqlLinkRepository(LinkRepository):
    def __init__(self, database: Database) -> None:
        self._db = database

    async def _links(self, where: str, params: Sequence[Any]) -> list[ChannelLink]:
        async with self._db.read() as cursor:
            await cursor.execute(f"SELECT * FROM channel_links WHERE {where} ORDER BY line_id", params)  # noqa: S608
            return [_link_from_row(row) for row in await cursor.fetchall()]

    async def link_channel(self, link: ChannelLink) -> None:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO channel_links (line_id, tenant_id, team_id, channel_id, service_url, linked_by, "
                "linked_at, group_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (line_id) DO UPDATE SET "
                "tenant_id = excluded.tenant_id, team_id = excluded.team_id, channel_id = excluded.channel_id, "
                "service_url = excluded.service_url, linked_by = excluded.linked_by, linked_at = excluded.linked_at, "
                "group_id = excluded.group_id",
                (
                    link.line_id,
                    link.tenant_id,
                    link.team_id,
                    link.channel_id,
                    link.service_url,
                    link.linked_by,
                    link.linked_at,
                    link.group_id,
                ),
            )

    async def unlink_line(self, line_id: str) -> bool:
        async with self._db.transaction() as cursor:
            return await cursor.execute("DELETE FROM channel_links WHERE line_id = ?", (line_id,)) > 0

    async def link_for_line(self, line_id: str) -> ChannelLink | None:
        links = await self._links("line_id = ?", (line_id,))
        return links[0] if links else None

    async def links_for_channel(self, channel_id: str) -> list[ChannelLink]:
        return await self._links("channel_id = ?", (channel_id,))


def _card_from_row(row: Row) -> CardRef:
    return CardRef(row["case_id"], row["conversation_id"], row["activity_id"], row["posted_version"])


class SqlCardRepository(CardRepository):
    def __init__(self, database: Database) -> None:
        self._db = database

    async def save_card(self, card: CardRef) -> None:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO cards (case_id, conversation_id, activity_id, posted_version) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (case_id) DO UPDATE SET conversation_id = excluded.conversation_id, "
                "activity_id = excluded.activity_id, posted_version = excluded.posted_version",
                (card.case_id, card.conversation_id, card.activity_id, card.posted_version),
            )
            await cursor.execute("DELETE FROM card_posts WHERE case_id = ?", (card.case_id,))

    async def begin_post(self, case_id: str, now: datetime) -> int:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO card_posts (case_id, attempt, started_at) VALUES (?, 1, ?) ON CONFLICT (case_id) "
                "DO UPDATE SET attempt = card_posts.attempt + 1, started_at = excluded.started_at RETURNING attempt",
                (case_id, now),
            )
            row = await cursor.fetchone()
        assert row is not None
        return int(row["attempt"])

    async def post_in_doubt(self, case_id: str) -> bool:
        async with self._db.read() as cursor:
            await cursor.execute("SELECT 1 FROM card_posts WHERE case_id = ?", (case_id,))
            return await cursor.fetchone() is not None

    async def forget_post(self, case_id: str) -> None:
        await self._db.write("DELETE FROM card_posts WHERE case_id = ?", (case_id,))

    async def get_card(self, case_id: str) -> CardRef | None:
        async with self._db.read() as cursor:
            await cursor.execute("SELECT * FROM cards WHERE case_id = ?", (case_id,))
            row = await cursor.fetchone()
        return _card_from_row(row) if row else None

    async def case_id_for_activity(self, activity_id: str) -> str | None:
        async with self._db.read() as cursor:
            await cursor.execute("SELECT case_id FROM cards WHERE activity_id = ?", (activity_id,))
            row = await cursor.fetchone()
        return row["case_id"] if row else None


def _flag(value: str | None) -> FlagStatus | None:
    return FlagStatus(value) if value is not None else None


def _report_columns(event: CallEvent) -> tuple[Any, ...]:
    """The event columns a report fills: mailbox, message_id, web_link, subject, sender, the voicemail's three,
    caller_as_written, called_number, call_id (an event the call webhook reported alone has no mail yet)."""
    voicemail, mail = event.voicemail, event.mail
    return (
        mail.mailbox if mail else NO_MAIL,
        mail.message_id if mail else NO_MAIL,
        mail.web_link if mail else None,
        mail.subject if mail else NO_MAIL,
        mail.sender if mail else NO_MAIL,
        voicemail.attachment_id if voicemail else None,
        voicemail.file_name if voicemail else None,
        voicemail.duration_seconds if voicemail else None,
        event.caller_as_written,
        event.called_number,
        event.call_id,
    )


def _read_state(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _mail_from_row(row: Row) -> MailState:
    return MailState(
        row["mailbox"],
        row["message_id"],
        row["case_id"],
        _flag(row["observed_flag"]),
        _flag(row["written_flag"]),
        _read_state(row["observed_read"]),
        _read_state(row["written_read"]),
    )


class SqlMailRepository(MailRepository):
    """Mails are keyed on the mailbox address in lower case (addresses are case-insensitive)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def get_mail(self, mailbox: str, message_id: str) -> MailState | None:
        async with self._db.read() as cursor:
            await cursor.execute(
                "SELECT * FROM mails WHERE mailbox = ? AND message_id = ?", (mailbox.lower(), message_id)
            )
            row = await cursor.fetchone()
        return _mail_from_row(row) if row else None

    async def _set(self, column: str, mailbox: str, message_id: str, value: str | int) -> None:
        async with self._db.transaction() as cursor:
            changed = await cursor.execute(
                f"UPDATE mails SET {column} = ? WHERE mailbox = ? AND message_id = ?",  # noqa: S608 - fixed column
                (value, mailbox.lower(), message_id),
            )
        if changed == 0:
            raise LookupError(f"unknown mail {message_id} in {mailbox}: record its event first")

    async def set_observed_flag(self, mailbox: str, message_id: str, flag: FlagStatus) -> None:
        await self._set("observed_flag", mailbox, message_id, flag.value)

    async def set_written_flag(self, mailbox: str, message_id: str, flag: FlagStatus) -> None:
        await self._set("written_flag", mailbox, message_id, flag.value)

    async def set_observed_read(self, mailbox: str, message_id: str, is_read: bool) -> None:
        await self._set("observed_read", mailbox, message_id, int(is_read))

    async def set_written_read(self, mailbox: str, message_id: str, is_read: bool) -> None:
        await self._set("written_read", mailbox, message_id, int(is_read))

    async def unconfirmed_writes(self, mailbox: str, limit: int = 500) -> list[MailState]:
        async with self._db.read() as cursor:
            await cursor.execute(
                "SELECT * FROM mails WHERE mailbox = ? AND ((written_flag IS NOT NULL "
                "AND (observed_flag IS NULL OR observed_flag <> written_flag)) OR (written_read IS NOT NULL "
                "AND (observed_read IS NULL OR observed_read <> written_read))) ORDER BY message_id LIMIT ?",
                (mailbox.lower(), limit),
            )
            return [_mail_from_row(row) for row in await cursor.fetchall()]


def _subscription_from_row(row: Row) -> Subscription:
    return Subscription(row["mailbox"], row["subscription_id"], require_utc(row["expires_at"]))


class SqlSubscriptionRepository(SubscriptionRepository):
    def __init__(self, database: Database) -> None:
        self._db = database

    async def _one(self, sql: str, params: Sequence[Any]) -> Row | None:
        async with self._db.read() as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchone()

    async def save_subscription(self, subscription: Subscription) -> None:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO subscriptions (mailbox, subscription_id, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (mailbox) DO UPDATE SET subscription_id = excluded.subscription_id, "
                "expires_at = excluded.expires_at",
                (subscription.mailbox, subscription.subscription_id, subscription.expires_at),
            )

    async def get_subscription(self, mailbox: str) -> Subscription | None:
        row = await self._one("SELECT * FROM subscriptions WHERE mailbox = ?", (mailbox,))
        return _subscription_from_row(row) if row else None

    async def subscription_by_id(self, subscription_id: str) -> Subscription | None:
        row = await self._one("SELECT * FROM subscriptions WHERE subscription_id = ?", (subscription_id,))
        return _subscription_from_row(row) if row else None

    async def save_delta_link(self, mailbox: str, delta_link: str) -> None:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO delta_links (mailbox, delta_link) VALUES (?, ?) "
                "ON CONFLICT (mailbox) DO UPDATE SET delta_link = excluded.delta_link",
                (mailbox, delta_link),
            )
            await cursor.execute("DELETE FROM delta_progress WHERE mailbox = ?", (mailbox,))

    async def save_delta_progress(self, mailbox: str, next_link: str | None) -> None:
        if next_link is None:
            await self._db.write("DELETE FROM delta_progress WHERE mailbox = ?", (mailbox,))
            return
        await self._db.write(
            "INSERT INTO delta_progress (mailbox, next_link) VALUES (?, ?) "
            "ON CONFLICT (mailbox) DO UPDATE SET next_link = excluded.next_link",
            (mailbox, next_link),
        )

    async def get_delta_progress(self, mailbox: str) -> str | None:
        row = await self._one("SELECT next_link FROM delta_progress WHERE mailbox = ?", (mailbox,))
        return row["next_link"] if row else None

    async def get_delta_link(self, mailbox: str) -> str | None:
        row = await self._one("SELECT delta_link FROM delta_links WHERE mailbox = ?", (mailbox,))
        return row["delta_link"] if row else None

    async def watched_since(self, mailbox: str, now: datetime) -> datetime:
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO mailbox_baselines (mailbox, watched_since) VALUES (?, ?) ON CONFLICT (mailbox) DO NOTHING",
                (mailbox.lower(), now),
            )
            await cursor.execute("SELECT watched_since FROM mailbox_baselines WHERE mailbox = ?", (mailbox.lower(),))
            row = await cursor.fetchone()
        assert row is not None
        return require_utc(row["watched_since"])


class SqlCallPeerRepository(CallPeerRepository):
    PEER_MEMORY = timedelta(days=2)
    """A call's HungUp follows its OutgoingCall within hours at most; older entries are pruned."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def remember_peer(self, call_id: str, peer: str, now: datetime) -> None:
        async with self._db.transaction() as cursor:
            await cursor.execute("DELETE FROM call_peers WHERE seen_at < ?", (now - self.PEER_MEMORY,))
            await cursor.execute(
                "INSERT INTO call_peers (call_id, peer, seen_at) VALUES (?, ?, ?) ON CONFLICT (call_id) DO NOTHING",
                (call_id, peer, now),
            )

    async def peer_of(self, call_id: str) -> str | None:
        async with self._db.transaction() as cursor:
            await cursor.execute("SELECT peer FROM call_peers WHERE call_id = ?", (call_id,))
            row = await cursor.fetchone()
        return str(row["peer"]) if row else None


class SqlLeaseRepository(LeaseRepository):
    def __init__(self, database: Database) -> None:
        self._db = database

    async def try_acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Take the lease when it is free or expired, or extend it when ``holder`` has it already."""
        async with self._db.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at <= ? RETURNING holder",
                (name, holder, now + ttl, now),
            )
            return await cursor.fetchone() is not None

    async def release(self, name: str, holder: str) -> None:
        async with self._db.transaction() as cursor:
            await cursor.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))


def _job_from_row(row: Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        payload=from_json(row["payload"]),
        attempts=row["attempts"],
        dedupe_key=row["dedupe_key"],
        created_at=require_utc(row["created_at"]),
        last_error=row["last_error"],
    )


_JOB_COLUMNS = "id, kind, payload, attempts, dedupe_key, created_at, last_error"
_MAX_ERROR_LENGTH = 2000


def backoff_delay(attempts: int, policy: RetryPolicy, rng: random.Random) -> timedelta:
    """Exponential backoff with full jitter: uniform in [0, min(max_delay, base_delay * 2^(attempts-1))]."""
    exponent = min(max(attempts - 1, 0), 62)
    ceiling = min(policy.max_delay.total_seconds(), policy.base_delay.total_seconds() * 2**exponent)
    return timedelta(seconds=rng.uniform(0, ceiling))


class SqlJobQueue(JobQueue):
    """The durable outbox. A job is leased for a while; a worker that dies leaves it to be leased again later."""

    def __init__(self, database: Database, clock: Clock, rng: random.Random) -> None:
        self._db = database
        self._clock = clock
        self._rng = rng

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        dedupe_key: str | None = None,
        run_at: datetime | None = None,
        priority: JobPriority = JobPriority.LIVE,
    ) -> int | None:
        now = self._clock()
        written = await self._db.write(
            "INSERT INTO jobs (kind, payload, state, attempts, dedupe_key, run_at, priority, created_at, updated_at) "
            "VALUES (?, ?, 'pending', 0, ?, ?, ?, ?, ?) "
            "ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING "
            "RETURNING id",
            (kind, to_json(payload), dedupe_key, run_at or now, int(priority), now, now),
        )
        return int(written.rows[0]["id"]) if written.rows else None

    async def add(self, effects: Sequence[Effect]) -> None:
        # The pending check is a read: a burst of refused clicks on one card does not queue fifty writes.
        wanted = [
            effect
            for effect in effects
            if not isinstance(effect, RefreshCard) or not await self.pending(outbox_row(effect).dedupe_key)
        ]
        if wanted:
            async with self._db.transaction() as cursor:
                await insert_effects(cursor, wanted, self._clock())

    async def earlier_unfinished(self, ordering_key: str, sequence: int) -> JobState | None:
        async with self._db.read() as cursor:
            await cursor.execute(
                "SELECT state FROM jobs WHERE ordering_key = ? AND ordering_seq < ? "
                "AND state IN ('pending', 'leased') ORDER BY state LIMIT 1",  # 'leased' sorts first
                (ordering_key, sequence),
            )
            row = await cursor.fetchone()
        return JobState(row["state"]) if row else None

    async def pending(self, dedupe_key: str) -> bool:
        async with self._db.read() as cursor:
            await cursor.execute(
                "SELECT 1 AS pending FROM jobs WHERE dedupe_key = ? AND state = 'pending'", (dedupe_key,)
            )
            return await cursor.fetchone() is not None

    async def lease(self, worker_id: str, kinds: list[str], lease_for: timedelta, limit: int = 1) -> list[Job]:
        if not kinds:
            return []
        now = self._clock()
        kinds_in, lock = _placeholders(kinds), self._db.dialect.lock_rows
        # Due jobs per priority and expired leases are looked up apart, each in its index's order and limited there:
        # one query with an OR would sort every due job to take the first (a backlog of thousands made each lease a
        # scan). Expired leases (a worker died) come first, then live work, then backlog.
        due = [
            f"due{rank} AS (SELECT id, {rank} AS rank, run_at AS at FROM jobs "  # noqa: S608 - fixed fragments
            f"WHERE state = 'pending' AND priority = {rank} AND run_at <= ? AND kind IN ({kinds_in}) "
            f"ORDER BY run_at, id LIMIT ?{lock})"
            for rank in map(int, JobPriority)
        ]
        expired = (
            "expired AS (SELECT id, -1 AS rank, lease_expires_at AS at FROM jobs WHERE state = 'leased' "  # noqa: S608
            f"AND lease_expires_at <= ? AND kind IN ({kinds_in}) ORDER BY lease_expires_at, id LIMIT ?{lock})"
        )
        names = [*(f"due{rank}" for rank in map(int, JobPriority)), "expired"]
        candidates = " UNION ALL ".join(f"SELECT id, rank, at FROM {name}" for name in names)  # noqa: S608
        written = await self._db.write(
            f"WITH {', '.join([*due, expired])} "  # noqa: S608 - fixed fragments
            "UPDATE jobs SET state = 'leased', leased_by = ?, lease_expires_at = ?, attempts = attempts + 1, "
            f"updated_at = ? WHERE id IN (SELECT id FROM ({candidates}) AS candidates ORDER BY rank, at, id LIMIT ?) "
            f"RETURNING {_JOB_COLUMNS}",
            (
                *[value for _ in JobPriority for value in (now, *kinds, limit)],
                now,
                *kinds,
                limit,
                worker_id,
                now + lease_for,
                now,
                limit,
            ),
        )
        return sorted((_job_from_row(row) for row in written.rows), key=lambda job: job.id)

    async def extend(self, job: Job, worker_id: str, lease_for: timedelta) -> bool:
        now = self._clock()
        written = await self._db.write(
            "UPDATE jobs SET lease_expires_at = ?, updated_at = ? WHERE id = ? AND state = 'leased' AND leased_by = ?",
            (now + lease_for, now, job.id, worker_id),
        )
        return written.rowcount == 1

    async def complete(self, job: Job, worker_id: str) -> None:
        written = await self._db.write(
            "UPDATE jobs SET state = 'done', leased_by = NULL, lease_expires_at = NULL, updated_at = ? "
            "WHERE id = ? AND state = 'leased' AND leased_by = ?",
            (self._clock(), job.id, worker_id),
        )
        if written.rowcount == 0:
            log.warning("job %s #%d completed by %s after its lease was lost", job.kind, job.id, worker_id)

    async def defer(self, job: Job, worker_id: str, run_at: datetime) -> None:
        try:
            written = await self._db.write(
                "UPDATE jobs SET state = 'pending', run_at = ?, attempts = attempts - 1, leased_by = NULL, "
                "lease_expires_at = NULL, updated_at = ? WHERE id = ? AND state = 'leased' AND leased_by = ?",
                (run_at, self._clock(), job.id, worker_id),
            )
        except IntegrityConflict:
            # A job with the same dedupe key was enqueued meanwhile and is pending: it will do this work.
            await self._finish_attempt(job, worker_id, JobState.DONE, self._clock(), "superseded while deferred")
            return
        if written.rowcount == 0:
            log.warning("job %s #%d deferred by %s after its lease was lost", job.kind, job.id, worker_id)

    async def fail(
        self, job: Job, worker_id: str, error: str, policy: RetryPolicy, retry_after: timedelta | None = None
    ) -> JobState:
        error = error[:_MAX_ERROR_LENGTH]
        now = self._clock()
        if job.attempts >= policy.max_attempts:
            state, run_at = JobState.DEAD, now
        else:
            delay = backoff_delay(job.attempts, policy, self._rng)
            if retry_after is not None and retry_after > delay:
                delay = retry_after
            state, run_at = JobState.PENDING, now + delay
        try:
            changed = await self._finish_attempt(job, worker_id, state, run_at, error)
        except IntegrityConflict:
            # A job with the same dedupe key was enqueued meanwhile and is pending: it will do this work.
            await self._finish_attempt(job, worker_id, JobState.DONE, now, f"superseded after: {error}")
            return JobState.DONE
        if changed == 0:
            log.warning("job %s #%d failed at %s after its lease was lost", job.kind, job.id, worker_id)
            return JobState.LEASED
        if state is JobState.DEAD:
            log.warning("job %s #%d dead after %d attempts: %s", job.kind, job.id, job.attempts, error)
        return state

    async def _finish_attempt(self, job: Job, worker_id: str, state: JobState, run_at: datetime, error: str) -> int:
        written = await self._db.write(
            "UPDATE jobs SET state = ?, run_at = ?, last_error = ?, leased_by = NULL, lease_expires_at = NULL, "
            "updated_at = ? WHERE id = ? AND state = 'leased' AND leased_by = ?",
            (state.value, run_at, error, self._clock(), job.id, worker_id),
        )
        return written.rowcount

    async def depth(self) -> dict[str, int]:
        async with self._db.read() as cursor:
            await cursor.execute("SELECT state, COUNT(*) AS jobs FROM jobs GROUP BY state")
            counted = {row["state"]: int(row["jobs"]) for row in await cursor.fetchall()}
        return {state.value: counted.get(state.value, 0) for state in JobState}

    async def dead_letters(self, limit: int = 100) -> list[Job]:
        async with self._db.read() as cursor:
            await cursor.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'dead' ORDER BY updated_at DESC, id DESC LIMIT ?",  # noqa: S608
                (limit,),
            )
            return [_job_from_row(row) for row in await cursor.fetchall()]


class SqlStore:
    """All repositories over one :class:`Database`. Build it with :func:`bot.storage.factory.open_store`."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        new_case_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.database = database
        cases = SqlCaseRepository(database, new_case_id, clock)
        self.cases: CaseRepository = cases
        self.links: LinkRepository = SqlLinkRepository(database)
        self.cards: CardRepository = SqlCardRepository(database)
        self.mails: MailRepository = SqlMailRepository(database)
        self.subscriptions: SubscriptionRepository = SqlSubscriptionRepository(database)
        self.leases: LeaseRepository = SqlLeaseRepository(database)
        self.jobs: JobQueue = SqlJobQueue(database, clock, rng or random.Random())
        self.privacy: PrivacyRepository = SqlPrivacyRepository(database)
        self.calls: CallPeerRepository = SqlCallPeerRepository(database)
        self.reminders: ReminderRepository = SqlReminderRepository(database, cases, clock)

    async def migrate(self) -> list[int]:
        return await migrate(self.database)

    async def close(self) -> None:
        await self.database.close()

    async def ping(self) -> None:
        async with self.database.read() as cursor:
            await cursor.execute("SELECT 1 AS ok")
