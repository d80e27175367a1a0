"""Every text on every card meets WCAG AA (4.5:1) in Teams' light and dark themes.

The colours are those of the Teams host configs (Microsoft's Adaptive Cards samples ``microsoft-teams-light.json``
and ``microsoft-teams-dark.json``): per container style a background and per text colour a default and a subtle
foreground, ``#AARRGGBB`` where an alpha is given. In the dark theme the coloured container styles keep their light
backgrounds and switch their default text to near-black.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from cards.case_card import build_case_card
from cards.elements import notice_block
from cards.i18n import Lang
from cards.messages import build_help_card
from tests.support.cards import card_variants, case_view, claimed_case

AA_NORMAL_TEXT = 4.5

_LIGHT_TEXT = {
    "default": ("#ff252424", "#bf252424"),
    "dark": ("#252424", "#bf252424"),
    "light": ("#ffffff", "#fff3f2f1"),
    "accent": ("#6264a7", "#8b8cc7"),
    "good": ("#92c353", "#e592c353"),
    "warning": ("#f8d22a", "#e5f8d22a"),
    "attention": ("#c4314b", "#e5c4314b"),
}
_DARK_TEXT = {
    "default": ("#ffffffff", "#bfffffff"),
    "dark": ("#ff201f1f", "#ff2d2c2c"),
    "light": ("#ffffffff", "#bfffffff"),
    "accent": ("#ffa6a7dc", "#ff8b8cc7"),
    "good": ("#ff92c353", "#e592c353"),
    "warning": ("#fff8d22a", "#e5f8d22a"),
    "attention": ("#ffd74654", "#e5d74654"),
}
_DARK_ON_LIGHT = _DARK_TEXT | {"default": ("#ff201f1f", "#ff2d2c2c")}

Style = tuple[str, Mapping[str, tuple[str, str]]]
THEMES: dict[str, dict[str, Style]] = {
    "light": {
        "default": ("#ffffff", _LIGHT_TEXT),
        "emphasis": ("#fff9f8f7", _LIGHT_TEXT),
        "accent": ("#C7DEF9", _LIGHT_TEXT),
        "good": ("#CCFFCC", _LIGHT_TEXT),
        "attention": ("#FFC5B2", _LIGHT_TEXT),
        "warning": ("#FFE2B2", _LIGHT_TEXT),
    },
    "dark": {
        "default": ("#ff2d2c2c", _DARK_TEXT),
        "emphasis": ("#ff292828", _DARK_TEXT),
        "accent": ("#C7DEF9", _DARK_ON_LIGHT),
        "good": ("#CCFFCC", _DARK_ON_LIGHT),
        "attention": ("#FFC5B2", _DARK_ON_LIGHT),
        "warning": ("#FFE2B2", _DARK_ON_LIGHT),
    },
}


def _rgba(colour: str) -> tuple[float, float, float, float]:
    digits = colour.lstrip("#")
    alpha = int(digits[:2], 16) / 255 if len(digits) == 8 else 1.0
    rgb = digits[-6:]
    return int(rgb[0:2], 16) / 255, int(rgb[2:4], 16) / 255, int(rgb[4:6], 16) / 255, alpha


def _over(foreground: str, background: str) -> tuple[float, float, float]:
    r, g, b, a = _rgba(foreground)
    br, bg, bb, _ = _rgba(background)
    return r * a + br * (1 - a), g * a + bg * (1 - a), b * a + bb * (1 - a)


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of ``foreground`` (alpha-blended) on ``background``."""
    lighter, darker = sorted(
        (_luminance(_over(foreground, background)), _luminance(_over(background, "#ffffff"))), reverse=True
    )
    return (lighter + 0.05) / (darker + 0.05)


def text_colours(node: Any, theme: str, style: str = "default") -> Iterator[tuple[str, str, str, str]]:
    """(text, foreground, background, where) for every TextBlock and fact, inside its nearest container style."""
    if isinstance(node, list):
        for item in node:
            yield from text_colours(item, theme, style)
        return
    if not isinstance(node, dict):
        return
    style = str(node.get("style", style)).lower() if node.get("type") in {"Container", "Column"} else style
    background, palette = THEMES[theme][style]
    if node.get("type") == "TextBlock":
        colour = str(node.get("color", "default")).lower()
        foreground = palette[colour][1 if node.get("isSubtle") else 0]
        yield str(node["text"]), foreground, background, f"{style}/{colour}"
    if node.get("type") == "FactSet":
        for fact in node["facts"]:
            yield f"{fact['title']}: {fact['value']}", palette["default"][0], background, f"{style}/fact"
    for key, value in node.items():
        if key not in {"actions", "selectAction", "refresh"}:  # buttons are drawn by Teams itself
            yield from text_colours(value, theme, style)


def test_the_contrast_formula() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast("#f8d22a", "#FFE2B2") < 1.5  # the old header: yellow on pale orange


CARDS = [
    *card_variants(),
    ("notice-refused", lambda: {"body": [notice_block("Bereits übernommen")]}),
    ("notice-saved", lambda: {"body": [notice_block("Gespeichert", positive=True)]}),
    ("help-unknown", lambda: build_help_card(Lang.DE, unknown_text="xyz")),
    ("claimed-by-viewer", lambda: build_case_card(case_view(claimed_case(), viewer=claimed_case().claimed_by))),
]


@pytest.mark.parametrize("theme", list(THEMES))
@pytest.mark.parametrize(("name", "build"), CARDS, ids=[name for name, _ in CARDS])
def test_every_text_meets_wcag_aa(theme: str, name: str, build: Any) -> None:
    card = build()
    checked = list(text_colours(card.get("body", []), theme))
    assert checked, name
    too_low = [
        (text[:40], where, round(contrast(foreground, background), 2))
        for text, foreground, background, where in checked
        if contrast(foreground, background) < AA_NORMAL_TEXT
    ]
    assert too_low == [], too_low
