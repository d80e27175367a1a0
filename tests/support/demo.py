"""``make demo`` under test: ``python -m sandbox.demo`` as a subprocess on free ports, the Playground's event
stream, and the process tree (Linux ``/proc``) to prove that stopping leaves no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.demo import READY_MARKER, free_port
from sandbox.demo_playground import CALLBACK_CHANNEL_ID, PLAYGROUND_BIN

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0
EVENT_TIMEOUT_S = 60.0
CARD_TYPE = "application/vnd.microsoft.card.adaptive"

requires_playground = [
    pytest.mark.playground,
    pytest.mark.skipif(not PLAYGROUND_BIN.exists(), reason="the Agents Playground is not installed (npm ci)"),
]


# Processes ----------------------------------------------------------------------------------------------------


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent_of(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def still_alive(pids: set[int], guard: float = 30.0) -> list[int]:
    """Those of ``pids`` still running once they had ``guard`` seconds to end. Some end only after the demo did
    (the parser's fork server leaves when its parent's pipe closes): only a hang fails, no timing is asserted."""
    deadline = time.monotonic() + guard
    while (running := sorted(pid for pid in pids if alive(pid))) and time.monotonic() < deadline:
        time.sleep(0.1)
    return running


@dataclass
class DemoProcess:
    process: subprocess.Popen[bytes]
    log: Path
    ready: dict[str, str] = field(default_factory=dict)

    @property
    def playground(self) -> str:
        return self.ready["playground"]

    @property
    def control(self) -> str:
        return self.ready["control"]

    @property
    def graph(self) -> str:
        return self.ready["graph"]

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith(READY_MARKER + " "):
                    self.ready = json.loads(line.split(" ", 1)[1])
                    return
            if self.process.poll() is not None:
                pytest.fail(f"the demo exited with {self.process.returncode}:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        pytest.fail(f"the demo was not ready within {START_TIMEOUT_S}s:\n{self.output()[-4000:]}")

    def stop(self, signum: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Signal the demo and wait; kill whatever is left if it does not end in time."""
        if self.process.poll() is None:
            tree = descendants(self.process.pid)
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in [self.process.pid, *tree]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start_demo(tmp: Path, *, keep_data: bool = True) -> DemoProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / "demo.log"
    args = ["--playground-port", str(free_port()), "--control-port", str(free_port())]
    if keep_data:
        args += ["--data-dir", str(tmp / "data")]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.demo", "run", *args],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    demo = DemoProcess(process, log)
    try:
        demo.wait_ready()
    except BaseException:
        demo.stop()
        raise
    return demo


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    running = start_demo(tmp_path / "demo")
    try:
        yield running
    finally:
        running.stop()


# The Playground's event stream -----------------------------------------------------------------------------

Event = dict[str, Any]


class PlaygroundStream:
    """The ``createMessage``/``updateMessage`` events the Playground's UI receives, all kept for inspection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self.events: list[Event] = []

    async def wait_for(self, predicate: Callable[[Event], bool], what: str) -> Event:
        """The first event, received so far or later, that matches."""
        matches = [event for event in self.events if predicate(event)]
        try:
            async with asyncio.timeout(EVENT_TIMEOUT_S):
                while not matches:
                    event = json.loads(await self._ws.receive_str())
                    self.events.append(event)
                    if predicate(event):
                        matches.append(event)
        except TimeoutError:
            actions = [
                (e.get("action"), e.get("actionConversationId"), (e["message"].get("text") or "")[:80])
                for e in self.events
            ]
            pytest.fail(f"no event {what} within {EVENT_TIMEOUT_S}s; events: {actions}")
        return matches[0]


@contextlib.asynccontextmanager
async def playground_stream(http: aiohttp.ClientSession, playground_url: str) -> AsyncIterator[PlaygroundStream]:
    ws_url = playground_url.replace("http://", "ws://") + "/_ws_conversation/v1/conversations/stream"
    async with http.ws_connect(ws_url) as ws:
        yield PlaygroundStream(ws)


# Reading cards ------------------------------------------------------------------------------------------------


def card_of(event: Event) -> dict[str, Any] | None:
    attachments = event.get("message", {}).get("attachments") or []
    cards = [a["content"] for a in attachments if a.get("contentType") == CARD_TYPE]
    return cards[0] if cards else None


def texts(node: Any) -> list[str]:
    """Every ``text`` (and action title) in a card, depth first."""
    if isinstance(node, dict):
        own = [str(node[key]) for key in ("text", "title") if isinstance(node.get(key), str)]
        return own + [text for value in node.values() for text in texts(value)]
    if isinstance(node, list):
        return [text for item in node for text in texts(item)]
    return []


def actions(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The card's ``Action.Execute`` buttons: verb → data."""
    return {a["verb"]: a.get("data", {}) for a in card.get("actions", []) if a.get("type") == "Action.Execute"}


def is_case_card_post(event: Event, channel_id: str = CALLBACK_CHANNEL_ID) -> bool:
    """A new thread in the channel whose root is a case card (a link confirmation has no buttons)."""
    card = card_of(event)
    return (
        event.get("action") == "createMessage"
        and event.get("actionConversationId") == channel_id
        and card is not None
        and bool(actions(card))
    )


def is_card_update(event: Event, message_id: str, text: str) -> bool:
    card = card_of(event)
    return (
        event.get("action") == "updateMessage"
        and event["message"]["messageId"] == message_id
        and card is not None
        and any(text in t for t in texts(card))
    )


def is_thread_reply(event: Event, thread_id: str, text: str) -> bool:
    return (
        event.get("action") == "createMessage"
        and event.get("actionConversationId") == thread_id
        and text in (event["message"].get("text") or "")
    )
