"""The demo's "Zeit +1 h": only a sandbox clock moves, only forward, and mails arrive at the bot's time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import clock_for, create_app
from bot.clock import ShiftableClock, system_clock
from sandbox.demo import POOL_LINES
from sandbox.demo_simulator import CallSimulator, TimeControl, control_app
from sandbox.graph import GraphStandIn
from sandbox.identity import IdentityServer
from sandbox.tls import TlsMaterial
from tests.support.bot_stack import stack_settings


def test_the_sandbox_clock_only_moves_forward() -> None:
    clock = ShiftableClock()
    before = clock()
    assert clock.advance(timedelta(hours=1)) >= before + timedelta(hours=1)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(timedelta(0))
    assert clock.offset == timedelta(hours=1)


def _time_control(clock: ShiftableClock, ticks: list[datetime]) -> TimeControl:
    async def advance(delta: timedelta) -> datetime:
        ticks.append(clock.advance(delta))
        return ticks[-1]

    return TimeControl(now=clock, advance=advance, offset=lambda: clock.offset)


async def test_time_api_moves_the_clock_and_refuses_nonsense() -> None:
    graph = GraphStandIn(mailboxes=[line.mailbox for line in POOL_LINES])
    clock, ticks = ShiftableClock(), []
    simulator = CallSimulator(graph, POOL_LINES, clock=clock)
    async with TestClient(
        TestServer(control_app(simulator, "http://playground", time=_time_control(clock, ticks)))
    ) as http:
        response = await http.post("/api/time", json={"hours": 1})
        assert response.status == 200
        state = await response.json()
        assert state["offset_hours"] == 1 and set(state["open"]) == {"zentrale", "praxis-nord"} and len(ticks) == 1
        for bad in (0, -1, 1000, "soon"):
            response = await http.post("/api/time", json={"hours": bad})
            assert response.status == 400, bad
        assert clock.offset == timedelta(hours=1)
        page = await (await http.get("/")).text()
        assert "Zeit +1 h" in page and "Bot-Uhr" in page
        form = await http.post("/time", data={"hours": "1"}, allow_redirects=False)
        assert form.status == 303 and clock.offset == timedelta(hours=2)
        mail = await simulator.simulate("missed", line_id="zentrale")
        received = graph.mailbox(POOL_LINES[0].mailbox).messages[mail.message_id].received
        assert received - datetime.now(UTC) > timedelta(hours=1, minutes=59)


async def test_without_a_time_control_the_clock_cannot_move() -> None:
    simulator = CallSimulator(GraphStandIn(mailboxes=[POOL_LINES[0].mailbox]), POOL_LINES[:1])
    async with TestClient(TestServer(control_app(simulator, "http://playground"))) as http:
        response = await http.post("/api/time", json={"hours": 1})
        assert response.status == 400
        assert "cannot be moved" in (await response.json())["error"]
        assert "Zeit +1 h" not in await (await http.get("/")).text()


def test_production_reads_the_system_clock(
    tmp_path: Path, identity_server: IdentityServer, sandbox_tls: TlsMaterial
) -> None:
    settings = stack_settings(identity_server, sandbox_tls, GraphStandIn(mailboxes=[]), tmp_path, 3978)
    assert not settings.sandbox_mode
    assert clock_for(create_app(settings)) is system_clock
    sandbox = create_app(settings.model_copy(update={"sandbox_mode": True}))
    assert isinstance(clock_for(sandbox), ShiftableClock)
