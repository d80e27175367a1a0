"""Render the case and list cards to docs/cards/*.png with the adaptivecards JS renderer in headless Chromium.

Run ``python docs/render_cards.py`` from the repository root (the .venv's Python). The renderer is the pinned npm
``adaptivecards`` from the top-level package.json (``npm ci``); it drives the Debian ``/usr/bin/chromium`` through
Playwright and never downloads a browser.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.stats.chart import render_heatmap  # noqa: E402
from cards.case_card import build_case_card  # noqa: E402
from cards.i18n import Lang  # noqa: E402
from cards.list_card import build_list_card  # noqa: E402
from cards.stats_card import StatsCardView, build_stats_card  # noqa: E402
from tests.support.cards import (  # noqa: E402
    callback_case,
    case_view,
    claimed_case,
    done_case,
    list_view,
    many_cases,
    open_case,
    voicemail_case,
)
from tests.support.stats import LINE_NAMES, team_stats, weekday_hours  # noqa: E402

REFUSAL_NOTICE = "Bereits übernommen von Anna Schmidt um 10:32"
RENDER_DIR = ROOT / "docs" / "render"
OUTPUT_DIR = ROOT / "docs" / "cards"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]

PICTURES: dict[str, Callable[[], dict[str, Any]]] = {
    "open": lambda: build_case_card(case_view(open_case())),
    "claimed": lambda: build_case_card(case_view(claimed_case())),
    "refused": lambda: build_case_card(case_view(claimed_case(), notice=REFUSAL_NOTICE)),
    "done": lambda: build_case_card(case_view(done_case())),
    "voicemail": lambda: build_case_card(case_view(voicemail_case())),
    "list": lambda: build_list_card(list_view(many_cases(5), total=12)),
    "stats": lambda: build_stats_card(StatsCardView(
        team_stats(), Lang.DE, LINE_NAMES, caller_names={"+492214710355": "Dr. Weber"},
        chart_url=chart_data_uri())),
    "done-by-callback": lambda: build_case_card(case_view(callback_case(reached=True))),
    "callback-not-reached": lambda: build_case_card(case_view(callback_case(reached=False, agent="Durchwahl 12"))),
}


def chart_data_uri() -> str:
    """The chart inline: in Teams it is a signed link to the bot; the picture has no bot to ask."""
    return "data:image/png;base64," + base64.b64encode(render_heatmap(weekday_hours(), Lang.DE)).decode("ascii")


def ensure_renderer() -> None:
    if not (ROOT / "node_modules" / "adaptivecards").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)


@contextmanager
def card_page() -> Iterator[Page]:
    """The preview page in headless Chromium; ``page.evaluate("c => renderCard(c)", card)`` shows a card and
    returns the href of every link the renderer made."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(device_scale_factor=2)
            page.goto((RENDER_DIR / "index.html").as_uri())
            yield page
        finally:
            browser.close()


def render(cards: dict[str, dict[str, Any]], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    with card_page() as page:
        for name, card in cards.items():
            page.evaluate("card => window.renderCard(card)", card)
            page.locator("#frame").screenshot(path=output_dir / f"{name}.png")


def main() -> None:
    ensure_renderer()
    render({name: build() for name, build in PICTURES.items()}, OUTPUT_DIR)
    print(f"wrote {', '.join(f'{name}.png' for name in PICTURES)} to {OUTPUT_DIR.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
