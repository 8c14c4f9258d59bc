"""The blend mask: the region grown and feathered, and the rings around it.

The blend mask is exactly 0 outside the grown mask plus the feather's kernel radius, so the
stitch can leave every pixel there untouched (bit-identical to the input).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..masks import feather_mask, grow_mask


def blend_mask(mask: np.ndarray, grow: int, feather: float) -> np.ndarray:
    """Where the regenerated pixels go: 1 inside the mask, a feathered band around it, exact 0 beyond."""
    grown = grow_mask(mask, grow)
    soft = feather_mask(grown, feather) if feather > 0 else grown
    return np.clip(np.maximum(mask.astype(np.float32), soft), 0.0, 1.0).astype(np.float32)


def region_blend(mask: np.ndarray, grow: int, feather: float, keep_out: np.ndarray | None = None) -> np.ndarray:
    """The blend mask of a region whose ``keep_out`` pixels (``[H, W]``, 1 = keep, e.g. locked regions) must never
    change: the region minus those pixels, grown and feathered, and exactly 0 wherever ``keep_out`` is 1."""
    if keep_out is None:
        return blend_mask(mask, grow, feather)
    bl = blend_mask(mask * (1.0 - keep_out), grow, feather)
    return np.where(keep_out >= 1.0, 0.0, bl * (1.0 - keep_out)).astype(np.float32)


def band_radius(grow: int, feather: float) -> int:
    """How far (px) the blend mask can reach beyond the mask: the grow plus the blur's kernel reach.

    The separable Gaussian kernel is square, so diagonally it reaches sqrt(2) times its radius.
    """
    r = int(math.ceil(math.sqrt(2.0) * math.ceil(3 * feather / 2.0))) if feather > 0 else 0
    return max(grow, 0) + r + 1


def ring(mask: np.ndarray, inner: int, outer: int, threshold: float = 0.0) -> np.ndarray:
    """Boolean ring of pixels farther than ``inner`` and at most ``outer`` px outside ``mask > threshold``."""
    core = (mask > threshold).astype(np.uint8)
    dist = cv2.distanceTransform(1 - core, cv2.DIST_L2, 5)
    return (dist > inner) & (dist <= outer)
