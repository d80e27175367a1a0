"""The pacer keeps every thread and every tenant under Teams' windows; a fake clock makes waiting instant."""

from __future__ import annotations

import asyncio

import pytest

from bot.teams.pacing import MARGIN_S, PRUNE_EVERY, TENANT_WINDOWS, THREAD_WINDOWS, Pacer, SlidingWindows


class FakeClock:
    """Time that passes only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def fits(times: list[float], windows: tuple[tuple[float, int], ...]) -> bool:
    """No window of any length holds more sends than its limit."""
    ordered = sorted(times)
    return all(
        ordered[i + limit] - ordered[i] >= seconds - 1e-9
        for seconds, limit in windows
        for i in range(len(ordered) - limit)
    )


def test_sliding_windows_name_the_wait() -> None:
    windows = SlidingWindows(((1.0, 2),))
    windows.record(10.0)
    windows.record(10.4)
    assert windows.delay(10.5) == pytest.approx(0.5 + MARGIN_S)
    # Exactly on the edge is one too many for Teams (it counts on arrival): only after the margin.
    assert windows.delay(11.0) == pytest.approx(MARGIN_S)
    assert windows.delay(11.0 + MARGIN_S) == 0.0
    assert not windows.is_empty(11.0)
    assert windows.is_empty(11.5)


async def test_one_thread_stays_under_every_thread_window() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    sent = []
    for _ in range(130):
        await pacer.wait("thread-1", "tenant")
        sent.append(clock.now)

    assert fits(sent, THREAD_WINDOWS)
    assert sent[6] == sent[0]  # a burst of 7 goes at once
    assert sent[7] >= sent[0] + 1.0
    assert sent[60] >= sent[0] + 30.0  # 60 per 30 s
    assert sent[-1] - sent[0] < 90.0  # but no slower than the windows demand


async def test_the_tenant_window_is_shared_by_all_threads() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    sent = []
    for n in range(90):
        await pacer.wait(f"thread-{n}", "tenant")
        sent.append(clock.now)

    assert fits(sent, TENANT_WINDOWS)
    assert sent[29] == sent[0] and sent[30] >= sent[0] + 1.0


async def test_a_busy_thread_does_not_hold_up_another_thread() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep, thread_windows=((1.0, 1),))
    finished: list[str] = []

    async def send(thread: str) -> None:
        await pacer.wait(thread, "tenant")
        finished.append(thread)

    await send("busy")
    waiting = asyncio.create_task(send("busy"))
    await asyncio.sleep(0)  # the second send to "busy" now waits for its window...
    await send("quiet")  # ...while "quiet" goes at once
    await waiting

    assert finished == ["busy", "quiet", "busy"]
    assert clock.slept == [pytest.approx(1.0 + MARGIN_S)]


async def test_tenants_are_paced_separately() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep, tenant_windows=((1.0, 1),))
    await pacer.wait("a", "tenant-1")
    await pacer.wait("b", "tenant-2")
    assert clock.slept == []
    await pacer.wait("c", "tenant-1")
    assert clock.slept == [pytest.approx(1.0 + MARGIN_S)]


async def test_forgotten_threads_are_pruned() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep, tenant_windows=((1.0, 10_000),))
    for n in range(PRUNE_EVERY - 1):
        await pacer.wait(f"thread-{n}", "tenant")
    assert pacer.tracked_threads == PRUNE_EVERY - 1

    clock.now += 3601.0  # longer than the longest thread window
    await pacer.wait("fresh", "tenant")  # the PRUNE_EVERY-th send sweeps
    assert pacer.tracked_threads == 1  # only the thread that just sent


def with_margin(windows: tuple[tuple[float, int], ...]) -> tuple[tuple[float, int], ...]:
    return tuple((seconds + MARGIN_S, limit) for seconds, limit in windows)


async def test_sends_keep_the_margin_on_every_window_edge() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    sent = []
    for _ in range(130):
        await pacer.wait("thread-1", "tenant")
        sent.append(clock.now)

    # Even a send that arrives MARGIN_S early (a faster network trip) stays inside Teams' windows.
    assert fits(sent, with_margin(THREAD_WINDOWS))


def test_booked_slots_spread_over_the_windows_and_leave_real_slots_to_live_sends() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    booked = [clock.now + pacer.book("channel") for _ in range(200)]

    assert booked == sorted(booked)
    assert fits(booked, with_margin(THREAD_WINDOWS))
    assert booked[7] > booked[0]  # not all at the same moment: each one its own slot
    # The bookings do not count against a live send: it could go right now.
    assert pacer.delay("channel", "tenant") == 0.0


async def test_the_wait_ahead_counts_the_senders_queued_for_the_thread() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep, thread_windows=((1.0, 1),))
    await pacer.wait("busy", "tenant")
    queued = [asyncio.create_task(pacer.wait("busy", "tenant")) for _ in range(3)]
    await asyncio.sleep(0)

    assert pacer.delay("busy", "tenant") >= 2 * 1.0  # two still queued behind the one sending
    await asyncio.gather(*queued)


async def test_backlog_leaves_a_reserve_for_live_sends_in_every_window() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    for _ in range(100):  # a long backlog: it fills what it may of every window
        await pacer.wait("channel", "tenant", backlog=True)

    assert pacer.delay("channel", "tenant", backlog=True) > 0  # the next backlog card waits...
    assert pacer.delay("channel", "tenant") == 0.0  # ...a live card goes at once
    live_at = clock.now
    await pacer.wait("channel", "tenant")
    assert clock.now == live_at


async def test_booked_slots_fit_the_windows_together_with_the_sends_already_made() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    sent = []
    for _ in range(60):  # a burst fills the thread's 30-second window
        await pacer.wait("channel", "tenant")
        sent.append(clock.now)

    booked = [clock.now + pacer.book("channel", backlog=False) for _ in range(40)]

    assert booked == sorted(booked)
    # Not one booked slot is inside the window the burst filled, and the plan as a whole keeps every window.
    assert fits(sent + booked, with_margin(THREAD_WINDOWS))


def test_live_sends_book_their_slots_apart_from_the_backlogs() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    backlog = [clock.now + pacer.book("channel") for _ in range(200)]

    live = clock.now + pacer.book("channel", backlog=False)

    assert backlog[-1] > clock.now + 60  # the backlog's bookings reach minutes ahead...
    assert live == clock.now  # ...a live send's slot is the first free one


async def test_a_live_send_does_not_queue_behind_backlog_sends_waiting_for_their_slots() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    for _ in range(100):  # the backlog fills what it may of every window
        await pacer.wait("channel", "tenant", backlog=True)
    finished: list[str] = []

    async def send(name: str, *, backlog: bool) -> None:
        await pacer.wait("channel", "tenant", backlog=backlog)
        finished.append(name)

    backlog = [asyncio.create_task(send(f"backlog-{n}", backlog=True)) for n in range(3)]
    await asyncio.sleep(0)  # the first backlog card sleeps until its slot, the other two queue behind it
    await send("live", backlog=False)
    await asyncio.gather(*backlog)

    assert finished == ["live", "backlog-0", "backlog-1", "backlog-2"]
