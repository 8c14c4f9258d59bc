"""Image plumbing between Pakati arrays and provider APIs: base64 PNG, alpha masks, allowed sizes (PNG and
conversion themselves are ``pakati_core.images``).

Providers take only some sizes. ``fit_to_size`` pads (edge pixels) to the allowed size's aspect
and resizes; ``restore`` undoes it exactly in geometry, so a caller gets its own size back.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..images import png_bytes, resize_image
from ..masks import resize_mask


def mask_png_bytes(mask: np.ndarray, threshold: float = 0.0) -> bytes:
    """OpenAI's mask format: an RGBA PNG, fully transparent where the image may change (``mask > threshold``)."""
    h, w = mask.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 3] = np.where(mask > threshold, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def b64_png(image: np.ndarray) -> str:
    return base64.b64encode(png_bytes(image)).decode("ascii")


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def nearest_size(width: int, height: int, allowed: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> tuple[int, int]:
    """The allowed size closest in aspect ratio to ``width x height`` (then the closest in area)."""
    if not allowed:
        return width, height
    aspect = np.log(width / height)
    return min(allowed, key=lambda s: (round(abs(np.log(s[0] / s[1]) - aspect), 6), abs(s[0] * s[1] - width * height)))


@dataclass(frozen=True)
class SizeFit:
    """How an image was fitted to a provider size: padded to ``padded`` then resized to ``sent``."""

    original: tuple[int, int]  # (w, h)
    padded: tuple[int, int]
    offset: tuple[int, int]  # (x, y) of the original inside the padded frame
    sent: tuple[int, int]

    @property
    def changed(self) -> bool:
        return self.original != self.sent

    def describe(self) -> str:
        (w, h), (pw, ph), (sw, sh) = self.original, self.padded, self.sent
        if not self.changed:
            return f"sent at {w}x{h} (an allowed size)"
        pad = f"padded to {pw}x{ph} (edge pixels), " if (pw, ph) != (w, h) else ""
        return f"{w}x{h} is not a size the API takes: {pad}resized to {sw}x{sh}, and the result resized back to {w}x{h}"


def plan_fit(width: int, height: int, allowed) -> SizeFit:
    sw, sh = nearest_size(width, height, allowed)
    target = sw / sh
    if width / height > target:  # too wide: pad height
        pw, ph = width, max(height, round(width / target))
    else:
        pw, ph = max(width, round(height * target)), height
    return SizeFit((width, height), (pw, ph), ((pw - width) // 2, (ph - height) // 2), (sw, sh))


def fit_image(image: np.ndarray, fit: SizeFit) -> np.ndarray:
    (w, h), (pw, ph), (ox, oy) = fit.original, fit.padded, fit.offset
    padded = np.pad(image, ((oy, ph - h - oy), (ox, pw - w - ox), (0, 0)), mode="edge") if (pw, ph) != (w, h) else image
    return resize_image(padded, *fit.sent)


def fit_mask(mask: np.ndarray, fit: SizeFit) -> np.ndarray:
    (w, h), (pw, ph), (ox, oy) = fit.original, fit.padded, fit.offset
    padded = np.pad(mask, ((oy, ph - h - oy), (ox, pw - w - ox))) if (pw, ph) != (w, h) else mask
    return resize_mask(padded, *fit.sent)


def restore(result: np.ndarray, fit: SizeFit) -> np.ndarray:
    """A provider result at ``fit.sent`` back at the original size (the padding cut away)."""
    (w, h), (pw, ph), (ox, oy) = fit.original, fit.padded, fit.offset
    back = resize_image(result, pw, ph)
    return np.ascontiguousarray(back[oy : oy + h, ox : ox + w, :3])
