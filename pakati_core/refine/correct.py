"""Cheap in-mask tone and colour corrections in CIELAB, and the exact masked paste.

Only pixels with mask weight > 0 are read back into the image, so every pixel outside the mask
stays bit-identical; soft mask weights blend the correction in.
"""

from __future__ import annotations

import numpy as np

from ..delta.features import tone_colour
from ..delta.measure import tone_deltas
from ..delta.view import as_mask
from ..images import as_rgb
from ..lab import lab_to_rgb, rgb_to_lab

CHANNELS = ("brightness", "contrast", "warmth", "tint", "saturation")


def tone_colour_deltas(
    image: np.ndarray, mask: np.ndarray | None, reference: np.ndarray, reference_mask: np.ndarray | None = None
) -> dict[str, float]:
    """The five correctable deltas of a region against a reference, at full resolution (the
    definitions are delta analysis's :func:`tone_deltas`)."""
    rgb, ref = as_rgb(image, min_side=8), as_rgb(reference, "reference", min_side=8)
    m = as_mask(mask, rgb.shape[:2])
    rm = as_mask(reference_mask, ref.shape[:2], "reference_mask")
    return tone_deltas(tone_colour(rgb_to_lab(rgb[m > 0][None])[0], m[m > 0]), tone_colour(rgb_to_lab(ref[rm > 0][None])[0], rm[rm > 0]))


def _mean_chroma(mean_ab: np.ndarray, dev: np.ndarray, k: float, w: np.ndarray) -> float:
    return float((np.hypot(mean_ab[0] + k * dev[:, 0], mean_ab[1] + k * dev[:, 1]) * w).sum() / w.sum())


def _spread_for_chroma(mean_ab: np.ndarray, dev: np.ndarray, w: np.ndarray, want: float, k_max: float = 4.0) -> float:
    """The spread factor k whose mean chroma is ``want`` (bisection: mean chroma rises with k >= 0
    once it is above the mean colour's own chroma)."""
    lo, hi = 0.0, k_max
    if _mean_chroma(mean_ab, dev, lo, w) >= want:
        return lo
    if _mean_chroma(mean_ab, dev, hi, w) <= want:
        return hi
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _mean_chroma(mean_ab, dev, mid, w) < want else (lo, mid)
    return 0.5 * (lo + hi)


def correct_region(image: np.ndarray, mask: np.ndarray | None, deltas: dict[str, float], strengths: dict[str, float]) -> np.ndarray:
    """Move the region's tone and colour against its deltas by the given strengths (1 = all the way).

    brightness shifts L*, contrast scales L* about its mean, warmth/tint shift b*/a*, saturation
    scales the a*b* spread about the mean colour. Works on the in-mask pixels only.
    """
    rgb = as_rgb(image, min_side=8)
    m = as_mask(mask, rgb.shape[:2])
    idx = m > 0
    w = m[idx]
    lab = rgb_to_lab(rgb[idx][None])[0].astype(np.float64)
    tone = tone_colour(lab, w)
    mean_l = float(tone.mean_lab[0])
    s = {c: float(strengths.get(c, 0.0)) for c in CHANNELS}
    d = {c: float(deltas.get(c, 0.0)) for c in CHANNELS}
    lab[:, 0] = mean_l + (lab[:, 0] - mean_l) * np.exp(-s["contrast"] * d["contrast"]) - s["brightness"] * d["brightness"]
    lab[:, 1] -= s["tint"] * d["tint"]
    lab[:, 2] -= s["warmth"] * d["warmth"]
    if s["saturation"] and d["saturation"]:
        # saturation: scale the a*b* spread about the (already shifted) mean colour, so the mean
        # hue found above stays put, until the mean chroma has moved by the asked share of the gap
        mean_ab = (lab[:, 1:] * w[:, None]).sum(axis=0) / w.sum()
        dev = lab[:, 1:] - mean_ab
        now = _mean_chroma(mean_ab, dev, 1.0, w)
        want = now + s["saturation"] * ((tone.mean_chroma - d["saturation"]) - now)
        lab[:, 1:] = mean_ab + dev * _spread_for_chroma(mean_ab, dev, w, want)
    lab[:, 0] = np.clip(lab[:, 0], 0.0, 100.0)
    corrected = np.clip(lab_to_rgb(lab[None].astype(np.float32))[0], 0.0, 1.0)
    out = np.array(rgb, dtype=np.float32, copy=True)
    out[idx] = rgb[idx] + w[:, None] * (corrected - rgb[idx])
    return out


def match_region_statistics(
    image: np.ndarray, mask: np.ndarray | None, reference: np.ndarray, reference_mask: np.ndarray | None = None, iterations: int = 4
) -> np.ndarray:
    """Full-strength masked Lab transfer, repeated on the residual (gamut clipping and soft mask
    edges leave some after one step)."""
    out = as_rgb(image, min_side=8)
    full = {c: 1.0 for c in CHANNELS}
    for _ in range(iterations):
        out = correct_region(out, mask, tone_colour_deltas(out, mask, reference, reference_mask), full)
    return out
