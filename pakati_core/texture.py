"""Local binary patterns: Pakati's one micro-texture descriptor and its histogram distance.

Rotation-invariant uniform LBP over the 8-neighbourhood (codes 0..9, as scikit-image's
``local_binary_pattern(P=8, R=1, method="uniform")`` but on the square ring rather than
interpolated diagonals), vectorised because scikit-image's per-pixel loop dominated the delta
report. Used by delta analysis and by the reconstruction scores.
"""

from __future__ import annotations

import numpy as np

LBP_CODES = 10  # P + 2 for P = 8: 9 uniform codes and one for every non-uniform pattern
_RING = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]


def uniform_lbp(lightness: np.ndarray) -> np.ndarray:
    """The uniform LBP code (0..9) of every pixel of a 2-D array (edges replicated)."""
    p = np.pad(lightness, 1, mode="edge")
    h, w = lightness.shape
    bits = np.stack([p[y : y + h, x : x + w] >= lightness for y, x in _RING]).astype(np.int8)
    ones = bits.sum(axis=0)
    transitions = np.abs(bits - np.roll(bits, 1, axis=0)).sum(axis=0)
    return np.where(transitions <= 2, ones, LBP_CODES - 1).astype(np.int64)


def lbp_histogram(lightness: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Normalised histogram of the uniform LBP codes, each pixel counted by ``weight`` (bool or soft)."""
    codes = uniform_lbp(lightness)
    hist = np.bincount(codes.ravel(), weights=np.asarray(weight, np.float64).ravel(), minlength=LBP_CODES)[:LBP_CODES]
    return hist / max(float(hist.sum()), 1e-12)


def chi_squared(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric chi-squared distance between two normalised histograms, in [0, 1]."""
    return float(0.5 * (((a - b) ** 2) / (a + b + 1e-12)).sum())
