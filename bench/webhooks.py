"""The Placetel call webhook's answer time, against the Graph webhook's measured in the same run.

Both handlers run as the bot runs them (aiohttp, a SQLite file store in WAL mode, and PostgreSQL when reachable)
and are driven over HTTP on loopback: ``--repeat`` signed ``HungUp`` events with distinct call ids (HMAC check,
validation, one durable insert into the queue, answer), and as the reference as many Graph change notifications
(clientState check, validation, one insert, 202). Prints median and p95 in milliseconds and the ratio.

    python -m bench.webhooks [--repeat 500] [--postgres URL | --no-postgres]

Target (issue 19): the webhook answers within 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.run import DEFAULT_POSTGRES_URL
from bot.core.values import GLOBAL_SCOPE
from bot.graph.subscriptions import NOTIFICATION_PATH
from bot.graph.webhooks import notification_handler
from bot.placetel.notify import NOTIFY_PATH, SIGNATURE_HEADER, notify_handler, signature
from bot.storage.factory import open_store
from sandbox.schemas import fresh_postgres_schema, postgres_problem

SECRET = "bench-notify-secret-0123456789"
CLIENT_STATE = "bench-client-state"
WARM_UP = 10


@dataclass(frozen=True)
class Result:
    backend: str
    endpoint: str
    median_ms: float
    p95_ms: float


def placetel_request(n: int) -> tuple[bytes, dict[str, str]]:
    fields = {
        "event": "HungUp",
        "call_id": f"{n:064x}",
        "from": "01712345678",
        "to": "0301234500",
        "direction": "in",
        "type": "missed",
        "duration": "0",
    }
    body = urllib.parse.urlencode(fields).encode()
    return body, {"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: signature(SECRET, body)}


def graph_request(n: int) -> tuple[bytes, dict[str, str]]:
    notification = {
        "subscriptionId": "sub-1",
        "changeType": "created",
        "clientState": CLIENT_STATE,
        "resource": f"Users/u/Messages/m{n}",
        "tenantId": "t",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": f"m{n}"},
    }
    return json.dumps({"value": [notification]}).encode(), {"Content-Type": "application/json"}


async def _time(
    http: aiohttp.ClientSession, url: str, request: Callable[[int], tuple[bytes, dict[str, str]]], repeat: int
) -> tuple[float, float]:
    samples = []
    for n in range(repeat + WARM_UP):
        body, headers = request(n)
        started = time.perf_counter()
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status >= 300:
                raise RuntimeError(f"{url} answered {response.status}")
        if n >= WARM_UP:
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


async def bench_backend(backend: str, database_url: str, repeat: int) -> list[Result]:
    store = await open_store(database_url)
    app = web.Application()
    app.router.add_post(NOTIFY_PATH, notify_handler(store.jobs, {GLOBAL_SCOPE: SECRET}, lambda: None))
    app.router.add_post(NOTIFICATION_PATH, notification_handler(store.jobs, CLIENT_STATE, lambda: None))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            graph = await _time(http, base + NOTIFICATION_PATH, graph_request, repeat)
            placetel = await _time(http, base + NOTIFY_PATH, placetel_request, repeat)
    finally:
        await runner.cleanup()
        await store.close()
    return [Result(backend, "Graph notification (reference)", *graph), Result(backend, "Placetel HungUp", *placetel)]


async def run(repeat: int, postgres_url: str | None) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as folder:
        results += await bench_backend("SQLite (file, WAL)", f"sqlite:///{Path(folder) / 'bench.sqlite3'}", repeat)
    if postgres_url is not None:
        problem = postgres_problem(postgres_url)
        if problem is None:
            async with fresh_postgres_schema(postgres_url) as url:
                results += await bench_backend("PostgreSQL", url, repeat)
        else:
            print(f"PostgreSQL skipped: {problem}", file=sys.stderr)
    return results


def report(results: Sequence[Result], repeat: int) -> str:
    lines = [
        f"Webhook answer times over loopback HTTP, {repeat} requests each after {WARM_UP} warm-up requests.",
        "",
        "| backend | endpoint | median | p95 | p95 / reference |",
        "|---|---|---:|---:|---:|",
    ]
    reference = {r.backend: r for r in results if "reference" in r.endpoint}
    for r in results:
        ratio = r.p95_ms / reference[r.backend].p95_ms
        lines.append(f"| {r.backend} | {r.endpoint} | {r.median_ms:.1f} ms | {r.p95_ms:.1f} ms | {ratio:.2f} |")
    worst = max(r.p95_ms for r in results if "Placetel" in r.endpoint)
    lines += [
        "",
        f"Target: the Placetel webhook answers within 100 ms — worst p95 {worst:.1f} ms: "
        + ("met." if worst <= 100 else "NOT met."),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=500, help="timed requests per endpoint (default 500)")
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.repeat, None if args.no_postgres else args.postgres))
    print(report(results, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
