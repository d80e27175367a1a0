"""The hostile-mail card through the real adaptivecards JS renderer (with markdown and linkify on) in Chromium:
the only links it makes are the ones the bot put there."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from bot.domain.cases import Actor
from bot.domain.events import EventKind
from bot.domain.state_machine import Verb
from cards.case_card import build_case_card
from cards.i18n import Lang
from cards.list_card import build_list_card
from tests.support.cards import HOSTILE, NOW, OUTLOOK_LINK, apply, card_event, case_view, list_view, make_case

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


def load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_cards", ROOT / "docs" / "render_cards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def renderer() -> ModuleType:
    ready = Path("/usr/bin/chromium").exists() and (ROOT / "node_modules/adaptivecards").is_dir()
    if not ready:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium or node_modules/adaptivecards missing (apt-get install chromium; npm ci)")
        pytest.skip("Chromium or node_modules/adaptivecards missing")
    return load_renderer()


def test_hostile_mail_renders_without_foreign_links(renderer: ModuleType) -> None:
    event = card_event(kind=EventKind.UNRECOGNISED, caller=None, subject=HOSTILE, sender=HOSTILE, caller_name=HOSTILE)
    case = apply(make_case(event), Verb.CLAIM, Actor("aad-evil", "[Anna](https://evil.example)"), NOW)
    card = build_case_card(case_view(case, line_name=HOSTILE, notice=HOSTILE))
    listing = build_list_card(list_view([case], total=1, lang=Lang.EN))
    with renderer.card_page() as page:
        assert page.evaluate("card => window.renderCard(card)", card) == [OUTLOOK_LINK]
        shown = page.inner_text("#card")
        assert page.evaluate("card => window.renderCard(card)", listing) == []
    assert "[klick](https:/\u200b/evil\u2024example) **fett** <b>x</b>" in shown
