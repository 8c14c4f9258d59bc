"""A mask from an attention map: normalise, select (threshold or top fraction), grow, feather."""

from __future__ import annotations

import numpy as np

from ..errors import AttentionMapError
from ..masks import feather_mask, grow_mask, resize_mask

MODES = ("threshold", "top fraction")


def normalised_map(attn: np.ndarray, width: int, height: int) -> np.ndarray:
    """The map min-max normalised to [0, 1] and resized to ``height x width`` (float32)."""
    a = np.asarray(attn, dtype=np.float32)
    if a.ndim != 2 or not np.isfinite(a).all():
        raise AttentionMapError("the attention map is not a finite 2-D array", "capture")
    lo, hi = float(a.min()), float(a.max())
    norm = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.clip(resize_mask(norm, width, height), 0.0, 1.0).astype(np.float32)


def mask_from_map(
    attn: np.ndarray,
    width: int,
    height: int,
    mode: str = "threshold",
    value: float = 0.5,
    blur: float = 0.0,
    dilate: int = 0,
    soft: bool = False,
) -> np.ndarray:
    """An ``height x width`` float32 mask in [0, 1] from one ``h x w`` attention map.

    The map is min-max normalised, resized to the image, then cut at ``value`` (mode
    'threshold', on the normalised map) or at the level that keeps the top ``value`` fraction of
    pixels (mode 'top fraction'). Binary masks are 1 above the cut; soft masks ramp from 0 at the
    cut to 1 at the peak. ``dilate`` grows the mask (pixels), ``blur`` feathers it (pixels).
    """
    if mode not in MODES:
        raise AttentionMapError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}", "mode")
    if not 0.0 <= value <= 1.0:
        raise AttentionMapError(f"{value} is outside [0, 1]", "value")
    norm = normalised_map(attn, width, height)
    if mode == "threshold":
        cut = value
    else:
        cut = float(np.quantile(norm, 1.0 - value)) if value > 0 else np.inf
    if soft:
        m = np.clip((norm - cut) / max(1.0 - cut, 1e-6), 0.0, 1.0) if np.isfinite(cut) else np.zeros_like(norm)
        m = np.where(norm >= cut, np.maximum(m, 1e-3), 0.0).astype(np.float32) if np.isfinite(cut) else m
    else:
        m = (norm >= cut).astype(np.float32)
    if dilate > 0:
        m = grow_mask(m, int(dilate))
    if blur > 0:
        m = feather_mask(m, float(blur))
    return np.clip(m, 0.0, 1.0).astype(np.float32)
