"""``make demo`` in a real browser: Debian Chromium opens the Agents Playground, the channel shows the case card,
and Claim and Done are clicked in its UI. Screenshots go to ``test-artifacts/demo/`` (``TEST_ARTIFACTS_DIR``), and
to ``docs/demo/`` for the README with ``UPDATE_SCREENSHOTS=1``.

Skips without Chromium or Playwright unless ``REQUIRE_BROWSER=1`` (CI), which makes a missing browser a failure.
Never ``playwright install``: the Debian package is the browser.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cards.i18n import Lang, text
from sandbox.demo_playground import CALLBACK_CHANNEL_NAME, CURRENT_USER, TEAM_NAME
from tests.support.demo import REPO_ROOT, DemoProcess, requires_playground

pytestmark = [*requires_playground, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
UI_TIMEOUT_MS = 60_000
CALLER = "0171 2345678"
README_SHOTS = REPO_ROOT / "docs" / "demo"


def _require_browser() -> None:
    missing = [
        what
        for what, present in (
            (str(CHROMIUM), CHROMIUM.exists()),
            ("the playwright package", importlib.util.find_spec("playwright") is not None),
        )
        if not present
    ]
    if not missing:
        return
    message = f"browser test needs {' and '.join(missing)} (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _artifacts() -> Path:
    directory = Path(os.environ.get("TEST_ARTIFACTS_DIR", REPO_ROOT / "test-artifacts")) / "demo"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _channel_text(key: str, **values: object) -> str:
    """Channel cards keep the channel's language (German here), whatever locale the Playground sends."""
    return text(Lang.DE, key, **values)


async def _flag_status(http: aiohttp.ClientSession, control: str) -> list[str]:
    async with http.get(f"{control}/api/mails") as response:
        return [mail["flag_status"] for mail in await response.json()]


async def _screenshot(page: Any, name: str) -> None:
    path = _artifacts() / f"{name}.png"
    await page.screenshot(path=path)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOTS / path.name)


async def test_claim_and_done_clicked_in_the_playground_ui(demo: DemoProcess) -> None:
    _require_browser()
    from playwright.async_api import Page, async_playwright, expect

    shots = _artifacts()

    async def screenshot(page: Page, name: str) -> None:
        await _screenshot(page, name)

    async with async_playwright() as playwright, aiohttp.ClientSession() as http:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(
                viewport={"width": 1280, "height": 860}, locale="de-DE", timezone_id="Europe/Berlin"
            )
            page.set_default_timeout(UI_TIMEOUT_MS)
            await page.goto(demo.playground)
            await page.get_by_role("treeitem", name=f"{TEAM_NAME} - {CALLBACK_CHANNEL_NAME}").click()
            await page.get_by_title("Hide log panel").click()

            simulated = {"kind": "missed", "caller": CALLER, "line": "zentrale"}
            async with http.post(f"{demo.control}/api/simulate", json=simulated) as response:
                assert response.status == 200, await response.text()

            card = page.locator(".ac-adaptiveCard").filter(has_text=CALLER)
            claim = card.get_by_role("button", name=text(Lang.DE, "verb_claim"), exact=True)
            await expect(claim).to_be_visible()
            await expect(card.get_by_text(text(Lang.DE, "state_open"), exact=True)).to_be_visible()
            await screenshot(page, "playground-card-open")

            await claim.click()
            await expect(card.get_by_text(_channel_text("state_claimed", name=CURRENT_USER.name))).to_be_visible()
            await screenshot(page, "playground-card-claimed")

            done_title = "|".join(re.escape(text(lang, "verb_done")) for lang in Lang)
            done = card.get_by_role("button", name=re.compile(f"^({done_title})$"))
            await done.click()
            await expect(card.get_by_text(_channel_text("state_done", name=CURRENT_USER.name))).to_be_visible()
            await screenshot(page, "playground-card-done")
        finally:
            await browser.close()

        async with asyncio.timeout(30):
            while await _flag_status(http, demo.control) != ["complete"]:
                await asyncio.sleep(0.2)
    assert sorted(path.name for path in shots.glob("playground-card-*.png")) == [
        "playground-card-claimed.png",
        "playground-card-done.png",
        "playground-card-open.png",
    ]


async def _advance(http: aiohttp.ClientSession, control: str) -> dict[str, Any]:
    async with http.post(f"{control}/api/time", json={"hours": 1}) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def test_time_plus_one_hour_in_the_ui_shows_the_overview_and_the_due_card(demo: DemoProcess) -> None:
    """Move the bot's clock until Zentrale is closed for the night, call, then "+1 h" until the morning overview
    shows."""
    _require_browser()
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright, aiohttp.ClientSession() as http:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(
                viewport={"width": 1280, "height": 1100}, locale="de-DE", timezone_id="Europe/Berlin"
            )
            page.set_default_timeout(UI_TIMEOUT_MS)
            await page.goto(demo.playground)
            await page.get_by_role("treeitem", name=f"{TEAM_NAME} - {CALLBACK_CHANNEL_NAME}").click()
            await page.get_by_title("Hide log panel").click()
            async with http.get(f"{demo.control}/api/time") as response:
                state = await response.json()
            # Closed for the night (or the weekend): closed now and an hour ago. The lunch break closes the line
            # too, but the overview of the next morning lists only the calls since the evening's closing.
            was_open = True
            while was_open or state["open"]["zentrale"]:
                was_open = state["open"]["zentrale"]
                state = await _advance(http, demo.control)
            simulated = {"kind": "missed", "caller": "0171 5550002", "line": "zentrale"}
            async with http.post(f"{demo.control}/api/simulate", json=simulated) as response:
                assert response.status == 200, await response.text()
            # The case card (the overview lists the caller too, but has no history).
            card = page.locator(".ac-adaptiveCard").filter(has_text="0171 5550002").filter(has_text="Verlauf")
            await expect(card).to_be_visible(timeout=UI_TIMEOUT_MS)
            overview = page.locator(".ac-adaptiveCard").filter(has_text="Guten Morgen")
            for _ in range(120):
                await _advance(http, demo.control)
                await asyncio.sleep(0.3)
                if await overview.count():
                    break
            await expect(overview).to_be_visible(timeout=UI_TIMEOUT_MS)
            await _screenshot(page, "playground-overview")
            await _advance(http, demo.control)
            await expect(card.get_by_text("Fällig seit", exact=False)).to_be_visible(timeout=UI_TIMEOUT_MS)
            await card.scroll_into_view_if_needed()
            await _screenshot(page, "playground-reminder-due")
        finally:
            await browser.close()
