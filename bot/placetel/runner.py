"""Parsing off the event loop, in a worker process, with a time budget per mail.

The parser is linear, but configured profiles bring their own regular expressions, and Python's ``re`` holds the
GIL for a whole match: in a thread, a pathological pattern would still stall every request. So mails are parsed
in a separate process; a mail that takes longer than the budget gets its worker killed (the next mail starts a
fresh one) and becomes an unrecognised item with the note ``parser time budget exceeded``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from bot.core.values import MailMessage, ParsedMail
from bot.placetel.parser import parse_mail, unrecognised
from bot.placetel.profiles import ParserProfile

log = logging.getLogger(__name__)

PARSE_BUDGET_SECONDS = 2.0
"""Time one mail may take in the worker (a 300 KB hostile body takes well under 0.2 s)."""
WORKER_START_SECONDS = 60.0
"""Time a fresh worker may take to start and import the parser (not counted against a mail's budget)."""
OVER_BUDGET_NOTE = "parser time budget exceeded"


def _worker(connection: Connection, profiles: tuple[ParserProfile, ...], region: str) -> None:
    """The worker process: parse every (mail, pool numbers) it receives until the pipe closes."""
    connection.send("ready")
    while True:
        try:
            mail, pool_numbers = connection.recv()
        except (EOFError, OSError):
            return
        connection.send(parse_mail(mail, pool_numbers, profiles, region))


def _context() -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    """A fork server where there is one (new workers are forked from a process that has the parser imported
    already, and never inherit the bot's threads or sockets), else a spawned interpreter."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(["bot.placetel.parser"])
        return forkserver
    return multiprocessing.get_context("spawn")


class ParserRunner:
    """Parses mails one at a time in a worker process; :meth:`parse` never raises and never blocks the loop."""

    def __init__(
        self, profiles: Sequence[ParserProfile], *, budget_seconds: float = PARSE_BUDGET_SECONDS, region: str = "DE"
    ) -> None:
        self._profiles = tuple(profiles)
        self._budget = budget_seconds
        self._region = region
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-parser")
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._closed = False

    def start(self) -> asyncio.Future[None]:
        """Start the worker in the background, so that the first mail after a start does not wait for the fork
        server to import the parser (about 0.3 s); a failure here only means the first mail starts it. The future
        is done when the worker is ready (only tests wait for it)."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, self.warm_up)
        future.add_done_callback(_log_warm_up_failure)
        return future

    async def parse(self, mail: MailMessage, pool_numbers: Sequence[str]) -> ParsedMail:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._parse_blocking, mail, tuple(pool_numbers))

    def _parse_blocking(self, mail: MailMessage, pool_numbers: tuple[str, ...]) -> ParsedMail:
        with self._lock:
            try:
                connection = self._ready_worker()
                connection.send((mail, pool_numbers))
                if connection.poll(self._budget):
                    result = connection.recv()
                    if isinstance(result, ParsedMail):
                        return result
                log.warning("a mail exceeded the parser's time budget of %.1f s; worker restarted", self._budget)
                self._stop_worker()
                return unrecognised(mail, OVER_BUDGET_NOTE)
            except Exception as exc:  # a dead worker or an unpicklable mail: still an item, and a fresh worker
                log.warning("parser worker failed (%s); worker restarted", type(exc).__name__)
                self._stop_worker()
                return unrecognised(mail, f"parser error: {type(exc).__name__}")
            finally:
                self._stop_worker_if_closed()

    def _ready_worker(self) -> Connection:
        if self._connection is not None and self._process is not None and self._process.is_alive():
            return self._connection
        self._stop_worker()
        context = _context()
        parent, child = context.Pipe()
        process = context.Process(
            target=_worker, args=(child, self._profiles, self._region), name="rufpool-mail-parser", daemon=True
        )
        process.start()
        child.close()
        self._process, self._connection = process, parent
        if not parent.poll(WORKER_START_SECONDS) or parent.recv() != "ready":
            raise TimeoutError("the parser worker did not start")
        return parent

    def _stop_worker(self) -> None:
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is not None:
            process.kill()
            process.join(timeout=5)

    def warm_up(self) -> None:
        """Start the worker now (blocking) rather than on the first mail."""
        with self._lock:
            try:
                if not self._closed:
                    self._ready_worker()
            finally:
                self._stop_worker_if_closed()

    def _stop_worker_if_closed(self) -> None:
        if self._closed:
            self._stop_worker()

    def close(self) -> None:
        """Stop the worker. Never waits for the lock: a thread holding it (a parse, a worker starting) stops the
        worker itself when it is done, so closing cannot stall the event loop."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._stop_worker()
            finally:
                self._lock.release()
        self._executor.shutdown(wait=False)


def _log_warm_up_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("the parser worker did not start in advance (%s); the first mail starts it",
                    type(future.exception()).__name__)
