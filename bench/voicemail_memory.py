"""Memory of one voicemail play: the bot's RSS growth while a 20 MB recording goes from Graph to a listener.

The Graph stand-in runs in its own process (its copy of the recording must not count) and the listener is ``curl``
(its buffers neither). This process is the bot's side: the real ``voicemail_handler`` on a local port, the real
``GraphMailboxes`` over msgraph-sdk, a real store with the case and a link issued the way a click issues it. A
thread samples this process's RSS every 2 ms during the play. As the reference, measured in the same run, the same
attachment is then read the way the bot did before (``GET …/attachments/{id}``: JSON with base64 ``contentBytes``,
decoded by the SDK) — the ratio shows what streaming saves.

    python -m bench.voicemail_memory [--megabytes 20]

Target (issue 15): a 20 MB voicemail plays with the bot's RSS growing by less than 10 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from azure.core.credentials import AccessToken
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient

from bot.core.effects import no_effects
from bot.core.voicemail import VOICEMAIL_PATH, VoicemailAccess
from bot.domain.events import CallEvent, EventKind, MailSource, Voicemail
from bot.graph.client import slim_entity_deserializers
from bot.graph.mailbox import GraphMailboxes, request_config
from bot.storage.factory import open_store
from bot.web.voicemail import voicemail_handler

MAILBOX = "zentrale@praxis.example"
TARGET_MB = 10.0


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class PeakSampler:
    """The highest RSS seen while running, sampled from a thread every 2 ms."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.002)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


class FixedToken:
    """The stand-in runs without token validation; the SDK still wants a credential."""

    async def get_token(self, *_scopes: str, **_kwargs: Any) -> AccessToken:
        return AccessToken("bench-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None


def graph_client(base_url: str) -> GraphServiceClient:
    """Like the bot's (``build_graph_client``), on a fixed token: without the slim ``Entity`` deserializers the first
    attachment parsed imports the SDK's 1,200 models, 34 MB the recording has nothing to do with."""
    slim_entity_deserializers()
    auth = AzureIdentityAuthenticationProvider(FixedToken(), scopes=["https://graph.microsoft.com/.default"],  # type: ignore[arg-type]
                                               allowed_hosts=["127.0.0.1"])  # fmt: skip
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = base_url
    return GraphServiceClient(request_adapter=adapter)


def start_graph_stand_in() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.graph", "--mailbox", MAILBOX],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,  # `sandbox` is not installed: it runs from the checkout
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("GRAPH_STAND_IN_READY"):
            return process, line.split()[1]
    raise RuntimeError("the Graph stand-in did not start")


async def deliver(base_url: str, audio_size: int) -> str:
    audio = base64.b64encode(os.urandom(audio_size)).decode()
    body = {
        "subject": "Neue Sprachnachricht von '0171 2345678' auf '030 1234500'",
        "from": "no-reply@placetel.de",
        "body": "Sie haben eine neue Sprachnachricht erhalten.",
        "attachments": [{"name": "voicemail.mp3", "contentType": "audio/mpeg", "contentBytes": audio}],
    }
    url = f"{base_url}/_control/mailboxes/{MAILBOX}/messages"
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        response.raise_for_status()
        return str((await response.json())["id"])


async def measure(action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """RSS growth (MB) over the baseline while ``action`` runs, and its result."""
    gc.collect()
    await asyncio.sleep(0.2)
    baseline = rss_bytes()
    with PeakSampler() as sampler:
        result = await action()
    return (sampler.peak - baseline) / 1e6, result


async def run(megabytes: int) -> int:
    stand_in, base_url = start_graph_stand_in()
    runner: web.AppRunner | None = None
    try:
        message_id = await deliver(base_url, megabytes * 1_000_000)
        mailboxes = GraphMailboxes(graph_client(base_url + "/v1.0"))
        attachments = (await mailboxes.get_message(MAILBOX, message_id)).attachments  # type: ignore[union-attr]
        attachment_id = attachments[0].id
        with tempfile.TemporaryDirectory() as tmp:
            store = await open_store(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
            mail = MailSource(MAILBOX, message_id, None, "Neue Sprachnachricht", "no-reply@placetel.de")
            event = CallEvent(
                source_id=CallEvent.source_id_for(MAILBOX, message_id),
                kind=EventKind.VOICEMAIL,
                line_id="zentrale",
                caller="+491712345678",
                received_at=datetime.now(UTC),
                mail=mail,
                voicemail=Voicemail(attachment_id, "voicemail.mp3", 42),
            )
            case = (await store.cases.record_event(event, effects=no_effects)).case
            app = web.Application()
            access = VoicemailAccess(store, "http://127.0.0.1", timedelta(minutes=15))
            app.router.add_get(VOICEMAIL_PATH, voicemail_handler(access, None, store, mailboxes))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            url = (await access.issue(case, event.source_id, "bench-user")).replace("http://127.0.0.1", f"http://127.0.0.1:{port}")

            async def play() -> int:
                curl = await asyncio.create_subprocess_exec(
                    "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url,
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, _ = await curl.communicate()
                status, size = out.decode().split()
                assert status == "200", status
                return int(size)

            async def load_whole() -> int:
                builder = mailboxes._message(MAILBOX, message_id).attachments.by_attachment_id(attachment_id)
                attachment = await builder.get(request_config())
                return len(attachment.content_bytes)  # type: ignore[union-attr]

            streamed_mb, played = await measure(play)
            whole_mb, loaded = await measure(load_whole)
            await store.close()
    finally:
        if runner is not None:
            await runner.cleanup()
        stand_in.terminate()
        stand_in.wait(10)
    assert played == loaded == megabytes * 1_000_000, (played, loaded)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"voicemail of {megabytes} MB ({machine})")
    print(f"  streamed to a listener (the bot now): RSS +{streamed_mb:.1f} MB  (target < {TARGET_MB:.0f} MB)")
    print(f"  loaded whole through the SDK (before): RSS +{whole_mb:.1f} MB")
    print(f"  ratio streamed / whole: {streamed_mb / whole_mb:.3f}")
    return 0 if streamed_mb < TARGET_MB else 1


def main() -> None:
    parser = argparse.ArgumentParser(description="RSS growth of one voicemail play")
    parser.add_argument("--megabytes", type=int, default=20)
    sys.exit(asyncio.run(run(parser.parse_args().megabytes)))


if __name__ == "__main__":
    main()
