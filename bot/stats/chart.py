"""The stats card's chart: calls per weekday and hour as a PNG heat map, served through a short-lived signed link.

Why a picture and not Teams' Adaptive Card chart elements: the question is *when* calls are missed, a 7 × 24 grid,
and the chart elements (``Chart.VerticalBar``, ``Chart.Line``, …) have no heat map; they render in Teams and in the
Agents Playground but not in the adaptivecards JS renderer or other hosts, where the card would show a hole. A PNG
renders everywhere. The link carries the counts themselves (signed, expiring), so serving it reads no database and
the link cannot be changed to show another team's numbers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import json
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from aiohttp import web

from bot.config import Settings
from cards.i18n import Lang

CHART_PATH = "/stats/chart/{token}"
LINK_LIFETIME = timedelta(days=8)
"""Long enough for a weekly digest to show its chart until the next one; after that the card keeps its numbers."""
_KEY_LABEL = b"rufpool stats chart links v1"
_VERSION = "c1"
MAX_TOKEN_LENGTH = 1500
WEEKDAY_LABELS = {
    Lang.DE: ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
    Lang.EN: ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
CELL, GAP, LEFT, TOP, SCALE = 26, 2, 44, 22, 2


class InvalidChartLink(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ChartLinks:
    """Signs the counts of one chart into a URL and reads them back; ``clock`` returns epoch seconds."""

    def __init__(self, key: bytes, base_url: str, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("the chart link key must be at least 32 bytes")
        self._key = key
        self._base_url = base_url.rstrip("/")
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> ChartLinks | None:
        """A key derived from the configured secrets; None when there are none (the card then has no chart)."""
        secrets = [
            settings.app_password.get_secret_value(),
            settings.graph_client_secret.get_secret_value(),
            settings.graph_client_state.get_secret_value(),
        ]
        if not any(secrets):
            return None
        material = b"\x00".join(secret.encode("utf-8") for secret in secrets)
        return cls(hmac.new(_KEY_LABEL, material, hashlib.sha256).digest(), settings.public_base_url)

    def _signature(self, payload: str) -> str:
        return _b64(hmac.new(self._key, f"{_VERSION}.{payload}".encode("ascii"), hashlib.sha256).digest())

    def url(self, grid: Sequence[Sequence[int]], lang: Lang) -> str:
        expires = int(self._clock() + LINK_LIFETIME.total_seconds())
        body = json.dumps([lang.value, expires, [list(row) for row in grid]], separators=(",", ":"))
        payload = _b64(zlib.compress(body.encode("ascii"), 9))
        return f"{self._base_url}{CHART_PATH.format(token=f'{_VERSION}.{payload}.{self._signature(payload)}.png')}"

    def read(self, token: str) -> tuple[tuple[tuple[int, ...], ...], Lang]:
        """The grid and language of a genuine, unexpired token; :class:`InvalidChartLink` otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidChartLink("link too long")
        version, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if version != _VERSION or not payload or not hmac.compare_digest(signature, self._signature(payload)):
            raise InvalidChartLink("invalid signature")
        try:
            lang, expires, grid = json.loads(zlib.decompress(_unb64(payload), bufsize=16_384))
            rows = tuple(tuple(int(value) for value in row) for row in grid)
            language = Lang(lang)
        except (ValueError, TypeError, zlib.error, binascii.Error) as error:
            raise InvalidChartLink("malformed link") from error
        if len(rows) != 7 or any(len(row) != 24 for row in rows):
            raise InvalidChartLink("malformed link")
        if self._clock() >= int(expires):
            raise InvalidChartLink("link expired")
        return rows, language


def _colour(value: int, peak: int) -> tuple[int, int, int]:
    """White for no calls to a deep red for the busiest hour."""
    if value <= 0 or peak <= 0:
        return (243, 242, 241)
    share = 0.25 + 0.75 * value / peak
    low, high = (253, 224, 204), (196, 49, 75)
    return tuple(round(a + (b - a) * share) for a, b in zip(low, high, strict=True))  # type: ignore[return-value]


def render_heatmap(grid: Sequence[Sequence[int]], lang: Lang) -> bytes:
    """The PNG: weekdays down, hours across, darker = more calls, the count written in each busy cell."""
    from PIL import Image, ImageDraw, ImageFont  # Pillow (≈ 4 MB) only once a chart is asked for

    width, height = LEFT + 24 * (CELL + GAP), TOP + 7 * (CELL + GAP)
    image = Image.new("RGB", (width * SCALE, height * SCALE), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11 * SCALE)
    small = ImageFont.load_default(size=9 * SCALE)
    peak = max((max(row) for row in grid), default=0)
    for hour in range(0, 24, 2):
        x = (LEFT + hour * (CELL + GAP) + CELL / 2) * SCALE
        draw.text((x, TOP / 2 * SCALE), f"{hour}", fill=(96, 94, 92), font=small, anchor="mm")
    for day, row in enumerate(grid):
        y = TOP + day * (CELL + GAP)
        draw.text(
            (4 * SCALE, (y + CELL / 2) * SCALE), WEEKDAY_LABELS[lang][day], fill=(50, 49, 48), font=font, anchor="lm"
        )
        for hour, value in enumerate(row):
            x = LEFT + hour * (CELL + GAP)
            box = (x * SCALE, y * SCALE, (x + CELL) * SCALE - 1, (y + CELL) * SCALE - 1)
            draw.rounded_rectangle(box, radius=3 * SCALE, fill=_colour(value, peak))
            if value:
                ink = "white" if value * 2 > peak else (50, 49, 48)
                centre = ((x + CELL / 2) * SCALE, (y + CELL / 2) * SCALE)
                draw.text(centre, str(value) if value < 1000 else "999+", fill=ink, font=small, anchor="mm")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def chart_handler(signer: ChartLinks | None) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``GET /stats/chart/{token}``: 403 for a forged or expired link, else the PNG (rendered off the event loop)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if signer is None:
            raise web.HTTPNotFound(text='{"error": "chart links are not configured"}', content_type="application/json")
        try:
            grid, lang = signer.read(request.match_info["token"].removesuffix(".png"))
        except InvalidChartLink as error:
            raise web.HTTPForbidden(text=json.dumps({"error": str(error)}), content_type="application/json") from error
        png = await asyncio.to_thread(render_heatmap, grid, lang)
        return web.Response(
            body=png,
            content_type="image/png",
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    return handle
