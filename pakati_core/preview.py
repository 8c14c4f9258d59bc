"""Draw a canvas's regions over an image: translucent fill, outline and label per region."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .canvas import Canvas
from .images import as_rgb


def region_colour(index: int) -> tuple[int, int, int]:
    """A distinct, stable colour per z-index (golden-ratio hue walk)."""
    h = (0.07 + index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_overlay(image: np.ndarray | None, canvas: Canvas, fill_alpha: float = 0.35) -> np.ndarray:
    """Return ``image`` (``H x W x 3`` uint8 or float in [0, 1], or None for a grey board) with regions drawn, as float in [0, 1].

    The canvas is rescaled to the image, so a 1024x1024 layout previews on any image size.
    Fills use the exclusive (z-ordered) masks, so what you see is what the sampler gets.
    """
    if image is None:
        base = np.full((canvas.height, canvas.width, 3), 0.18, dtype=np.float32)
    else:
        base = as_rgb(image)
    h, w = base.shape[:2]
    layout = canvas if (w, h) == (canvas.width, canvas.height) else _scaled_for_preview(canvas, w, h)
    out = base.copy()
    if layout.regions:
        masks = layout.masks(w, h, exclusive=True)
        for i, m in enumerate(masks):
            colour = np.array(region_colour(i), dtype=np.float32) / 255.0
            a = (m * fill_alpha)[..., None]
            out = out * (1 - a) + colour * a
    pil = Image.fromarray((np.clip(out, 0, 1) * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=max(12, min(w, h) // 40))
    line = max(1, min(w, h) // 256)
    for i, r in enumerate(layout.regions):
        colour = region_colour(i)
        if r.shape == "mask":
            x0, y0, x1, y1 = layout.bbox(i)
            draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=line)
        else:
            pts = [tuple(p) for p in layout.regions[i].polygon().tolist()]
            draw.line(pts + [pts[0]], fill=colour, width=line, joint="curve")
        cx, cy = layout.centre(i)
        label = f"{i + 1}: {r.label}" + (" (locked)" if r.locked else "")
        bbox = draw.textbbox((cx, cy), label, font=font, anchor="mm")
        draw.rectangle([bbox[0] - 3, bbox[1] - 2, bbox[2] + 3, bbox[3] + 2], fill=(0, 0, 0))
        draw.text((cx, cy), label, fill=colour, font=font, anchor="mm")
    return np.asarray(pil, dtype=np.float32) / 255.0


def _scaled_for_preview(canvas: Canvas, width: int, height: int) -> Canvas:
    # Canvas sizes must be multiples of 8; previews may be any size, so scale points directly.
    from dataclasses import replace

    sx, sy = width / canvas.width, height / canvas.height
    regions = [replace(r, points=tuple((x * sx, y * sy) for x, y in r.points)) for r in canvas.regions]
    c = object.__new__(Canvas)
    c.width, c.height, c.regions = width, height, regions
    return c
