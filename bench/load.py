"""HTTP load for the webhook benchmarks, and the reference it is compared with: a bare aiohttp 202 handler.

``python -m bench.load bare PORT`` serves the reference in its own process (as the bot runs in its own): it reads the
body and answers 202, nothing else. Open-loop load sends at a fixed rate whatever the answers do (latency is measured
from the planned send time, so a stalled server cannot hide its queue); closed-loop load keeps N requests in flight to
find the saturated throughput.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.stack import REPOSITORY, free_port, wait_until

BodyFactory = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class OpenLoopResult:
    sent: int
    accepted: int
    latencies_ms: list[float]
    seconds: float


@dataclass(frozen=True, slots=True)
class SaturationResult:
    completed: int
    accepted: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, force_close=False),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def _post(http: aiohttp.ClientSession, url: str, body: bytes) -> int:
    try:
        async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def open_loop(url: str, body: BodyFactory, rate: float, seconds: float, connections: int = 64) -> OpenLoopResult:
    total = int(rate * seconds)
    latencies: list[float] = []
    accepted = 0
    async with _session(connections) as http:
        start = time.perf_counter() + 0.05

        async def one(n: int) -> None:
            nonlocal accepted
            planned = start + n / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status = await _post(http, url, body(n))
            latencies.append((time.perf_counter() - planned) * 1000)
            accepted += status == 202

        await asyncio.gather(*(one(n) for n in range(total)))
        elapsed = time.perf_counter() - start
    return OpenLoopResult(total, accepted, latencies, elapsed)


async def closed_loop(url: str, body: BodyFactory, concurrency: int, seconds: float) -> SaturationResult:
    counter = itertools.count()
    completed = accepted = 0
    async with _session(concurrency) as http:
        for _ in range(concurrency):  # warm the connections
            await _post(http, url, body(next(counter)))
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal completed, accepted
            while time.perf_counter() < deadline:
                status = await _post(http, url, body(next(counter)))
                completed += 1
                accepted += status == 202

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return SaturationResult(completed, accepted, elapsed)


class BareServer:
    """The reference: aiohttp reading the body and answering 202, in its own process."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/notify"
        self._folder = folder
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> BareServer:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load", "bare", str(self.port), cwd=self._folder,
            env={"PYTHONPATH": str(REPOSITORY)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                return await _post(http, self.url, b"{}") == 202

            if not await wait_until(up, 30, 0.05):
                raise RuntimeError("the bare aiohttp server did not start")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            await self._process.wait()


async def _accept(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202)


def serve_bare(port: int) -> None:
    app = web.Application()
    app.router.add_post("/notify", _accept)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare"]:
        serve_bare(int(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m bench.load bare PORT")
