"""Colour matching of a regenerated crop to the pixels around the region, in CIE Lab.

Sampling and the VAE round trip shift the tones of a whole crop (the seam users see). The
crop's context, just outside the blend band, should still look like the original there, so
the per-channel Lab mean and spread measured in that ring give the drift, which is removed
from the whole crop before it is blended back.
"""
from __future__ import annotations

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab

MIN_RING_PIXELS = 16
GAIN_LIMITS = (0.8, 1.25)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(rgb[..., :3], 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2Lab)


def from_lab(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


def match_colour(regenerated: np.ndarray, reference: np.ndarray, ring_mask: np.ndarray) -> np.ndarray:
    """``regenerated`` with its Lab mean and spread in ``ring_mask`` moved onto ``reference``'s.

    Both images are ``[H, W, C]`` float in 0..1 and pixel-aligned; a ring of fewer than
    16 pixels (no context to compare) leaves the image unchanged.
    """
    sel = ring_mask.astype(bool)
    if int(sel.sum()) < MIN_RING_PIXELS:
        return regenerated
    lab_r, lab_o = to_lab(regenerated), to_lab(reference)
    r, o = lab_r[sel], lab_o[sel]
    mu_r, mu_o = r.mean(0), o.mean(0)
    sd_r, sd_o = r.std(0), o.std(0)
    gain = np.clip(np.where(sd_r > 1e-3, sd_o / np.maximum(sd_r, 1e-3), 1.0), *GAIN_LIMITS)
    out = from_lab((lab_r - mu_r) * gain + mu_o)
    if regenerated.shape[-1] > 3:  # keep any alpha channel as it was
        out = np.concatenate([out, regenerated[..., 3:]], axis=-1)
    return out.astype(np.float32)


def mean_ciede2000(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference between two RGB images over the pixels in ``where``."""
    sel = where.astype(bool)
    if not sel.any():
        return 0.0
    la = rgb2lab(np.clip(a[..., :3], 0, 1).astype(np.float64)[sel][None])
    lb = rgb2lab(np.clip(b[..., :3], 0, 1).astype(np.float64)[sel][None])
    return float(deltaE_ciede2000(la, lb).mean())
