"""Parsing is bounded: hostile 300 KB bodies parse fast, parsing runs off the event loop in a worker process, and
a mail over the time budget becomes an unrecognised item.

These are the two timed checks the parser issue asks for (hostile body < 200 ms, webhook < 100 ms while parsing);
the bounds are the issue's and the measurements are taken as best of three to keep a loaded machine from flaking.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from bot.domain.events import EventKind
from bot.graph.subscriptions import NOTIFICATION_PATH
from bot.placetel import BUILTIN_PROFILES, MailMessage, ParserProfile, parse_mail
from bot.placetel.profiles import BodyPatterns, KindPatterns
from bot.placetel.runner import OVER_BUDGET_NOTE, ParserRunner
from tests.support.bot_stack import POOL_MAILBOX, BotStack
from tests.support.ingest import restartable, stored_events
from tests.support.pbx_mail import eop_headers

SIZE = 300_000
HOSTILE_UNITS = {
    "at-signs": "@",
    "word-run": "a",
    "local-parts": "a.",
    "digit-run": "9",
    "spaced-digits": "1 ",
    "phone-numbers": "030 1234567\n",
    "nested-html": "<div>",
    "nested-tel-links": "<a href='tel:+49301234567'>",
    "unclosed-comments": "<!--",
    "unclosed-tags": "<a ",
    "angle-brackets": "<",
    "markdown-links": "[](",
    "clock-times": "10:32 ",
    "labels": "Anrufer: Von: ",
}
# Hostile only for a backtracking pattern: (a|aa)+$ on "aaa…!" takes exponential time.
CATASTROPHIC = ParserProfile(
    name="slowpbx",
    sender_domains=("slowpbx.example",),
    subject_patterns=KindPatterns(missed_call=("Verpasster Anruf",)),
    body_patterns=BodyPatterns(caller=(r"(?P<value>(?:a|aa)+)$",)),
)
SLOW_BODY = "a" * 36 + "!"  # about 10 s and more per search: far over any budget


def handshakes(url: str, stop: threading.Event, latencies: list[float]) -> None:
    """Graph's validation handshake, again and again, timed from outside the bot's event loop."""
    while not stop.is_set():
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=120) as response:
            assert (response.status, response.read()) == (200, b"handshake")
        latencies.append((time.perf_counter() - started) * 1000)
        stop.wait(0.02)


def hostile_mail(unit: str, body_type: str) -> MailMessage:
    body = (unit * (SIZE // len(unit) + 1))[:SIZE]
    return MailMessage(mailbox="zentrale@musterfirma.de", message_id="m", subject="Verpasster Anruf",
                       sender_address="no-reply@placetel.de", body=body, body_type=body_type,
                       received_at=datetime(2026, 11, 27, 9, 35, tzinfo=UTC),
                       headers=eop_headers("no-reply@placetel.de"))


def best_of_three_ms(mail: MailMessage) -> float:
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        parsed = parse_mail(mail, ["+49 30 1234500"])
        timings.append((time.perf_counter() - started) * 1000)
        assert not any(note.startswith("parser error") for note in parsed.notes)
    return min(timings)


@pytest.mark.parametrize("body_type", ["text", "html"])
@pytest.mark.parametrize("unit", HOSTILE_UNITS.values(), ids=HOSTILE_UNITS.keys())
def test_a_300_kb_hostile_body_parses_in_under_200_ms(unit: str, body_type: str) -> None:
    elapsed = best_of_three_ms(hostile_mail(unit, body_type))
    print(f"{body_type} {unit!r}: {elapsed:.1f} ms")
    assert elapsed < 200


def parser_workers() -> set[int | None]:
    return {process.pid for process in multiprocessing.active_children() if process.name == "rufpool-mail-parser"}


async def test_start_readies_the_worker_before_the_first_mail() -> None:
    """Without it the first mail after a start waited about 0.3 s for the fork server and the parser's imports."""
    before = parser_workers()
    runner = ParserRunner(BUILTIN_PROFILES)
    try:
        await runner.start()
        assert len(parser_workers() - before) == 1
    finally:
        runner.close()


async def test_closing_while_the_worker_starts_leaves_no_worker_behind() -> None:
    before = parser_workers()
    runner = ParserRunner(BUILTIN_PROFILES)
    started = runner.start()
    runner.close()  # on the loop, at once: it never waits for the starting worker
    await started
    assert parser_workers() - before == set()


async def test_a_mail_over_the_budget_becomes_an_unrecognised_item_and_the_next_one_parses() -> None:
    runner = ParserRunner((CATASTROPHIC, *BUILTIN_PROFILES), budget_seconds=0.5)
    try:
        await asyncio.get_running_loop().run_in_executor(None, runner.warm_up)
        slow = MailMessage(mailbox="zentrale@musterfirma.de", message_id="slow", subject="Verpasster Anruf",
                           sender_address="pbx@slowpbx.example", body=SLOW_BODY,
                           received_at=datetime(2026, 11, 27, 9, 35, tzinfo=UTC),
                           headers=eop_headers("pbx@slowpbx.example"))
        started = time.perf_counter()
        parsed = await runner.parse(slow, ["+49 30 1234500"])
        assert time.perf_counter() - started < 10
        assert (parsed.kind, parsed.caller, parsed.notes) == (EventKind.UNRECOGNISED, None, (OVER_BUDGET_NOTE,))

        normal = await runner.parse(hostile_mail("Von: '0151 11223344'\n", "text"), ["+49 30 1234500"])
        assert (normal.kind, normal.caller) == (EventKind.MISSED_CALL, "+4915111223344")
    finally:
        runner.close()


async def test_the_webhook_answers_in_under_100_ms_while_mails_are_parsed(bot_stack: BotStack) -> None:
    """Graph's validation handshake and notifications keep being answered while the parser worker is busy
    for seconds (two mails that each run into the 2 s budget)."""
    settings = bot_stack.settings.model_copy(
        update={"parser_profiles": json.dumps([CATASTROPHIC.model_dump(mode="json")])}
    )
    async with restartable(bot_stack) as bot:
        await bot.stop()
        await bot.start(settings)
        await bot_stack.settle()
        for n in range(2):
            bot_stack.graph.deliver_mail(POOL_MAILBOX, "Verpasster Anruf", f"pbx{n}@slowpbx.example", SLOW_BODY)
        latencies: list[float] = []
        stop = threading.Event()
        url = f"{bot_stack.bot_url}{NOTIFICATION_PATH}?validationToken=handshake"
        # The probe runs in its own thread: a blocked event loop shows as a slow answer, not as a skipped sample.
        probe = threading.Thread(target=handshakes, args=(url, stop, latencies), daemon=True)
        probe.start()
        try:
            await bot_stack.settle()
        finally:
            stop.set()
            await asyncio.get_running_loop().run_in_executor(None, probe.join, 60)
        ordered = sorted(latencies)
        p95 = ordered[int(len(ordered) * 0.95)]
        print(f"{len(latencies)} handshakes while parsing: median {ordered[len(ordered) // 2]:.1f} ms, "
              f"95th percentile {p95:.1f} ms, max {ordered[-1]:.1f} ms")
        # 95 % of answers within the 100 ms, and none stalled: a single sample may lose the CPU for a moment
        # on a busy machine; parsing on the event loop instead makes answers wait seconds (measured: 17 s).
        assert p95 < 100
        assert ordered[-1] < 500
        events = await stored_events(bot_stack)
        assert len(events) == 2
        assert all(e.kind is EventKind.UNRECOGNISED and e.caller is None for e in events)  # over the 2 s budget
        assert len(latencies) >= 50  # the parsing took seconds, and the samples cover that time
