"""``make demo`` end to end through Microsoft's Agents Playground, driven by its HTTP and WebSocket API.

The demo runs as a subprocess exactly as ``make demo`` starts it (free ports aside); the test plays Outlook (the
Graph stand-in's control API or the demo's ``simulate`` CLI) and Teams users (the Playground's own API).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cards.i18n import Lang, language_for, ordinal, text
from sandbox.demo import POOL_LINES, free_port
from sandbox.demo_playground import CALLBACK_CHANNEL_ID, TEAM_USERS, PlaygroundClient
from tests.support.demo import (
    REPO_ROOT,
    DemoProcess,
    actions,
    card_of,
    descendants,
    is_card_update,
    is_case_card_post,
    is_thread_reply,
    playground_stream,
    requires_playground,
    start_demo,
    still_alive,
    texts,
)

pytestmark = requires_playground

ZENTRALE = POOL_LINES[0]
BEN = TEAM_USERS[0]
CHANNEL_LANG = language_for("de-DE")  # the demo's DEFAULT_LOCALE: cards and thread replies posted by the bot
# The Playground puts en-US into every activity; in a channel the clicker's answer keeps the channel's language
# anyway, because everyone shares the one message.
CLICK_LANG = CHANNEL_LANG


def said(lang: Lang, key: str, **values: object) -> str:
    """The fixed part of a message: the text before its `` · <time>`` tail."""
    return text(lang, key, time="", **values).split(" · ")[0]


async def _flag_status(http: aiohttp.ClientSession, demo: DemoProcess, message_id: str) -> str | None:
    async with http.get(f"{demo.control}/api/mails") as response:
        mails = await response.json()
    return next((mail["flag_status"] for mail in mails if mail["message_id"] == message_id), None)


async def _simulate(demo: DemoProcess, *args: str) -> str:
    """The CLI a person types while the demo runs."""
    command = [sys.executable, "-m", "sandbox.demo", "simulate", *args, "--control-url", demo.control]
    done = await asyncio.to_thread(subprocess.run, command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_mail_becomes_a_card_that_is_claimed_and_done_and_the_flag_is_complete(demo: DemoProcess) -> None:
    async with aiohttp.ClientSession() as http, playground_stream(http, demo.playground) as stream:
        playground = PlaygroundClient(http, demo.playground)
        mail = {
            "subject": "Verpasster Anruf von '0171 2345678' auf '030 1234500'",
            "from": "no-reply@placetel.de",
            "body": "Sie haben einen Anruf verpasst.\nVon: '0171 2345678'\nAuf: '030 1234500'\n",
        }
        async with http.post(f"{demo.graph}/_control/mailboxes/{ZENTRALE.mailbox}/messages", json=mail) as response:
            assert response.status == 200, await response.text()
            message_id = (await response.json())["id"]

        posted = await stream.wait_for(is_case_card_post, "a case card in the channel")
        card, card_id = card_of(posted), posted["message"]["messageId"]
        thread = posted["message"]["postConversationId"]
        assert card is not None and "0171 2345678" in texts(card)
        assert thread.startswith(CALLBACK_CHANNEL_ID + ";messageid=")
        assert set(actions(card)) == {"claim", "done"}

        claimed = await playground.invoke(thread, card_id, "claim", actions(card)["claim"], user=BEN)
        assert text(CLICK_LANG, "state_claimed", name=BEN.name) in texts(claimed["value"]), claimed
        claimed_state = text(CHANNEL_LANG, "state_claimed", name=BEN.name)
        await stream.wait_for(lambda e: is_card_update(e, card_id, claimed_state), "the claimed card")
        claim_reply = said(CHANNEL_LANG, "reply_claim", name=BEN.name)
        await stream.wait_for(lambda e: is_thread_reply(e, thread, claim_reply), "the claim reply")

        done = await playground.invoke(thread, card_id, "done", actions(claimed["value"])["done"], user=BEN)
        assert text(CLICK_LANG, "state_done", name=BEN.name) in texts(done["value"]), done
        done_state = text(CHANNEL_LANG, "state_done", name=BEN.name)
        await stream.wait_for(lambda e: is_card_update(e, card_id, done_state), "the done card")

        async with asyncio.timeout(30):
            while await _flag_status(http, demo, message_id) != "complete":
                await asyncio.sleep(0.2)
        assert sum(is_case_card_post(event) for event in stream.events) == 1


async def test_simulated_voicemail_repeat_call_and_outlook_done_show_in_the_channel(demo: DemoProcess) -> None:
    async with aiohttp.ClientSession() as http, playground_stream(http, demo.playground) as stream:
        assert "Sprachnachricht" in await _simulate(demo, "voicemail", "--from", "0171 7654321")
        posted = await stream.wait_for(is_case_card_post, "the voicemail's card")
        card_id, thread = posted["message"]["messageId"], posted["message"]["postConversationId"]
        assert text(CHANNEL_LANG, "event_voicemail") in " ".join(texts(card_of(posted)))

        # The call webhook (issue 19) brings the card first; "Anhören" comes with the mail, which joins the call.
        with_audio = posted
        if not has_listen(card_of(posted)):
            listen_title = text(CHANNEL_LANG, "listen")
            with_audio = await stream.wait_for(
                lambda e: is_card_update(e, card_id, listen_title) and has_listen(card_of(e)), "the mail's Anhören"
            )

        # "Anhören": a click that the Playground's connector confirms as a team member's; a link that plays once.
        playground = PlaygroundClient(http, demo.playground)
        listen = await playground.invoke(thread, card_id, "listen", listen_data(card_of(with_audio)), user=BEN)
        url = open_url(listen["value"])
        async with http.get(url) as audio:
            assert audio.status == 200 and audio.headers["Content-Type"].startswith("audio/")
            assert len(await audio.read()) > 0
        async with http.get(url) as again:
            assert again.status == 410

        await _simulate(demo, "repeat")
        # Both mails arrive within the same second, so the reply may name either kind; the count is certain.
        repeat_reply = text(CHANNEL_LANG, "reply_repeat_call", time="", ordinal=ordinal(2, CHANNEL_LANG)).split(" · ")[
            1
        ]
        await stream.wait_for(lambda e: is_thread_reply(e, thread, repeat_reply), "the repeat-call reply")

        assert "complete" in await _simulate(demo, "done", "--from", "+49 171 7654321")
        done_in_outlook = text(CHANNEL_LANG, "state_done_outlook")
        await stream.wait_for(lambda e: is_card_update(e, card_id, done_in_outlook), "the card done in Outlook")
        assert sum(is_case_card_post(event) for event in stream.events) == 1


def has_listen(card: dict[str, Any] | None) -> bool:
    return card is not None and any(
        action.get("verb") == "listen"
        for block in card["body"]
        if block.get("type") == "ActionSet"
        for action in block["actions"]
    )


def listen_data(card: dict[str, Any] | None) -> dict[str, Any]:
    assert card is not None
    return next(
        dict(action["data"])
        for block in card["body"]
        if block.get("type") == "ActionSet"
        for action in block["actions"]
        if action.get("verb") == "listen"
    )


def open_url(card: dict[str, Any]) -> str:
    return next(
        str(action["url"])
        for block in card["body"]
        if block.get("type") == "ActionSet"
        for action in block["actions"]
        if action["type"] == "Action.OpenUrl"
    )


async def _unread(http: aiohttp.ClientSession, demo: DemoProcess, line: str) -> int:
    async with http.get(f"{demo.control}/api/mailboxes") as response:
        boxes = await response.json()
    return int(next(box["unread"] for box in boxes if box["line"] == line))


async def _wait_for_unread(http: aiohttp.ClientSession, demo: DemoProcess, line: str, expected: int) -> None:
    async with asyncio.timeout(30):
        while await _unread(http, demo, line) != expected:
            await asyncio.sleep(0.2)


async def test_the_outlook_unread_count_drops_on_claim_and_rises_on_release(demo: DemoProcess) -> None:
    async with aiohttp.ClientSession() as http, playground_stream(http, demo.playground) as stream:
        playground = PlaygroundClient(http, demo.playground)
        before = await _unread(http, demo, ZENTRALE.id)
        await _simulate(demo, "missed", "--from", "0171 3131313")
        posted = await stream.wait_for(is_case_card_post, "the missed call's card")
        card, card_id = card_of(posted), posted["message"]["messageId"]
        thread = posted["message"]["postConversationId"]
        assert await _unread(http, demo, ZENTRALE.id) == before + 1

        claimed = await playground.invoke(thread, card_id, "claim", actions(card)["claim"], user=BEN)
        await _wait_for_unread(http, demo, ZENTRALE.id, before)

        await playground.invoke(thread, card_id, "release", actions(claimed["value"])["release"], user=BEN)
        await _wait_for_unread(http, demo, ZENTRALE.id, before + 1)


async def test_a_missed_call_then_a_reached_callback_shows_done_by_callback_live(demo: DemoProcess) -> None:
    async with aiohttp.ClientSession() as http, playground_stream(http, demo.playground) as stream:
        caller = "0171 5550123"
        await _simulate(demo, "missed", "--from", caller)
        posted = await stream.wait_for(is_case_card_post, "the missed call's card")
        card_id, thread = posted["message"]["messageId"], posted["message"]["postConversationId"]
        assert set(actions(card_of(posted) or {})) == {"claim", "done"}

        started = time.monotonic()
        async with http.post(f"{demo.control}/api/simulate", json={"kind": "callback-reached"}) as response:
            assert response.status == 200, await response.text()
        done_by_callback = text(CHANNEL_LANG, "state_done_callback")
        await stream.wait_for(lambda e: is_card_update(e, card_id, done_by_callback), "the card done by callback")
        callback_line = text(CHANNEL_LANG, "reply_callback", agent="Anna Schmidt", time="", result="").split(" · ")[0]
        reply = await stream.wait_for(lambda e: is_thread_reply(e, thread, callback_line), "the callback's line")
        elapsed = time.monotonic() - started
        print(f"callback simulated → card done by callback and thread line in the Playground: {elapsed * 1000:.0f} ms")

        assert text(CHANNEL_LANG, "callback_reached", duration="").split(" (")[0] in reply["message"]["text"]
        assert sum(is_case_card_post(event) for event in stream.events) == 1, "webhook and mail are one call"


async def test_an_unreached_callback_keeps_the_card_open_with_the_attempt(demo: DemoProcess) -> None:
    async with aiohttp.ClientSession() as http, playground_stream(http, demo.playground) as stream:
        await _simulate(demo, "missed", "--from", "0171 5550124")
        posted = await stream.wait_for(is_case_card_post, "the missed call's card")
        card_id, thread = posted["message"]["messageId"], posted["message"]["postConversationId"]

        assert "nicht erreicht" in await _simulate(demo, "callback-missed")
        not_reached = text(CHANNEL_LANG, "callback_not_reached")
        await stream.wait_for(lambda e: is_thread_reply(e, thread, not_reached), "the unreached callback's line")
        update = await stream.wait_for(
            lambda e: is_card_update(e, card_id, text(CHANNEL_LANG, "state_open")) and not_reached in json.dumps(e),
            "the open card showing the last attempt",
        )
        assert text(CHANNEL_LANG, "fact_callback") in json.dumps(card_of(update), ensure_ascii=False)


def test_simulating_without_a_running_demo_says_how_to_start_it() -> None:
    command = [sys.executable, "-m", "sandbox.demo", "simulate", "missed"]
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run([*command, "--control-url", url], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "make demo" in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_demo_and_every_process_it_started(tmp_path: Path, signum: signal.Signals) -> None:
    running = start_demo(tmp_path, keep_data=False)
    tree = descendants(running.process.pid)
    data_dir = Path(running.ready["data_dir"])
    assert any("agentsplayground" in _command_line(pid) for pid in tree), tree
    assert data_dir.is_dir()

    assert running.stop(signum) == 0, running.output()[-3000:]

    assert still_alive(tree) == []
    assert not data_dir.exists()
    assert "Stopping the demo" in running.output()


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --- issue: ports, the printed command, withheld callers, the live page, posting again ----------------------


def test_a_busy_playground_port_is_named_at_once(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["run", "--playground-port", str(port), "--control-port", str(free_port())]
        done = subprocess.run(
            [sys.executable, "-m", "sandbox.demo", *args, "--data-dir", str(tmp_path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"Port {port} (Agents Playground) is in use" in done.stderr
    assert "make demo PLAYGROUND_PORT=<port>" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "playground").exists()  # nothing was started


def test_make_demo_passes_the_ports() -> None:
    done = subprocess.run(
        ["make", "-n", "demo", "PLAYGROUND_PORT=56999", "CONTROL_PORT=56998"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "-m sandbox.demo --playground-port 56999 --control-port 56998" in done.stdout, done.stdout


def printed_simulate_command(demo: DemoProcess) -> str:
    """The command the banner tells a person to type (``… missed --from anonym``, without the comment)."""
    line = next(line for line in demo.output().splitlines() if "missed --from anonym" in line)
    return line.strip().split("  (")[0]


async def test_the_printed_command_works_outside_the_venv_and_simulates_a_withheld_caller(demo: DemoProcess) -> None:
    command = printed_simulate_command(demo)
    assert command.startswith("cd ") and f"--control-url {demo.control}" in command
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}  # no venv on PATH, no PYTHONPATH
    async with aiohttp.ClientSession() as http, playground_stream(http, demo.playground) as stream:
        done = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", command], cwd="/", env=bare, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "'anonym'" in done.stdout
        posted = await stream.wait_for(is_case_card_post, "the withheld caller's card")
        assert text(CHANNEL_LANG, "caller_withheld") in texts(card_of(posted))


async def test_the_page_follows_the_flags_and_posts_the_open_cases_again(demo: DemoProcess) -> None:
    async with aiohttp.ClientSession() as http, playground_stream(http, demo.playground) as stream:
        await _simulate(demo, "missed", "--from", "0171 1112223")
        first = await stream.wait_for(is_case_card_post, "the first card")
        async with http.get(demo.control + "/") as response:
            page = await response.text()
        assert "leeren Kanal" in page and 'action="/repost"' in page and 'fetch("/rows")' in page

        await _simulate(demo, "done", "--from", "0171 1112223")
        async with asyncio.timeout(30):
            while "complete" not in await (await http.get(demo.control + "/rows")).text():
                await asyncio.sleep(0.2)
        # The page shows Outlook's flag at once; the bot takes the case to done when it has read the change.
        first_id, done_in_outlook = first["message"]["messageId"], text(CHANNEL_LANG, "state_done_outlook")
        await stream.wait_for(lambda e: is_card_update(e, first_id, done_in_outlook), "the first card done")

        await _simulate(demo, "missed", "--from", "0171 4445556")
        seen = {first["message"]["messageId"]}
        second = await stream.wait_for(
            lambda e: is_case_card_post(e) and e["message"]["messageId"] not in seen, "the second card"
        )
        seen.add(second["message"]["messageId"])
        async with http.post(demo.control + "/api/repost") as response:
            assert (await response.json())["reposted"] == 1  # the open one; the done one stays as it is
        again = await stream.wait_for(
            lambda e: is_case_card_post(e) and e["message"]["messageId"] not in seen, "the open case posted again"
        )
        assert "0171 4445556" in " ".join(texts(card_of(again)))


async def _time(http: aiohttp.ClientSession, demo: DemoProcess, hours: float | None = None) -> dict[str, object]:
    if hours is None:
        async with http.get(f"{demo.control}/api/time") as response:
            return dict(await response.json())
    async with http.post(f"{demo.control}/api/time", json={"hours": hours}) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


def _is_overview(event: dict[str, object]) -> bool:
    card = card_of(event)
    return (
        event.get("action") == "createMessage"
        and event.get("actionConversationId") == CALLBACK_CHANNEL_ID
        and card is not None
        and any("Guten Morgen" in line for line in texts(card))
    )


async def test_time_plus_one_hour_shows_the_morning_overview_and_reminders(demo: DemoProcess) -> None:
    """Whatever the real time: move the bot's clock until Zentrale is closed for the night, call, then "+1 h" until it
    opens."""
    async with aiohttp.ClientSession() as http, playground_stream(http, demo.playground) as stream:
        state = await _time(http, demo)
        # Closed for the night (or the weekend): closed now and an hour ago. The lunch break closes the line too,
        # but the overview of the next morning lists only the calls since the evening's closing.
        was_open = True
        for _ in range(36):
            if not was_open and not state["open"]["zentrale"]:  # type: ignore[index]
                break
            was_open = bool(state["open"]["zentrale"])  # type: ignore[index]
            state = await _time(http, demo, 1)
        assert not was_open and not state["open"]["zentrale"], state  # type: ignore[index]
        await _simulate(demo, "missed", "--from", "0171 5550001")
        posted = await stream.wait_for(is_case_card_post, "the night call's card")
        thread = posted["message"]["postConversationId"]
        assert any("Neu · wartet seit 0 Min." in line for line in texts(card_of(posted)))

        overview = None
        for _ in range(120):  # a long weekend with holidays is at most a few days of hours
            state = await _time(http, demo, 1)
            try:
                overview = await asyncio.wait_for(stream.wait_for(_is_overview, "the morning overview"), 1.5)
                break
            except TimeoutError:
                continue
        assert overview is not None, state
        overview_texts = " ".join(texts(card_of(overview)))
        assert "1 Anruf seit" in overview_texts and "0171 5550001" in overview_texts

        await _time(http, demo, 1)
        reminder = await stream.wait_for(
            lambda e: is_thread_reply(e, thread, "wartet seit") and "<at>" in (e["message"].get("text") or ""),
            "the reminder in the thread",
        )
        assert "Anna Schmidt" in reminder["message"]["text"]
        due = await stream.wait_for(
            lambda e: is_card_update(e, posted["message"]["messageId"], "Fällig seit"), "the card marked due"
        )
        assert due is not None
