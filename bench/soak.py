"""``make soak``: mails, faults and SIGKILLs against the bot as its own process; then nothing lost, nothing twice.

    python -m bench.soak [--mails 1000] [--seconds 300] [--kills 3] [--last-kill-at-end] [--seed 13]
                         [--no-postgres] [--quick]

The bot runs as ``python -m bot`` (see :mod:`bench.stack`) against the stand-ins in this process. Mails arrive
evenly over ``--seconds`` in three mailboxes, from a pool of callers (so some cases get repeat calls); a Teams user
claims a random open card now and then, retrying until the bot answers. Graph answers 20 % of its requests with a
fault (429 with Retry-After, 503, no answer within the bot's ``GRAPH_TIMEOUT_SECONDS``, a reset connection: 5 %
each), the connector 10 % (429, 502, 412), and the bot is killed with SIGKILL at ``--kills`` random moments and
started again at once. After the last mail the faults stay on; the soak waits until
:func:`sandbox.convergence.check` holds and prints one row per backend: mails, events, cases, cards, duplicate
cards, lost, dead letters, flags wrong, stale cards and the time from the last restart until everything agreed.
Targets: 0 lost, 0 duplicates, 0 dead letters, converged ≤ 60 s after the last restart. Never fails on time.

Convergence is timed from the last restart and, as a second figure, from the last mail: a restart in the middle of
the stream is followed by the rest of the mails, and nothing can have converged before the last one arrived. The
mails come over 300 s by default (3.3 a second, about 2 cards a second over the three channels): Teams lets a bot
post 60 messages in 30 s per channel, so 1,000 mails in 90 s (about 6.5 cards a second) build a backlog that only
Teams' limit drains, whatever the bot does, and that would be what the soak measures. ``--last-kill-at-end`` makes
the last SIGKILL come right after the last mail: the time after that restart is then the recovery alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.run import DEFAULT_POSTGRES_URL, load
from bench.stack import LINES, TEAM_ID, TENANT, BotProcess, StandIns, link_channels, wait_until
from bot.core.ports import JobState, Store
from bot.storage.factory import open_store
from sandbox.connector import FaultRule
from sandbox.convergence import Convergence, check
from sandbox.schemas import fresh_postgres_schema, postgres_problem

GRAPH_FAULTS = ("429", "503", "delay", "drop")
"""5 % of Graph requests each: throttled, unavailable, timed out (``delay`` beyond the bot's timeout), reset."""
TEAMS_FAULTS = (429, 502, 412)
GRAPH_TIMEOUT_S = 3
CONVERGE_LIMIT_S = 300.0
CLAIM_ATTEMPTS = 60
TARGET_CONVERGE_S = 60.0


@dataclass(frozen=True, slots=True)
class Options:
    mails: int = 1000
    seconds: float = 300.0
    kills: int = 3
    callers: int = 300
    claims: int = 60
    seed: int = 13
    last_kill_at_end: bool = False
    """The last SIGKILL right after the last mail (the others at random moments): the restart is then the last
    thing that happens, and the time to converge after it is the recovery alone."""


@dataclass
class Outcome:
    backend: str
    result: Convergence
    converged_after_s: float | None
    """From the last restart's first 200 on /healthz until the check held; None: not within the limit."""
    last_mail_before_s: float
    """How long before convergence the last mail arrived (the restart may come before the last mails)."""
    graph_faults: int
    graph_requests: int
    teams_faults: int
    teams_requests: int
    claims: int


def rates(total: float, kinds: int) -> list[float]:
    """Per-rule rates so that each of ``kinds`` rules, tried in order, faults ``total / kinds`` of all requests."""
    share, left, found = total / kinds, 1.0, []
    for _ in range(kinds):
        found.append(share / left)
        left -= share
    return found


def inject_faults(stand_ins: StandIns) -> None:
    for kind, rate in zip(GRAPH_FAULTS, rates(0.20, len(GRAPH_FAULTS)), strict=True):
        stand_ins.graph.add_fault(kind, rate=rate, retry_after=1, delay_ms=(GRAPH_TIMEOUT_S + 1) * 1000)
    for status, rate in zip(TEAMS_FAULTS, rates(0.10, len(TEAMS_FAULTS)), strict=True):
        stand_ins.connector.inject(FaultRule(status, rate=rate, retry_after=1))


def claim_activity(service_url: str, thread: str, root_id: str, case_id: str, n: int) -> dict[str, object]:
    channel_id = thread.split(";", 1)[0]
    return {
        "type": "invoke",
        "name": "adaptiveCard/action",
        "id": f"soak-invoke-{n}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": f"29:soak-user-{n % 5}", "aadObjectId": f"aad-soak-{n % 5}", "name": f"Soak {n % 5}"},
        "recipient": {"id": "28:rufpool", "name": "Rufpool"},
        "conversation": {"id": thread, "tenantId": TENANT, "conversationType": "channel", "isGroup": True},
        "channelData": {"tenant": {"id": TENANT}, "team": {"id": TEAM_ID}, "channel": {"id": channel_id}},
        "replyToId": root_id,
        "locale": "de-DE",
        "value": {"action": {"type": "Action.Execute", "verb": "claim", "data": {"case_id": case_id}}},
    }


async def claim_one(stand_ins: StandIns, store: Store, bot: BotProcess, http: aiohttp.ClientSession,
                    rng: random.Random, n: int) -> bool:
    """A user claims a random card; retried (as a person would) while there is none yet, the bot is down or it
    answers an error."""
    for _ in range(CLAIM_ATTEMPTS):
        threads = list(stand_ins.card_threads())
        thread, root = rng.choice(threads) if threads else ("", {})
        case_id = await store.cards.case_id_for_activity(str(root["id"])) if threads else None
        if case_id is not None:
            body = claim_activity(stand_ins.connector.service_url, thread, str(root["id"]), case_id, n)
            try:
                async with http.post(bot.url + "/api/messages", json=body) as response:
                    if response.status == 200:
                        return True
            except aiohttp.ClientError:
                pass
        await asyncio.sleep(1)
    return False


async def converged(store: Store, stand_ins: StandIns) -> Convergence | None:
    """The check, once the outbox is quiet (the full check reads every mail's case: not worth it before)."""
    depth = await store.jobs.depth()
    if depth[JobState.PENDING] or depth[JobState.LEASED]:
        return None
    result = await check(store, stand_ins.graph, stand_ins.connector, [line.mailbox for line in LINES])
    return result if result.holds else None


async def soak(backend: str, database_url: str, folder: Path, options: Options) -> Outcome:
    rng = random.Random(options.seed)
    stand_ins = await StandIns.start(folder, 0.0, 0.0)
    bot = BotProcess.configure(
        stand_ins, folder, database_url, GRAPH_TIMEOUT_SECONDS=str(GRAPH_TIMEOUT_S), LOG_LEVEL="WARNING"
    )
    store = None
    try:
        await link_channels(database_url, stand_ins.connector.service_url)
        store = await open_store(database_url)
        async with aiohttp.ClientSession() as http:
            await bot.start(http)
            await wait_until(lambda: len(stand_ins.graph.subscriptions()) >= len(LINES), 60, 0.1)
            inject_faults(stand_ins)
            callers = [f"+49171{n:07d}" for n in range(options.callers)]
            random_kills = options.kills - 1 if options.last_kill_at_end and options.kills else options.kills
            kills = sorted(rng.uniform(0.1, 0.9) * options.seconds for _ in range(random_kills))
            claim_times = sorted(rng.uniform(0.05, 1.0) * options.seconds for _ in range(options.claims))
            claims: list[asyncio.Task[bool]] = []
            started, restarted_at = time.perf_counter(), time.perf_counter()

            async def kill_and_restart() -> float:
                assert bot.process is not None
                bot.process.kill()
                await bot.process.wait()
                await bot.start(http)
                return time.perf_counter()

            for n in range(options.mails):
                due = started + n * options.seconds / options.mails
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                now = time.perf_counter() - started
                while kills and kills[0] <= now:
                    kills.pop(0)
                    restarted_at = await kill_and_restart()
                while claim_times and claim_times[0] <= now:
                    claim_times.pop(0)
                    claims.append(asyncio.create_task(claim_one(stand_ins, store, bot, http, rng, len(claims))))
                stand_ins.deliver(rng.choice(LINES), rng.choice(callers))
            last_mail_at = time.perf_counter()
            if options.last_kill_at_end and options.kills:
                restarted_at = await kill_and_restart()
            claimed = sum(await asyncio.gather(*claims))
            result, converged_after = None, None
            while time.perf_counter() - restarted_at < CONVERGE_LIMIT_S:
                result = await converged(store, stand_ins)
                if result is not None:
                    converged_after = time.perf_counter() - restarted_at
                    break
                await asyncio.sleep(1)
            if result is None:
                result = await check(store, stand_ins.graph, stand_ins.connector, [line.mailbox for line in LINES])
        graph_faults = sum(rule.hits for rule in stand_ins.graph.faults.rules)  # the stand-in's own rules
        since_last_mail = time.perf_counter() - last_mail_at
        return Outcome(backend, result, converged_after, since_last_mail, graph_faults, len(stand_ins.graph.requests),
                       sum(rule.hits for rule in stand_ins.connector.faults), len(stand_ins.connector.requests),
                       claimed)
    finally:
        await bot.stop()
        if store is not None:
            await store.close()
        await stand_ins.stop()


def table(outcomes: Sequence[Outcome], options: Options) -> str:
    lines = [
        "| backend | mails | events | cases | cards | duplicate cards | lost | dead letters | flags wrong "
        "| stale cards | claims | Graph faults | Teams faults | SIGKILLs | converged after the last restart / mail |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        r = o.result
        after = f"not within {CONVERGE_LIMIT_S:.0f} s"
        if o.converged_after_s is not None:
            after = f"{o.converged_after_s:.1f} s / {o.last_mail_before_s:.1f} s"
        lines.append(
            f"| {o.backend} | {r.mails} | {r.events} | {r.cases} | {r.cards} | {r.duplicate_cards} | {r.lost} "
            f"| {r.dead_letters} | {r.flags_wrong} | {r.stale_cards} | {o.claims} "
            f"| {o.graph_faults} of {o.graph_requests} | {o.teams_faults} of {o.teams_requests} | {options.kills} "
            f"| {after} |"
        )
    return "\n".join(lines)


async def run(options: Options, postgres_url: str | None, folder: Path) -> list[Outcome]:
    outcomes = [await soak("SQLite", f"sqlite:///{folder / 'soak.sqlite3'}", folder / "sqlite", options)]
    if postgres_url is not None:
        problem = postgres_problem(postgres_url)
        if problem is not None:
            print(f"PostgreSQL at {postgres_url} not reachable, skipped: {problem}", file=sys.stderr)
            return outcomes
        async with fresh_postgres_schema(postgres_url) as url:
            outcomes.append(await soak("PostgreSQL", url, folder / "postgres", options))
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=defaults.mails)
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="over how long the mails arrive")
    parser.add_argument("--kills", type=int, default=defaults.kills, help="SIGKILLs of the bot at random moments")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--quick", action="store_true", help="100 mails over 15 s, to check the harness")
    parser.add_argument("--last-kill-at-end", action="store_true", help="the last SIGKILL right after the last mail")
    args = parser.parse_args(argv)
    options = Options(mails=args.mails, seconds=args.seconds, kills=args.kills, seed=args.seed,
                      last_kill_at_end=args.last_kill_at_end)  # fmt: skip
    if args.quick:
        options = Options(mails=100, seconds=15, kills=args.kills, callers=40, claims=10, seed=args.seed,
                          last_kill_at_end=args.last_kill_at_end)  # fmt: skip
    print(f"Load average (1 / 5 / 15 min) before: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rufpool-soak-") as temporary:
        folder = Path(os.environ.get("BENCH_KEEP_DIR") or temporary)  # keep the bot's logs and databases
        for backend in ("sqlite", "postgres"):
            (folder / backend).mkdir(parents=True, exist_ok=True)
        outcomes = asyncio.run(run(options, None if args.no_postgres else args.postgres, folder))
    print(table(outcomes, options))
    for outcome in outcomes:
        for problem in outcome.result.problems[:20]:
            print(f"{outcome.backend}: {problem}")
    print(f"Load average (1 / 5 / 15 min) after: {load()}")
    print(json.dumps({o.backend: o.converged_after_s for o in outcomes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
