"""Draw the Teams app icons: ``color.png`` (192×192) and ``outline.png`` (32×32, white on transparent).

Reproducible: ``.venv/bin/python manifest/make_icons.py`` rewrites both files from geometry alone (no fonts),
so the committed PNGs can always be regenerated. Shapes are drawn at a multiple of the target size and scaled
down with a Lanczos filter, which gives smooth anti-aliased edges.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

HERE = Path(__file__).resolve().parent
ACCENT_TOP = (20, 150, 160)
ACCENT_BOTTOM = (10, 100, 112)
SUPERSAMPLE = 8


def _handset_mask(size: int) -> Image.Image:
    """A classic telephone handset (arched handle, ear and mouth pieces) as a greyscale mask."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = size * 0.5, size * 0.62
    radius, band = size * 0.30, size * 0.14
    start, end = math.radians(215), math.radians(325)
    steps = 64
    angles = [start + (end - start) * i / steps for i in range(steps + 1)]
    outer = [(cx + (radius + band / 2) * math.cos(a), cy + (radius + band / 2) * math.sin(a)) for a in angles]
    inner = [(cx + (radius - band / 2) * math.cos(a), cy + (radius - band / 2) * math.sin(a)) for a in angles]
    draw.polygon(outer + inner[::-1], fill=255)
    pad_width, pad_height = size * 0.30, size * 0.20
    for angle in (start, end):
        end_x, end_y = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        left = end_x - pad_width / 2 + math.copysign(pad_width * 0.12, math.cos(angle))
        top = end_y - band * 0.35
        draw.rounded_rectangle((left, top, left + pad_width, top + pad_height), radius=pad_height * 0.38, fill=255)
    return mask


def _fit(mask: Image.Image, *, width: float, center_y: float) -> Image.Image:
    """Scale the mask's drawn part to ``width`` (fraction of the canvas), centred at ``center_y``."""
    size = mask.width
    box = mask.getbbox()
    if box is None:
        raise ValueError("empty mask")
    shape = mask.crop(box)
    scale = size * width / shape.width
    shape = shape.resize((round(shape.width * scale), round(shape.height * scale)), Image.Resampling.LANCZOS)
    fitted = Image.new("L", (size, size), 0)
    fitted.paste(shape, ((size - shape.width) // 2, round(size * center_y - shape.height / 2)))
    return fitted


def _waves_mask(size: int, *, tops: tuple[float, ...], stroke: float) -> Image.Image:
    """Gentle water waves (the "pool") as a greyscale mask."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    amplitude, period = size * 0.022, size * 0.19
    for top in tops:
        points = [
            (x, size * top + amplitude * math.sin(2 * math.pi * x / period))
            for x in range(round(size * 0.22), round(size * 0.78) + 1, max(1, size // 200))
        ]
        draw.line(points, fill=255, width=max(1, round(size * stroke)), joint="curve")
    return mask


def _gradient(size: int) -> Image.Image:
    gradient = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(gradient)
    for y in range(size):
        t = y / (size - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(ACCENT_TOP, ACCENT_BOTTOM, strict=True))
        draw.line([(0, y), (size, y)], fill=colour)
    return gradient


def color_icon(size: int = 192) -> Image.Image:
    """Full-colour icon: white handset above two waves on a teal gradient square."""
    big = size * SUPERSAMPLE
    handset = _fit(_handset_mask(big), width=0.62, center_y=0.42)
    waves = _waves_mask(big, tops=(0.70, 0.79), stroke=0.032).point(lambda v: v * 210 // 255)
    icon = _gradient(big).convert("RGBA")
    icon.paste((255, 255, 255, 255), (0, 0, big, big), ImageChops.lighter(handset, waves))
    return icon.resize((size, size), Image.Resampling.LANCZOS)


def outline_icon(size: int = 32) -> Image.Image:
    """Outline icon: white handset on a fully transparent background (Teams tints it)."""
    big = size * SUPERSAMPLE
    alpha = _fit(_handset_mask(big), width=0.9, center_y=0.5).resize((size, size), Image.Resampling.LANCZOS)
    icon = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    icon.putalpha(alpha)
    return icon


def main() -> None:
    color_icon().save(HERE / "color.png", optimize=True)
    outline_icon().save(HERE / "outline.png", optimize=True)


if __name__ == "__main__":
    main()
