"""Colour matching of a regenerated crop to the pixels around the region, in CIE Lab.

Sampling and the VAE round trip shift the tones of a whole crop (the seam users see). The
crop's context, just outside the blend band, should still look like the original there, so
the per-channel Lab mean and spread measured in that ring give the drift, which is removed
from the whole crop before it is blended back.
"""

from __future__ import annotations

import numpy as np

from ..lab import lab_to_rgb, rgb_to_lab

MIN_RING_PIXELS = 16
GAIN_LIMITS = (0.8, 1.25)


def match_colour(regenerated: np.ndarray, reference: np.ndarray, ring_mask: np.ndarray) -> np.ndarray:
    """``regenerated`` with its Lab mean and spread in ``ring_mask`` moved onto ``reference``'s.

    Both images are ``[H, W, C]`` float in 0..1 and pixel-aligned; a ring of fewer than
    16 pixels (no context to compare) leaves the image unchanged.
    """
    sel = ring_mask.astype(bool)
    if int(sel.sum()) < MIN_RING_PIXELS:
        return regenerated
    lab_r, lab_o = rgb_to_lab(regenerated), rgb_to_lab(reference)
    r, o = lab_r[sel], lab_o[sel]
    mu_r, mu_o = r.mean(0), o.mean(0)
    sd_r, sd_o = r.std(0), o.std(0)
    gain = np.clip(np.where(sd_r > 1e-3, sd_o / np.maximum(sd_r, 1e-3), 1.0), *GAIN_LIMITS)
    out = lab_to_rgb((lab_r - mu_r) * gain + mu_o)
    if regenerated.shape[-1] > 3:  # keep any alpha channel as it was
        out = np.concatenate([out, regenerated[..., 3:]], axis=-1)
    return out.astype(np.float32)
