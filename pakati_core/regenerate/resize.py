"""Resampling of crops and masks between image and sampling resolution."""
from __future__ import annotations

import cv2
import numpy as np

from ..canvas import resize_mask_area


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an ``[H, W, C]`` float image: area averaging to shrink, bicubic to enlarge (clipped to 0..1)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image.astype(np.float32, copy=True)
    interp = cv2.INTER_AREA if width <= w and height <= h else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (width, height), interpolation=interp)
    if out.ndim == 2:
        out = out[..., None]
    return np.clip(out, 0.0, 1.0)


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    return resize_mask_area(mask, width, height)
