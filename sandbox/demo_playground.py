"""Microsoft 365 Agents Playground as the demo's Teams client: its configuration, its process and its HTTP API.

The Playground (npm ``@microsoft/m365agentsplayground``) serves its web UI, the API that UI calls and a mock Bot
Connector (``/_connector``, the ``serviceUrl`` the bot sees) on one port. It sends no ``Authorization`` header, so
only a bot in ``SANDBOX_MODE`` with an empty app id accepts its activities. Its configuration allows exactly five
users besides the current one and one channel besides General; fixed ids keep tests deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[1]
PLAYGROUND_BIN = REPO_ROOT / "node_modules" / ".bin" / "agentsplayground"
CONFIG_FILE = ".m365agentsplayground.yml"
LOG_FILE = Path("devTools") / "m365agentsplayground.log"

TENANT_ID = "7e4a1f00-0000-4000-8000-00000000a001"
BOT_ID = "7e4a1f00-0000-4000-8000-00000000b001"
BOT_NAME = "Rufpool"
TEAM_ID = "19:team-praxis@thread.tacv2"  # also the id of the team's General channel
TEAM_NAME = "Praxis"
CALLBACK_CHANNEL_ID = "19:rueckrufe-zentrale@thread.tacv2"
CALLBACK_CHANNEL_NAME = "Rückrufe Zentrale"


@dataclass(frozen=True)
class PlaygroundUser:
    id: str
    name: str
    aad_object_id: str

    @property
    def email(self) -> str:
        return f"{self.name.split()[0].lower()}@praxis.example"

    def config(self) -> dict[str, str]:
        given, surname = self.name.split(maxsplit=1)
        return {
            "id": self.id,
            "name": self.name,
            "userPrincipleName": self.email,  # sic: the Playground's schema spells it so
            "aadObjectId": self.aad_object_id,
            "givenName": given,
            "surname": surname,
            "email": self.email,
        }


def _user(index: int, name: str) -> PlaygroundUser:
    return PlaygroundUser(f"user-id-{index}", name, f"7e4a1f00-0000-4000-8000-0000000000c{index}")


CURRENT_USER = _user(0, "Anna Schmidt")  # the person at the keyboard; may link channels (LINK_ADMINS)
TEAM_USERS = tuple(
    _user(n, name) for n, name in enumerate(["Ben Weber", "Cem Yilmaz", "Dora Klein", "Emil Braun", "Frieda Wolf"], 1)
)


def config_document() -> dict[str, Any]:
    """The Playground's ``.m365agentsplayground.yml`` (format 0.1.1) as data."""
    return {
        "version": "0.1.1",
        "tenantId": TENANT_ID,
        "bot": {"id": BOT_ID, "name": BOT_NAME},
        "currentUser": CURRENT_USER.config(),
        "users": [user.config() for user in TEAM_USERS],
        "personalChat": {"id": "personal-chat-rufpool"},
        "groupChat": {"id": "group-chat-empfang", "name": "Empfang"},
        "team": {
            "id": TEAM_ID,
            "name": TEAM_NAME,
            "aadGroupId": "7e4a1f00-0000-4000-8000-00000000d001",
            "channels": [{"id": CALLBACK_CHANNEL_ID, "name": CALLBACK_CHANNEL_NAME}],
        },
    }


def write_config(directory: Path) -> Path:
    """Write the configuration where the Playground looks for it (JSON is valid YAML)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_FILE
    path.write_text(json.dumps(config_document(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


class PlaygroundFailed(RuntimeError):
    """The Playground did not start; the message carries the end of its log."""


class PlaygroundProcess:
    """The Playground as a child process in its own process group, so that stopping it leaves nothing behind."""

    def __init__(self, directory: Path, bot_endpoint: str, port: int) -> None:
        self.directory = directory
        self.bot_endpoint = bot_endpoint
        self.port = port
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        if not PLAYGROUND_BIN.exists():
            raise PlaygroundFailed(f"{PLAYGROUND_BIN} is missing: run `npm ci` (make demo does)")
        write_config(self.directory)
        output = (self.directory / "playground.out").open("wb")
        try:
            self._process = await asyncio.create_subprocess_exec(
                str(PLAYGROUND_BIN),
                *("-e", self.bot_endpoint, "-c", "msteams", "-p", str(self.port), "--disable-telemetry"),
                cwd=self.directory,
                # The Playground takes the activities' locale from its own; a German practice speaks German.
                env={**os.environ, "TEAMSAPPTESTER_BROWSER": "none", "LANG": "de_DE.UTF-8", "TZ": "Europe/Berlin"},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            output.close()

    async def wait_ready(self) -> None:
        """Until ``/_debug/ping`` answers; fail early, with its log, when the process exits."""
        async with aiohttp.ClientSession() as http:
            while True:
                if self._process is None or self._process.returncode is not None:
                    raise PlaygroundFailed("the Agents Playground exited:\n" + self.log_tail())
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/_debug/ping") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.2)

    async def exited(self) -> int:
        """Wait until the process ends on its own (or is stopped); its exit status."""
        if self._process is None:
            raise PlaygroundFailed("the Agents Playground was never started")
        return await self._process.wait()

    def log_tail(self, lines: int = 15) -> str:
        texts = []
        for path in (self.directory / LOG_FILE, self.directory / "playground.out"):
            if path.exists():
                texts.extend(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        return "\n".join(texts)

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after ``grace`` seconds."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def mention_bot(text: str) -> dict[str, Any]:
    """A channel message that @mentions the bot (Teams delivers channel messages to a bot only then)."""
    tag = f"<at>{BOT_NAME}</at>"
    return {
        "text": f"{tag} {text}",
        "textFormat": "plain",
        "mentions": [{"mentioned": {"id": BOT_ID, "name": BOT_NAME}, "text": tag}],
    }


class PlaygroundClient:
    """What the Playground's own UI calls: post a message, click a card button, send a custom activity."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self._http.post(self.base_url + path, json=body) as response:
            text = await response.text()
            if response.status >= 300:
                raise PlaygroundFailed(f"POST {path} answered {response.status}: {text[:500]}")
            return json.loads(text) if text else None

    async def send_activity(self, activity: dict[str, Any]) -> None:
        """Any activity, straight to the bot."""
        await self._post("/_internal/v1/customActivities", activity)

    async def post_message(self, conversation_id: str, text: str, user: PlaygroundUser = CURRENT_USER) -> str:
        """A new post in a channel (or a message in a chat) that mentions the bot; returns its thread's id."""
        body = {"from": {"id": user.id}, **mention_bot(text)}
        result = await self._post(f"/_conversation/v1/conversations/{conversation_id}/messages", body)
        return str(result["postConversationId"])

    async def invoke(
        self,
        conversation_id: str,
        reply_to_id: str,
        verb: str,
        data: dict[str, Any],
        user: PlaygroundUser = CURRENT_USER,
    ) -> Any:
        """Click an ``Action.Execute`` button of the card ``reply_to_id``; returns the bot's invoke response."""
        body = {
            "name": "adaptiveCard/action",
            "from": {"id": user.id},
            "conversation": {"id": conversation_id},
            "replyToId": reply_to_id,
            "value": {"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"},
        }
        return await self._post("/_conversation/v1/invoke", body)

    async def install_bot_in_team(self, service_url: str) -> None:
        """The ``conversationUpdate`` Teams sends when the app is added to a team."""
        await self.send_activity(
            {
                "type": "conversationUpdate",
                "channelId": "msteams",
                "serviceUrl": service_url,
                "from": {"id": CURRENT_USER.id, "aadObjectId": CURRENT_USER.aad_object_id},
                "recipient": {"id": BOT_ID, "name": BOT_NAME},
                "conversation": {
                    "id": TEAM_ID,
                    "isGroup": True,
                    "conversationType": "channel",
                    "tenantId": TENANT_ID,
                },
                "membersAdded": [{"id": BOT_ID}],
                "channelData": {
                    "tenant": {"id": TENANT_ID},
                    "team": {"id": TEAM_ID, "name": TEAM_NAME},
                    "eventType": "teamMemberAdded",
                },
                "locale": "de-DE",
            }
        )
