"""Naming a region's colours: Lab statistics from the delta-analysis view, names by CIEDE2000.

Pixels are read through ``pakati_core.delta.view.image_view`` (the region cropped, weighted by
its mask, in CIELAB) and each sampled pixel gets the nearest of a small named palette by
``skimage.color.deltaE_ciede2000`` (with a lighter lightness weight than
``pakati_core.lab.ciede2000``). Chromatic names are judged on the chromatic pixels only
(C* above a floor), so shading and dark texture do not vote for "black".
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from skimage.color import deltaE_ciede2000

from ..delta.features import weighted_mean_std
from ..delta.view import image_view
from ..lab import rgb_to_lab

PALETTE_RGB = {
    "red": (200, 30, 35),
    "orange": (235, 125, 25),
    "yellow": (240, 215, 40),
    "green": (40, 150, 55),
    "blue": (35, 75, 200),
    "purple": (120, 50, 160),
    "pink": (240, 140, 180),
    "brown": (120, 75, 40),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (18, 18, 18),
    "cyan": (40, 200, 210),
    "magenta": (210, 40, 170),
}
ACHROMATIC = ("white", "gray", "black")
CHROMA_FLOOR = 14.0  # C* below this is treated as achromatic
# Goal words -> palette names that count as that colour
SYNONYMS = {
    "grey": ("gray",),
    "silver": ("gray", "white"),
    "gold": ("yellow", "orange", "brown"),
    "golden": ("yellow", "orange"),
    "beige": ("white", "brown", "yellow", "orange"),
    "tan": ("brown", "orange"),
    "cream": ("white", "yellow"),
    "ivory": ("white", "yellow"),
    "violet": ("purple", "magenta"),
    "lavender": ("purple", "pink"),
    "maroon": ("red", "brown"),
    "crimson": ("red",),
    "scarlet": ("red",),
    "navy": ("blue",),
    "turquoise": ("cyan", "green", "blue"),
    "teal": ("cyan", "green"),
    "lime": ("green", "yellow"),
    "olive": ("green", "brown", "yellow"),
    "emerald": ("green",),
    "azure": ("blue", "cyan"),
    "indigo": ("blue", "purple"),
    "amber": ("orange", "yellow"),
    "bronze": ("brown", "orange"),
    "copper": ("orange", "brown"),
    "khaki": ("brown", "green", "yellow"),
    "charcoal": ("black", "gray"),
    "ruby": ("red",),
    "burgundy": ("red", "purple", "brown"),
    "pink": ("pink", "magenta"),
    "orange": ("orange", "brown"),
    "brown": ("brown", "orange"),
}
MAX_SAMPLES = 4096
LIGHTNESS_WEIGHT = 3.0  # CIEDE2000 kL for naming


def accepted_names(colour: str) -> tuple[str, ...]:
    return SYNONYMS.get(colour, (colour,)) if colour in SYNONYMS or colour in PALETTE_RGB else ()


@lru_cache(maxsize=1)
def _palette_lab() -> tuple[tuple[str, ...], np.ndarray]:
    names = tuple(PALETTE_RGB)
    rgb = np.array([PALETTE_RGB[n] for n in names], np.float32)[None] / 255.0
    return names, rgb_to_lab(rgb)[0].astype(np.float64)


def colour_shares(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
    """Share of the region's weight per palette name (chromatic names over chromatic pixels) and its mean Lab."""
    view, _ = image_view(image, mask)
    lab = view.lab.reshape(-1, 3).astype(np.float64)
    w = view.weight.reshape(-1).astype(np.float64)
    mean, _ = weighted_mean_std(view.lab, view.weight)
    keep = np.flatnonzero(w > 0)
    if keep.size > MAX_SAMPLES:
        keep = keep[:: int(np.ceil(keep.size / MAX_SAMPLES))]
    lab, w = lab[keep], w[keep]
    names, pal = _palette_lab()
    # kL = LIGHTNESS_WEIGHT: shading changes L* far more than hue, so a shadowed red stays red, not brown
    d = deltaE_ciede2000(np.repeat(lab[:, None, :], len(names), axis=1), np.repeat(pal[None], len(lab), axis=0), kL=LIGHTNESS_WEIGHT)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    chromatic = chroma >= CHROMA_FLOOR
    achro_idx = [names.index(n) for n in ACHROMATIC]
    chro_idx = [i for i in range(len(names)) if names[i] not in ACHROMATIC]
    shares = {n: 0.0 for n in names}
    total = float(w.sum()) or 1.0
    if chromatic.any():
        best = np.asarray(chro_idx)[np.argmin(d[chromatic][:, chro_idx], axis=1)]
        cw = w[chromatic]
        for i in np.unique(best):
            shares[names[i]] = float(cw[best == i].sum() / total)
    if (~chromatic).any():
        best = np.asarray(achro_idx)[np.argmin(d[~chromatic][:, achro_idx], axis=1)]
        aw = w[~chromatic]
        for i in np.unique(best):
            shares[names[i]] += float(aw[best == i].sum() / total)
    return shares, np.asarray(mean, np.float64)


def colour_score(shares: dict[str, float], colour: str) -> float | None:
    """How much of the region is ``colour`` in [0, 1]; None for a word the palette cannot judge.

    A chromatic colour is scored against the chromatic part of the region (a red cat with dark
    fur is still red); an achromatic one against the whole region.
    """
    names = accepted_names(colour)
    if not names:
        return None
    chromatic_total = sum(v for k, v in shares.items() if k not in ACHROMATIC)
    if all(n in ACHROMATIC for n in names):
        return float(min(1.0, sum(shares[n] for n in names) / 0.5))
    if chromatic_total < 0.08:
        return 0.0
    share = sum(shares[n] for n in names if n not in ACHROMATIC) / chromatic_total
    return float(min(1.0, share / 0.6))
