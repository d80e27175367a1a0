"""The stats card (German/English, size, schema) and its weekday/hour chart behind a signed, expiring link."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from importlib.resources import files

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from bot.stats.chart import CHART_PATH, ChartLinks, InvalidChartLink, chart_handler, render_heatmap
from bot.stats.service import BadPeriod, parse_days
from cards.i18n import Lang
from cards.stats_card import StatsCardView, build_stats_card, format_seconds
from tests.support.cards import card_texts, size_of
from tests.support.stats import LINE_NAMES, team_stats, weekday_hours

KEY = b"k" * 32
CHART_URL = "https://rufpool.example.org/stats/chart/abc.png"


def card(lang: Lang = Lang.DE, **overrides: object) -> dict:
    values: dict = {"stats": team_stats(), "lang": lang, "line_names": LINE_NAMES, "chart_url": CHART_URL}
    values.update(overrides)
    return build_stats_card(StatsCardView(**values))


def test_german_card_shows_totals_times_lines_people_and_what_is_missing() -> None:
    shown = card_texts(card(caller_names={"+492214710355": "Dr. Weber"}))
    assert "Statistik – Labor, Zentrale" in shown
    assert "23.11.2026 bis 29.11.2026 (7 Tage)" in shown
    assert "Anrufe: 212" in shown and "Fälle: 143" in shown and "Erledigt: 131 von 143 (92 %)" in shown
    assert "Bis übernommen: Median 10 Min. · 90 % in 45 Min." in shown
    assert "Bis erledigt: Median 35 Min. · 90 % in 4 Std." in shown
    assert "Mehrfach-Anrufer (ab 3 Anrufen): 3" in shown
    assert "0221 4710355 (Dr. Weber) · 6 Anrufe" in shown
    assert "noch nicht verfügbar" in shown  # unreached callbacks need the PBX's call data
    assert "Kalenderzeit" in shown and "ab 1 Std. auf 15 Min." in shown  # how exact the bucketed times are
    for expected in ("Nach Leitung", "Zentrale", "98 %", "Nach Person", "Anna Schmidt", "Dora Klein"):
        assert expected in shown


def test_english_card() -> None:
    shown = card_texts(card(Lang.EN, stats=team_stats(business_hours=True)))
    assert "Statistics – Labor, Zentrale" in shown
    assert "Time to claim: median 10 min · 90% within 45 min" in shown
    assert "Done: 131 of 143 (92%)" in shown
    assert "Times in business hours. From 10 min on rounded down to 5 min" in shown


def test_the_chart_is_an_image_with_alt_text() -> None:
    [image] = [e for e in card()["body"] if e.get("type") == "Image"]
    assert image["url"] == CHART_URL and image["altText"]
    assert not [e for e in card(chart_url=None)["body"] if e.get("type") == "Image"]


def test_personal_card_puts_the_users_own_numbers_first() -> None:
    shown = card_texts(card(you="aad-1"))
    assert "Deine Zahlen\n53 übernommen · 51 erledigt · Median bis übernommen: 10 Min." in shown


def test_no_linked_line_says_so() -> None:
    empty = team_stats()
    from dataclasses import replace

    shown = card_texts(card(stats=replace(empty, line_ids=(), lines=(), people=())))
    assert "keine Leitung verbunden" in shown


@pytest.mark.parametrize("lang", list(Lang))
def test_card_is_valid_and_small_with_a_large_team(lang: Lang) -> None:
    schema = json.loads((files("adaptive_cards") / "schemas" / "schema-1.5.json").read_text(encoding="utf-8"))
    big = card(lang, stats=team_stats(people=300))
    jsonschema.validators.validator_for(schema)(schema).validate(big)
    assert size_of(big) < 28 * 1024
    assert "+290" in card_texts(big)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "–"), (29, "0 Min."), (61 * 60, "1 Std. 1 Min."), (2 * 86400 + 3 * 3600, "2 Tg. 3 Std.")],
)
def test_durations_read_like_people_say_them(seconds: float | None, shown: str) -> None:
    assert format_seconds(seconds, Lang.DE) == shown


@pytest.mark.parametrize(("argument", "days"), [("", 7), ("woche", 7), ("Week", 7), ("monat", 30), ("month", 30),
                                                ("7", 7), ("30", 30), ("14 tage", 14)])  # fmt: skip
def test_period_words(argument: str, days: int) -> None:
    assert parse_days(argument) == days


@pytest.mark.parametrize("argument", ["gestern", "0", "9999", "-3", "7; DROP TABLE cases"])
def test_unknown_periods_are_refused(argument: str) -> None:
    with pytest.raises(BadPeriod):
        parse_days(argument)


# The chart ------------------------------------------------------------------------------------------------------


def links(now: float = 1_000_000.0) -> ChartLinks:
    return ChartLinks(KEY, "https://rufpool.example.org", clock=lambda: now)


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_chart_link_carries_its_counts_and_nothing_else_verifies() -> None:
    url = links().url(weekday_hours(), Lang.EN)
    assert url.startswith("https://rufpool.example.org/stats/chart/") and len(url) < 1500
    assert links().read(token_of(url).removesuffix(".png")) == (weekday_hours(), Lang.EN)
    version, payload, signature, _ = token_of(url).split(".")
    forged = links().url(tuple(tuple([99] * 24) for _ in range(7)), Lang.EN)
    other_payload = token_of(forged).split(".")[1]
    for bad in (
        f"{version}.{other_payload}.{signature}",
        f"{version}.{payload}.{signature[:-2]}AA",
        "c1..",
        "x" * 3000,
    ):
        with pytest.raises(InvalidChartLink):
            links().read(bad)
    with pytest.raises(InvalidChartLink, match="expired"):
        links(now=1_000_000.0 + 9 * 86400).read(token_of(url).removesuffix(".png"))
    with pytest.raises(InvalidChartLink):
        ChartLinks(b"o" * 32, "https://x").read(token_of(url).removesuffix(".png"))


def test_the_heatmap_is_a_png_whose_busiest_hour_is_darkest() -> None:
    image = Image.open(io.BytesIO(render_heatmap(weekday_hours(), Lang.DE))).convert("RGB")
    assert image.size[0] > image.size[1] > 100

    def cell(day: int, hour: int) -> tuple[int, int, int]:
        from bot.stats.chart import CELL, GAP, LEFT, SCALE, TOP

        return image.getpixel(((LEFT + hour * (CELL + GAP) + 3) * SCALE, (TOP + day * (CELL + GAP) + 3) * SCALE))

    peak, quiet, empty = cell(0, 9), cell(1, 16), cell(6, 3)
    assert sum(peak) < sum(quiet) < sum(empty)


async def serve(make: Callable[[], ChartLinks | None]) -> TestClient:
    app = web.Application()
    app.router.add_get(CHART_PATH, chart_handler(make()))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_the_bot_serves_the_png_for_a_genuine_link_only() -> None:
    client = await serve(links)
    try:
        url = links().url(weekday_hours(), Lang.DE)
        response = await client.get("/stats/chart/" + token_of(url))
        assert response.status == 200 and response.content_type == "image/png"
        Image.open(io.BytesIO(await response.read())).verify()
        tampered = token_of(url).replace(".png", "").rsplit(".", 1)[0] + ".AAAA.png"
        assert (await client.get("/stats/chart/" + tampered)).status == 403
    finally:
        await client.close()
    client = await serve(lambda: None)
    try:
        assert (await client.get("/stats/chart/anything.png")).status == 404
    finally:
        await client.close()
