"""End-to-end rows: start-up, memory, mail → card, notification ack and throughput, claims, the Teams burst and
the catch-up, each against the bot in its own process (see :mod:`bench.stack`)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from bench.load import BareServer, closed_loop, open_loop
from bench.stack import (
    BENCH_CLIENT_STATE,
    CHANNELS,
    LINES,
    TEAM_ID,
    TENANT,
    BotProcess,
    StandIns,
    link_channels,
    wait_until,
)
from bot.config import PoolLine
from bot.graph.subscriptions import NOTIFICATION_PATH
from sandbox.connector import TEAMS_THREAD_LIMITS, ThreadRateLimiter


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the benchmark table."""

    backend: str
    measure: str
    measured: str
    reference: str
    ratio: str
    target: str
    met: bool | None


ROWS = ("mail", "claim", "notify", "burst", "catchup")
"""The end-to-end rows ``--only`` can pick; claims need the cards of ``mail``, so ``claim`` runs it too."""


@dataclass(frozen=True, slots=True)
class Options:
    graph_latency_s: float = 0.0
    teams_latency_s: float = 0.0
    mails: int = 40
    """Single mails for mail → card (also the cases of the uncontended claims)."""
    contenders: int = 50
    claim_races: int = 5
    """Races of the contended claim, each on a fresh card: its p99 is over all their clicks."""
    ack_rate: float = 500.0
    ack_seconds: float = 6.0
    saturation_seconds: float = 5.0
    saturation_clients: tuple[int, ...] = (32, 128, 256)
    """Closed-loop clients of the saturation runs; each server is rated by its best. The bot, whose answers wait for
    a group commit, still gained from 128 to 256 clients on PostgreSQL; bare aiohttp is level or falls beyond 32."""
    burst_cards: int = 500
    catch_up_mails: int = 5000
    postgres_url: str | None = None
    rows: frozenset[str] = frozenset(ROWS)
    """Which of :data:`ROWS` to run (start-up and idle RSS are always measured)."""


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 40 samples is the largest but one... rounded up: the largest)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


_callers = itertools.count(1)


def new_caller() -> str:
    return f"+49171{next(_callers):07d}"


async def count(database_url: str, sql: str) -> int:
    """One number from the bot's database, read beside the running bot (a thread: the stand-ins share this loop)."""

    def read() -> int:
        if database_url.startswith("sqlite:///"):
            with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=10)) as db:
                return int(db.execute(sql).fetchone()[0])
        with psycopg.connect(database_url, autocommit=True) as db:
            row = db.execute(sql).fetchone()
            return int(row[0]) if row else 0

    return await asyncio.to_thread(read)


async def _nothing_left(database_url: str, sql: str) -> bool:
    return await count(database_url, sql) == 0


# Mail → card -------------------------------------------------------------------------------------------------------


async def mail_to_card(backend: str, stand_ins: StandIns, mails: int) -> list[Row]:
    """Single mails, one at a time, spread over the lines so that Teams' per-channel limits never bind."""
    samples = []
    for n in range(mails):
        line = LINES[n % len(LINES)]
        before = stand_ins.cards_posted()
        started = time.perf_counter()
        stand_ins.deliver(line, new_caller())
        if not await wait_until(lambda before=before: stand_ins.cards_posted() > before, 30, 0.001):
            raise RuntimeError("a card never arrived")
        samples.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.5)
    p50, p99 = statistics.median(samples), percentile(samples, 0.99)
    return [Row(backend, f"mail → card, {mails} single mails, p50 / p99", f"{p50:.0f} / {p99:.0f} ms", "–", "–",
                "≤ 50 / 250 ms", p50 <= 50 and p99 <= 250)]


# Claims ------------------------------------------------------------------------------------------------------------


def _claim_data(card: Any) -> dict[str, Any] | None:
    if isinstance(card, dict):
        if card.get("type") == "Action.Execute" and card.get("verb") == "claim":
            return dict(card["data"])
        children: Iterator[Any] = iter(card.values())
    elif isinstance(card, list):
        children = iter(card)
    else:
        return None
    for child in children:
        found = _claim_data(child)
        if found is not None:
            return found
    return None


def _user(n: int) -> dict[str, str]:
    return {"id": f"29:bench-user-{n:03d}", "aadObjectId": f"aad-bench-{n:03d}", "name": f"Nutzer-{n:03d}-Bench"}


def _invoke(service_url: str, thread: str, root_id: str, data: dict[str, Any], user: dict[str, str]) -> bytes:
    channel_id = thread.split(";", 1)[0]
    activity = {
        "type": "invoke",
        "name": "adaptiveCard/action",
        "id": f"bench-invoke-{next(_callers)}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": user,
        "recipient": {"id": "28:rufpool", "name": "Rufpool"},
        "conversation": {"id": thread, "tenantId": TENANT, "conversationType": "channel", "isGroup": True},
        "channelData": {"tenant": {"id": TENANT}, "team": {"id": TEAM_ID}, "channel": {"id": channel_id}},
        "replyToId": root_id,
        "locale": "de-DE",
        "value": {"action": {"type": "Action.Execute", "verb": "claim", "data": data}, "trigger": "manual"},
    }
    return json.dumps(activity).encode()


async def _click(http: aiohttp.ClientSession, bot: BotProcess, body: bytes) -> tuple[float, int, str]:
    started = time.perf_counter()
    async with http.post(bot.url + "/api/messages", data=body, headers={"Content-Type": "application/json"}) as r:
        text = await r.text()
        return (time.perf_counter() - started) * 1000, r.status, text


def _open_cards(stand_ins: StandIns) -> list[tuple[str, str, dict[str, Any]]]:
    """(thread, root activity id, claim data) of every card that still offers Claim."""
    found = []
    for thread, activity in stand_ins.card_threads():
        data = _claim_data(activity.get("attachments"))
        if data is not None:
            found.append((thread, str(activity["id"]), data))
    return found


async def _claim_race(stand_ins: StandIns, bot: BotProcess, http: aiohttp.ClientSession,
                      contenders: int) -> tuple[list[float], int]:
    """A fresh card, every contender clicks Claim on it at once: (each click's answer time, winners). Each click goes
    on a connection already open, as from a client that keeps its connections alive: fifty connects at once measured
    this load generator's connects (it shares one loop with the stand-ins) more than the bot."""
    before = stand_ins.cards_posted()
    stand_ins.deliver(LINES[0], new_caller())
    await wait_until(lambda: stand_ins.cards_posted() > before, 30, 0.005)
    await asyncio.sleep(0.2)
    await asyncio.gather(*(_healthz(http, bot) for _ in range(contenders)))
    thread, root, data = _open_cards(stand_ins)[-1]  # the newest thread (an earlier race's may not be redrawn yet)
    users = [_user(500 + n) for n in range(contenders)]
    bodies = [_invoke(stand_ins.connector.service_url, thread, root, data, user) for user in users]
    results = await asyncio.gather(*(_click(http, bot, body) for body in bodies))
    winners = sum(1 for (_, status, text), user in zip(results, users, strict=True)
                  if status == 200 and _winner(text, user["name"]))
    return [elapsed for elapsed, _, _ in results], winners


async def _healthz(http: aiohttp.ClientSession, bot: BotProcess) -> None:
    async with http.get(bot.url + "/healthz") as answer:
        await answer.read()


async def claims(backend: str, stand_ins: StandIns, bot: BotProcess, http: aiohttp.ClientSession,
                 contenders: int, races: int) -> list[Row]:
    service_url = stand_ins.connector.service_url
    uncontended = []
    for n, (thread, root, data) in enumerate(_open_cards(stand_ins)):
        elapsed, status, _ = await _click(http, bot, _invoke(service_url, thread, root, data, _user(n)))
        if status != 200:
            raise RuntimeError(f"a claim answered {status}")
        uncontended.append(elapsed)
    contended: list[float] = []
    winners: list[int] = []
    for _ in range(races):
        round_times, round_winners = await _claim_race(stand_ins, bot, http, contenders)
        contended += round_times
        winners.append(round_winners)
    p50u, p99u = statistics.median(uncontended), percentile(uncontended, 0.99)
    p50c, p99c = statistics.median(contended), percentile(contended, 0.99)
    return [
        Row(backend, f"claim, {contenders} concurrent clicks on one card ({races} races), p50 / p99",
            f"{p50c:.0f} / {p99c:.0f} ms (slowest {max(contended):.0f} ms), winners {'/'.join(map(str, winners))}",
            "–", "–", "≤ 50 ms, 1 winner", p99c <= 50 and set(winners) == {1}),
        Row(backend, f"claim, uncontended ({len(uncontended)} cards), p50 / p99", f"{p50u:.0f} / {p99u:.0f} ms",
            "–", "–", "≤ 50 ms", p99u <= 50),
    ]


def _winner(answer: str, name: str) -> bool:
    """The clicker's answer shows the case claimed by the clicker (the losers see the winner's name)."""
    try:
        card = json.loads(answer)
    except ValueError:
        return False
    return name in json.dumps(card, ensure_ascii=False)


# Notifications -----------------------------------------------------------------------------------------------------


def notification_body(n: int) -> bytes:
    """A change notification for a subscription the bot does not know: persisted, then dropped by the worker."""
    return json.dumps({"value": [{
        "subscriptionId": "bench-subscription",
        "changeType": "created",
        "clientState": BENCH_CLIENT_STATE,
        "tenantId": TENANT,
        "resource": f"Users/bench/Messages/bench-{n}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": f"bench-message-{n:08d}"},
    }]}).encode()


_bodies = itertools.count(1_000_000)


def unique_body(_: int) -> bytes:
    return notification_body(next(_bodies))


_OURS = "SELECT COUNT(*) AS n FROM jobs WHERE dedupe_key LIKE 'change:bench-subscription:%'"
_UNFINISHED = f"{_OURS} AND state IN ('pending', 'leased')"


@dataclass(frozen=True, slots=True)
class _Saturation:
    clients: int
    bot: float
    bare_before: float
    bare_after: float
    drained: bool

    @property
    def bare(self) -> float:
        return (self.bare_before + self.bare_after) / 2


async def _saturate(bot_url: str, bare_url: str, database_url: str, clients: int, seconds: float) -> _Saturation:
    """The bot's saturated throughput with bare aiohttp's measured just before and just after it. The bot's workers
    then still drain the run's jobs: the reference after waits for them (beside them it measured a slower machine)."""
    bare_before = await closed_loop(bare_url, unique_body, clients, seconds)
    bot = await closed_loop(bot_url, unique_body, clients, seconds)
    drained = await wait_until(lambda: _nothing_left(database_url, _UNFINISHED), 300, 0.5)
    bare_after = await closed_loop(bare_url, unique_body, clients, seconds)
    return _Saturation(clients, bot.per_second, bare_before.per_second, bare_after.per_second, drained)


async def notifications(backend: str, bot: BotProcess, database_url: str, options: Options,
                        folder: Path) -> list[Row]:
    """The bare aiohttp reference is measured beside this backend's own runs: its ack just before the bot's, its
    saturation just before and just after each of the bot's. The machine's speed drifts over the minutes between the
    two backends, and a reference measured once for both compared each with another machine."""
    url = bot.url + NOTIFICATION_PATH
    before = await count(database_url, _OURS)
    async with BareServer(folder) as bare:
        bare_ack = await open_loop(bare.url, unique_body, options.ack_rate, options.ack_seconds)
        ack = await open_loop(url, unique_body, options.ack_rate, options.ack_seconds)
        await asyncio.sleep(0.5)
        stored = await count(database_url, _OURS) - before
        runs = [await _saturate(url, bare.url, database_url, clients, options.saturation_seconds)
                for clients in options.saturation_clients]
    lost = ack.accepted - stored
    p99, bare_p99 = percentile(ack.latencies_ms, 0.99), percentile(bare_ack.latencies_ms, 0.99)
    refused = ack.sent - ack.accepted
    best, best_bare = max(runs, key=lambda run: run.bot), max(runs, key=lambda run: run.bare)
    ratio = best.bot / best_bare.bare
    sweep = ", ".join(f"{run.clients}: {run.bot:,.0f}" for run in runs)
    reference = (f"{best_bare.bare:,.0f}/s (bare aiohttp at {best_bare.clients}: {best_bare.bare_before:,.0f} "
                 f"before, {best_bare.bare_after:,.0f} after)")
    if still_draining := [str(run.clients) for run in runs if not run.drained]:
        reference += f"; the bot still draining its queue after the runs at {', '.join(still_draining)}"
    return [
        Row(backend, f"notification ack at {options.ack_rate:.0f}/s offered, p99",
            f"{p99:.1f} ms; {lost} lost, {refused} not 202", f"{bare_p99:.1f} ms (bare aiohttp)",
            f"{p99 / bare_p99:.1f}×", "≤ 20 ms, 0 lost", p99 <= 20 and lost == 0 and refused == 0),
        Row(backend, "notification throughput at saturation (best of the clients tried)",
            f"{best.bot:,.0f}/s ({sweep})", reference, f"{ratio:.2f}", "≥ 0.5", ratio >= 0.5),
    ]


# Teams burst -------------------------------------------------------------------------------------------------------


def minimum_seconds(
    sends_per_thread: Sequence[int], limits: Sequence[tuple[int, float]] = TEAMS_THREAD_LIMITS
) -> float:
    """The least time in which these sends fit Teams' per-thread limits (each thread sends as early as allowed)."""
    clock = [0.0]
    limiter = ThreadRateLimiter(limits, clock=lambda: clock[0])
    finished = 0.0
    for thread, sends in enumerate(sends_per_thread):
        clock[0] = 0.0
        for _ in range(sends):
            while (wait := limiter.acquire(thread)) is not None:
                clock[0] += wait + 1e-6
            finished = max(finished, clock[0])
    return finished


async def teams_burst(backend: str, stand_ins: StandIns, lines: Sequence[PoolLine], cards: int) -> list[Row]:
    """``cards`` mails at once over ``lines`` (one channel each); the time until the last card is in Teams."""
    requests_before = len(stand_ins.connector.requests)
    before = stand_ins.cards_posted()
    started = time.perf_counter()
    for n in range(cards):
        stand_ins.deliver(lines[n % len(lines)], new_caller())
    arrived = await wait_until(lambda: stand_ins.cards_posted() >= before + cards, 3600, 0.05)
    elapsed = time.perf_counter() - started
    sent = stand_ins.connector.requests[requests_before:]
    throttled = sum(1 for record in sent if record.status == 429)
    posted = stand_ins.cards_posted() - before
    per_channel = [cards // len(lines) + (1 if n < cards % len(lines) else 0) for n in range(len(lines))]
    fastest = minimum_seconds(per_channel)
    share = fastest / elapsed if fastest > 0 else 1.0
    throttled_share = throttled / max(1, len(sent))
    return [Row(backend, f"Teams burst, {cards} cards over {len(lines)} channels",
                f"{elapsed:.1f} s, {throttled_share:.1%} 429 ({throttled}), {cards - posted} lost",
                f"{fastest:.1f} s at Teams' per-thread limits", f"{share:.0%} of the limit",
                "≥ 90 %, ≤ 1 % 429, 0 lost", arrived and share >= 0.9 and throttled_share <= 0.01)]


# Catch-up ----------------------------------------------------------------------------------------------------------


async def catch_up(backend: str, stand_ins: StandIns, bot: BotProcess, http: aiohttp.ClientSession,
                   database_url: str, mails: int, page_limit: int = 1000) -> tuple[list[Row], float]:
    """The bot is down while ``mails`` arrive on one line; then it starts and catches up by delta.
    Returns the rows and the RSS after the catch-up."""
    await bot.stop()
    line = LINES[0]
    events_before = await count(database_url, "SELECT COUNT(*) AS n FROM events")
    for _ in range(mails):
        stand_ins.deliver(line, new_caller(), notify=False)
    stand_ins.graph.clear_requests()
    started = time.perf_counter()
    startup_s = await bot.start(http)

    async def ingested() -> bool:
        return await count(database_url, "SELECT COUNT(*) AS n FROM events") >= events_before + mails

    done = await wait_until(ingested, 600, 0.05)
    elapsed = time.perf_counter() - started
    requests = [r for r in stand_ins.graph.requests if "/messages" in r.path]
    minimum = math.ceil(mails / page_limit)
    rss = bot.rss_mb()
    # A live call while the backlog's cards are still going out on the same channel.
    live = stand_ins.deliver(line, new_caller())
    live_started = time.perf_counter()

    async def live_card() -> bool:
        return await count(database_url, "SELECT COUNT(*) AS n FROM cards JOIN mails ON mails.case_id = "
                           f"cards.case_id WHERE mails.message_id = '{live.id}'") > 0

    live_arrived = await wait_until(live_card, 120, 0.02)
    live_s = time.perf_counter() - live_started
    if not live_arrived or live_s > 5:
        kept = Path(tempfile.mkdtemp(prefix="rufpool-bench-live-call-")) / "bot.log"
        shutil.copyfile(bot.log_path, kept)
        print(f"the live call ({live.id}) took {live_s:.1f} s: the bot's log is kept in {kept}", file=sys.stderr)
    backlog = mails - await count(database_url, "SELECT COUNT(*) AS n FROM cards")
    return [
        Row(backend, f"catch-up of {mails:,} mails after downtime", f"{elapsed:.1f} s, {len(requests)} Graph requests",
            f"{minimum} requests (pages of {page_limit})", f"{len(requests) / minimum:.1f}×", "≤ 30 s, ≤ 60 requests",
            done and elapsed <= 30 and len(requests) <= 60),
        Row(backend, f"live call during a backlog of ≈{max(0, backlog):,} cards", f"{live_s:.1f} s to its card"
            if live_arrived else "no card within 120 s", "–", "–", "≤ 5 s", live_arrived and live_s <= 5),
        Row(backend, "start-up exec → /healthz (with the catch-up pending)", f"{startup_s:.2f} s", "–", "–", "≤ 2 s",
            startup_s <= 2),
    ], rss


# One backend -------------------------------------------------------------------------------------------------------


async def bench_backend(backend: str, database_url: str, folder: Path, options: Options, *,
                        full: bool) -> list[Row]:
    """Everything against one bot process; ``full`` adds the Teams burst, catch-up and memory rows."""
    stand_ins = await StandIns.start(folder, options.graph_latency_s, options.teams_latency_s)
    rows: list[Row] = []
    bot = None
    try:
        await link_channels(database_url, stand_ins.connector.service_url)
        bot = BotProcess.configure(stand_ins, folder, database_url)
        async with aiohttp.ClientSession() as http:
            startup_s = await bot.start(http)
            rows.append(Row(backend, "start-up exec → /healthz", f"{startup_s:.2f} s", "–", "–", "≤ 2 s",
                            startup_s <= 2))
            await wait_until(lambda: len(stand_ins.graph.subscriptions()) >= len(LINES), 60, 0.05)
            await asyncio.sleep(2)
            idle_rss = bot.rss_mb()
            chosen = options.rows
            if chosen & {"mail", "claim"}:
                rows += await mail_to_card(backend, stand_ins, options.mails)
            if "claim" in chosen:
                rows += await claims(backend, stand_ins, bot, http, options.contenders, options.claim_races)
            if "notify" in chosen:
                rows += await notifications(backend, bot, database_url, options, folder)
            if full and "burst" in chosen:
                if chosen & {"mail", "claim"}:
                    await asyncio.sleep(31)  # the earlier cards leave Teams' 30-second windows
                rows += await teams_burst(backend, stand_ins, LINES, options.burst_cards)
            if full and "catchup" in chosen:
                if "burst" in chosen:
                    # The restarted bot's pacer knows nothing of the burst's sends: Teams' windows must be clear, or
                    # the live call's row measures 429s and their Retry-After instead of the backlog.
                    await asyncio.sleep(31)
                catch_up_rows, after_rss = await catch_up(backend, stand_ins, bot, http, database_url,
                                                          options.catch_up_mails)
                rows += catch_up_rows
                rows.append(Row(backend, f"RSS idle / after a {options.catch_up_mails:,}-mail catch-up",
                                f"{idle_rss:.0f} / {after_rss:.0f} MB", "–", "–", "≤ 150 MB",
                                max(idle_rss, after_rss) <= 150))
            else:
                rows.append(Row(backend, "RSS idle", f"{idle_rss:.0f} MB", "–", "–", "≤ 150 MB", idle_rss <= 150))
    finally:
        if bot is not None:
            await bot.stop()
        await stand_ins.stop()
    return rows


__all__ = ["CHANNELS", "ROWS", "Options", "Row", "bench_backend", "minimum_seconds"]
