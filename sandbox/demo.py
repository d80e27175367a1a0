"""``make demo``: Rufpool on one machine, with Microsoft's Agents Playground as the Teams client.

    python -m sandbox.demo [run] [--playground-port 56150] [--control-port 56151] [--data-dir DIR]
    python -m sandbox.demo simulate missed|voicemail|repeat|done|callback-reached|callback-missed
        [--from NUMBER|anonym] [--line ID] [--message ID]

``run`` starts, in this process: the identity stand-in (https, Graph tokens via azure-identity), the Graph stand-in
with two pool mailboxes, the bot (SQLite, ``SANDBOX_MODE``: the Playground sends no tokens), the Placetel stand-in
(signed call webhooks to the bot) and the simulation page;
and the Playground as a child process in its own process group. It then links the Playground team's channels to the
pool lines through the production path (installation ``conversationUpdate``, then ``@Rufpool verbinden <line>`` by
an admin), prints the URLs and a ``DEMO_READY {json}`` line, and runs until SIGINT or SIGTERM, which stop everything.
``simulate`` talks to a running demo's page API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import SERVICES, create_app
from bot.clock import ShiftableClock
from bot.config import PoolLine, Settings
from bot.core import effects
from bot.domain.callbacks import AutoDone
from bot.line_rules import Escalation, LineHours, LineReminders, Mentionable
from bot.logging_setup import configure_logging
from bot.placetel.notify import NOTIFY_PATH
from sandbox.demo_playground import (
    CALLBACK_CHANNEL_ID,
    CURRENT_USER,
    REPO_ROOT,
    TEAM_ID,
    TEAM_USERS,
    TENANT_ID,
    PlaygroundClient,
    PlaygroundProcess,
)
from sandbox.demo_simulator import KINDS, CallSimulator, SimulationError, TimeControl, control_app
from sandbox.graph import GraphStandIn
from sandbox.identity import GRAPH_AUDIENCE, IdentityServer, IdentityStandIn, RegisteredApp
from sandbox.placetel import PlacetelStandIn
from sandbox.tls import ensure_tls

log = logging.getLogger("rufpool.demo")

DEFAULT_PLAYGROUND_PORT = 56150
DEFAULT_CONTROL_PORT = 56151
READY_MARKER = "DEMO_READY"
START_TIMEOUT_S = 90.0
GRAPH_TENANT = "7e4a1f00-0000-4000-8000-00000000a001"

TEAM_SIP_USER = "7777anna@fpbx.example"
"""The SIP user the simulated callbacks are placed from: Anna at the front desk."""
TEAM_EXTENSIONS = {TEAM_SIP_USER: "Anna Schmidt"}
# Reminders are off by default; the demo switches them on: Zentrale keeps office hours in Berlin (so "Zeit +1 h"
# shows the morning overview after a night), Praxis Nord long hours in Hamburg.
ANNA = Mentionable(id=CURRENT_USER.aad_object_id, name=CURRENT_USER.name)
BEN = Mentionable(id=TEAM_USERS[0].aad_object_id, name=TEAM_USERS[0].name)
POOL_LINES = (
    PoolLine(
        id="zentrale",
        mailbox="zentrale@praxis.example",
        numbers=["+49 30 1234500"],
        display_name="Zentrale",
        auto_done_on_callback=AutoDone.REACHED,
        team_extensions=TEAM_EXTENSIONS,
        hours=LineHours(weekly="Mo-Fr 08:00-12:00,13:00-18:00", state="BE", closed=["12-24", "12-31"]),
        reminders=LineReminders(enabled=True, mention=[ANNA], escalate_after=2, escalate_to=Escalation(user=BEN)),
    ),
    PoolLine(
        id="praxis-nord",
        mailbox="nord@praxis.example",
        numbers=["+49 40 5550100"],
        display_name="Praxis Nord",
        team_extensions=TEAM_EXTENSIONS,
        hours=LineHours(weekly="Mo-Sa 07:00-20:00", state="HH"),
        reminders=LineReminders(enabled=True, mention=[ANNA]),
    ),
)
# People the demo's Graph knows, so that cards name these callers (CALLER_SOURCES): a contact of the Zentrale's
# mailbox and a user of the directory.
DEMO_CONTACTS: dict[str, list[dict[str, Any]]] = {
    "zentrale@praxis.example": [
        {"displayName": "Dr. Weber", "companyName": "Labor Nord", "businessPhones": ["0221 4710355"]},
        {"displayName": "Frau Lindner", "companyName": "Sanitätshaus Lindner", "mobilePhone": "0172 5550123"},
    ]
}
DEMO_USERS: list[dict[str, Any]] = [
    {"displayName": "Ben Krüger", "department": "Buchhaltung", "mobilePhone": "+49 151 22233344"}
]
# Which Playground channel each line is linked to at start.
LINKED_CHANNELS = {"zentrale": CALLBACK_CHANNEL_ID, "praxis-nord": TEAM_ID}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    playground_port: int
    control_port: int


@dataclass(frozen=True)
class DemoUrls:
    playground: str
    control: str
    bot: str
    graph: str


def bot_settings(
    identity: IdentityServer,
    graph: GraphStandIn,
    graph_app: RegisteredApp,
    data_dir: Path,
    port: int,
    notify_secret: str,
) -> Settings:
    """The bot's configuration: auth off towards the Playground, Graph through azure-identity and the stand-ins."""
    trust_bundle = ensure_tls(data_dir / "tls").trust_bundle
    values: dict[str, Any] = {
        "app_id": "",
        "app_password": "",
        "sandbox_mode": True,
        "app_tenant_id": TENANT_ID,  # activities of other tenants are refused, in the sandbox too
        "teams_service_urls": ["http://127.0.0.1:*/*", "http://localhost:*/*"],  # the Playground's connector
        "graph_tenant_id": graph_app.tenant_id,
        "graph_client_id": graph_app.client_id,
        "graph_client_secret": graph_app.client_secret,
        "graph_base_url": graph.base_url + "/v1.0",
        "graph_authority_host": identity.base_url,
        "graph_ca_bundle": trust_bundle,
        "graph_client_state": secrets.token_urlsafe(32),
        "database_url": f"sqlite:///{data_dir / 'rufpool.sqlite3'}",
        "public_base_url": f"http://127.0.0.1:{port}",
        "port": port,
        "pool_lines": [line.model_dump() for line in POOL_LINES],
        "link_admins": [CURRENT_USER.aad_object_id],
        "default_locale": "de-DE",
        "caller_sources": "contacts,directory,pbx",
        "placetel_notify_secret": notify_secret,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class PortBusy(SystemExit):
    """A port the demo needs is taken; the message names it and how to choose another."""

    def __init__(self, port: int, what: str, make_variable: str, option: str) -> None:
        super().__init__(
            f"Port {port} ({what}) is in use. Stop what uses it, or choose another port: "
            f"make demo {make_variable}=<port>  (or: python -m sandbox.demo {option} <port>)"
        )


def port_in_use(port: int) -> bool:
    """Something listens on ``port`` on this machine (any address) or keeps us from binding it on loopback."""
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((address, port)) == 0:
                return True
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def check_ports(options: DemoOptions) -> None:
    """Fail at once, naming the port, instead of starting the Playground on a port that is taken."""
    if port_in_use(options.playground_port):
        raise PortBusy(options.playground_port, "Agents Playground", "PLAYGROUND_PORT", "--playground-port")
    if port_in_use(options.control_port):
        raise PortBusy(options.control_port, "simulation page", "CONTROL_PORT", "--control-port")


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as error:
        await runner.cleanup()
        raise SystemExit(f"Port {port} is in use ({error.strerror}); choose another with the options") from None
    return runner


async def repost_open_cases(bot: web.Application) -> int:
    """Post the card of every open or claimed case again (a freshly opened Playground shows an empty channel)."""
    services = bot[SERVICES]
    cases, _ = await services.store.cases.list_active([line.id for line in POOL_LINES], limit=1000)
    for case in cases:
        await services.store.jobs.add([effects.RepostCard(case.id)])
    services.runner.wake()
    return len(cases)


async def _link_lines(playground: PlaygroundClient, service_url: str, bot: web.Application) -> None:
    """Install the bot in the team and link each line, as an admin would in Teams."""
    await playground.install_bot_in_team(service_url)
    links = bot[SERVICES].store.links
    for line in POOL_LINES:
        # The Playground answers before the bot has handled the message.
        await playground.post_message(LINKED_CHANNELS[line.id], f"verbinden {line.id}")
        while True:
            if await links.link_for_line(line.id) is not None:
                break
            await asyncio.sleep(0.1)


async def _wait_for_subscriptions(graph: GraphStandIn, count: int) -> None:
    """The bot subscribes to each pool mailbox in the background after start-up; mails before that are only
    picked up by the catch-up, later."""
    while True:
        if len(graph.subscriptions()) >= count:
            return
        await asyncio.sleep(0.1)


def _time_control(bot: web.Application) -> TimeControl:
    """The bot's sandbox clock, moved forward by the demo page; each move runs the reminders at once."""

    def clock() -> ShiftableClock:
        shiftable = bot[SERVICES].clock
        if not isinstance(shiftable, ShiftableClock):
            raise SimulationError("the bot's clock is not shiftable (not in SANDBOX_MODE)")
        return shiftable

    async def advance(delta: timedelta) -> datetime:
        services = bot[SERVICES]
        now = clock().advance(delta)
        await services.reminders.tick()
        services.runner.wake()
        return now

    return TimeControl(now=lambda: clock()(), advance=advance, offset=lambda: clock().offset)


@dataclass(frozen=True)
class RunningDemo:
    urls: DemoUrls
    playground: PlaygroundProcess


@contextlib.asynccontextmanager
async def demo_stack(options: DemoOptions) -> AsyncIterator[RunningDemo]:
    """Everything running and linked; torn down in reverse order on exit, also when start-up fails half-way."""
    check_ports(options)
    async with contextlib.AsyncExitStack() as stack:
        bot_port = free_port()
        playground = PlaygroundProcess(
            options.data_dir / "playground", f"http://127.0.0.1:{bot_port}/api/messages", options.playground_port
        )
        stack.push_async_callback(playground.stop)
        await playground.start()  # the slowest part: it starts while the rest comes up

        graph_app = RegisteredApp(
            "7e4a1f00-0000-4000-8000-0000000000e1",
            secrets.token_urlsafe(24),
            GRAPH_TENANT,
            ("Mail.ReadWrite", "Contacts.Read", "User.Read.All"),
        )
        identity = IdentityServer(IdentityStandIn([graph_app]), ensure_tls(options.data_dir / "tls")).start()
        stack.callback(identity.stop)
        graph = GraphStandIn(token_validator=identity.stand_in.token_validator(GRAPH_AUDIENCE), tenant_id=GRAPH_TENANT)
        for line in POOL_LINES:
            graph.add_mailbox(line.mailbox, line.display_name)
        for mailbox, contacts in DEMO_CONTACTS.items():
            for contact in contacts:
                graph.upsert_contact(mailbox, contact)
        for user in DEMO_USERS:
            graph.upsert_user(user)
        await graph.start()
        stack.push_async_callback(graph.stop)

        notify_secret = secrets.token_urlsafe(32)
        settings = bot_settings(identity, graph, graph_app, options.data_dir, bot_port, notify_secret)
        bot = create_app(settings)
        stack.push_async_callback((await _serve(bot, bot_port)).cleanup)

        placetel_http = await stack.enter_async_context(aiohttp.ClientSession())
        placetel = PlacetelStandIn(placetel_http, settings.public_base_url + NOTIFY_PATH, notify_secret)
        simulator = CallSimulator(
            graph, POOL_LINES, placetel, team_sip_user=TEAM_SIP_USER, clock=lambda: bot[SERVICES].clock()
        )
        control = await _serve(
            control_app(simulator, playground.url, lambda: repost_open_cases(bot), _time_control(bot)),
            options.control_port,
        )
        stack.push_async_callback(control.cleanup)

        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await playground.wait_ready()
        except TimeoutError:
            raise SystemExit(
                f"The Agents Playground did not answer on port {options.playground_port} within "
                f"{START_TIMEOUT_S:.0f} s. Its log:\n{playground.log_tail()}"
            ) from None
        async with asyncio.timeout(START_TIMEOUT_S):
            http = await stack.enter_async_context(aiohttp.ClientSession())
            await _link_lines(PlaygroundClient(http, playground.url), f"{playground.url}/_connector", bot)
            await _wait_for_subscriptions(graph, len(POOL_LINES))
        control_url = f"http://127.0.0.1:{options.control_port}"
        yield RunningDemo(DemoUrls(playground.url, control_url, settings.public_base_url, graph.base_url), playground)


def simulate_command(control_url: str) -> str:
    """The simulate command as it works from any shell: this interpreter's absolute path (the venv's), the
    repository as the working directory, and the control URL when it is not the default."""
    target = "" if control_url == f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}" else f" --control-url {control_url}"
    python = shlex.quote(sys.executable)
    return f"cd {shlex.quote(str(REPO_ROOT))} && {python} -m sandbox.demo simulate{target}"


def _banner(urls: DemoUrls) -> str:
    command = simulate_command(urls.control)
    return f"""
Rufpool demo is running.

  Teams (Agents Playground): {urls.playground}
      team "Praxis": channel "Rückrufe Zentrale" shows line Zentrale, "General" shows line Praxis Nord
      opened it after simulating calls? The channel is empty (a Playground limit):
      "Offene Fälle erneut posten" on the simulation page posts the open cases again.
  Simulate calls:            {urls.control}   ("Zeit +1 h" shows reminders and the morning overview)
      or, from any shell:
          {command} missed --from "0171 2345678"
          {command} missed --from anonym      (a withheld number)
          {command} voicemail | repeat | done
          {command} callback-reached | callback-missed   (calls the last caller back)

Ctrl-C stops everything.
"""


async def run(options: DemoOptions) -> int:
    """Until SIGINT, SIGTERM or SIGHUP (0) or until the Playground dies (1). A signal during start-up unwinds
    what was started so far."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    stop, ready = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if ready.is_set():
            stop.set()
        elif main is not None:
            main.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, on_signal)
    try:
        async with demo_stack(options) as demo:
            ready.set()
            print(_banner(demo.urls), flush=True)
            print(f"{READY_MARKER} {json.dumps({**asdict(demo.urls), 'data_dir': str(options.data_dir)})}", flush=True)
            waits = {asyncio.create_task(demo.playground.exited()), asyncio.create_task(stop.wait())}
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if not stop.is_set():
                print("The Agents Playground has exited:\n" + demo.playground.log_tail(), file=sys.stderr, flush=True)
            print("Stopping the demo ...", flush=True)
    except asyncio.CancelledError:
        print("Start-up interrupted; stopped.", flush=True)
        return 0
    return 0 if stop.is_set() else 1


async def simulate(control_url: str, kind: str, caller: str | None, line: str | None, message: str | None) -> int:
    body = {"kind": kind, "caller": caller, "line": line, "message": message}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
            http.post(control_url.rstrip("/") + "/api/simulate", json=body) as response,
        ):
            result = await response.json()
    except aiohttp.ClientError as error:
        print(f"no demo answers at {control_url} ({error}); start it with `make demo`", file=sys.stderr)
        return 1
    if response.status != 200:
        print(result.get("error", response.reason), file=sys.stderr)
        return 1
    if "flag_status" in result:
        flag = f"Outlook flag: {result['flag_status']}, id {result['message_id']}"
    else:
        flag = f"Placetel call id {result['call_id']}"
    print(f"{result['line']}: {result['subject']} ({flag})")
    return 0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.demo", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    run_parser = commands.add_parser("run", help="start the demo (the default)")
    for sub in (parser, run_parser):
        sub.add_argument("--playground-port", type=int, default=DEFAULT_PLAYGROUND_PORT)
        sub.add_argument("--control-port", type=int, default=DEFAULT_CONTROL_PORT)
        sub.add_argument("--data-dir", type=Path, help="keep the database here (default: a fresh temp dir)")
        sub.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sim = commands.add_parser("simulate", help="simulate a call or an Outlook click in a running demo")
    sim.add_argument("kind", choices=KINDS)
    sim.add_argument(
        "--from",
        dest="caller",
        help="the caller's number, or anonym for a withheld one "
        "(default: a new number; repeat and callbacks: the last)",
    )
    sim.add_argument("--line", help="pool line id (default: the first)")
    sim.add_argument("--message", help="done: this mail id (default: the newest open mail of --from)")
    sim.add_argument("--control-url", default=f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.command == "simulate":
        return asyncio.run(simulate(args.control_url, args.kind, args.caller, args.line, args.message))
    configure_logging(args.log_level)
    # botbuilder warns about every Teams channelData field it has no model attribute for: noise here.
    logging.getLogger("msrest.serialization").setLevel(logging.ERROR)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="rufpool-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(run(DemoOptions(data_dir.resolve(), args.playground_port, args.control_port)))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed: nothing was started yet
        return 0
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
