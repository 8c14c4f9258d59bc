"""Crop sizes: the region's support box and the sampling resolution a crop is fitted to (growing boxes lives in geometry).

Boxes are :class:`pakati_core.geometry.Box` (half-open ``x0, y0, x1, y1``). The target size is
always a multiple of 8 (SDXL latents are 1/8 of the image).
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry import Box, mask_box
from .errors import EmptyMaskError, RegenerateError

TARGET_MODES = ("sdxl native", "keep", "explicit")
SDXL_NATIVE_AREA = 1024 * 1024
MIN_SIDE = 64  # smallest crop side worth sampling (an 8x8 latent)


def support_box(mask: np.ndarray, field: str = "mask") -> Box:
    """Bounding box of the pixels where ``mask > 0``; an empty mask is an error."""
    box = mask_box(mask)
    if box is None:
        raise EmptyMaskError("the mask is empty (every pixel is 0), so there is no region to regenerate", field=field)
    return box


def round8(v: float) -> int:
    return max(8, int(round(v / 8.0)) * 8)


def ceil8(v: float) -> int:
    return max(8, int(math.ceil(v / 8.0)) * 8)


def target_size(
    mode: str, box_w: int, box_h: int, explicit: tuple[int, int] = (1024, 1024), native_area: int = SDXL_NATIVE_AREA
) -> tuple[int, int]:
    """The sampling resolution ``(w, h)`` for a crop of ``box_w x box_h`` (multiples of 8).

    ``keep``: the crop's own size rounded up to a multiple of 8 (at least 64 px a side);
    ``sdxl native``: the crop's aspect at about ``native_area`` pixels (1024² for SDXL);
    ``explicit``: the given size.
    """
    if mode == "keep":
        return ceil8(max(box_w, MIN_SIDE)), ceil8(max(box_h, MIN_SIDE))
    if mode == "sdxl native":
        s = math.sqrt(native_area / float(box_w * box_h))
        return round8(box_w * s), round8(box_h * s)
    if mode == "explicit":
        w, h = explicit
        if w < 8 or h < 8 or w % 8 or h % 8:
            raise RegenerateError(f"explicit size {w}x{h} must be multiples of 8 (at least 8)", field="width")
        return int(w), int(h)
    raise RegenerateError(f"unknown target mode {mode!r}; expected one of {', '.join(TARGET_MODES)}", field="target")
