"""The part of an image that a measurement looks at, prepared so that nothing outside it counts.

The region is cropped to its mask's bounding box, pixels outside the mask are replaced by the
mask-weighted mean colour of the pixels inside (so neighbourhood filters near the border see
only in-mask content), and the crop is area-downscaled to at most ``ANALYSIS_SIDE`` pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..box import Box, mask_box
from ..errors import PakatiError
from ..finite import require_finite
from ..lab import rgb_to_lab
from ..references import Reference

ANALYSIS_SIDE = 512


class DeltaInputError(PakatiError):
    """An image or mask that delta analysis cannot measure."""


@dataclass(frozen=True)
class RegionView:
    lab: np.ndarray  # h x w x 3 float32 CIELAB
    weight: np.ndarray  # h x w float32 in [0, 1], 0 outside the region
    interior: np.ndarray  # weight where the 3x3 neighbourhood is inside the region (for filters)

    @property
    def shape(self) -> tuple[int, int]:
        return self.lab.shape[0], self.lab.shape[1]


def as_rgb(image: np.ndarray, field: str = "image") -> np.ndarray:
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] < 3 or min(a.shape[:2]) < 8:
        raise DeltaInputError(f"expected an HxWx3 image of at least 8x8 pixels, got shape {np.shape(image)}", field)
    require_finite(a[..., :3], "the image", field)
    return np.clip(a[..., :3], 0.0, 1.0)


def as_mask(mask: np.ndarray | None, shape: tuple[int, int], field: str = "mask") -> np.ndarray:
    if mask is None:
        return np.ones(shape, np.float32)
    m = np.asarray(mask, dtype=np.float32)
    if m.shape != shape:
        raise DeltaInputError(f"mask is {m.shape[-1]}x{m.shape[0]} but the image is {shape[1]}x{shape[0]}", field)
    require_finite(m, "the mask", field)
    m = np.clip(m, 0.0, 1.0)
    if not (m > 0).any():
        raise DeltaInputError("the mask is empty: there is no region to measure", field)
    return m


def analysis_size(h: int, w: int) -> tuple[int, int]:
    s = min(1.0, ANALYSIS_SIDE / max(h, w))
    return max(8, round(h * s)), max(8, round(w * s))


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if a.shape[:2] == (h, w):
        return a
    shrink = h <= a.shape[0] and w <= a.shape[1]
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _filled(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    outside = mask <= 0
    if outside.any():
        w = mask[..., None]
        out[outside] = (rgb * w).sum(axis=(0, 1)) / w.sum()
    return out


def _view(rgb: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> RegionView:
    rgb = _resize(_filled(rgb, mask), size)
    weight = np.clip(_resize(mask, size), 0.0, 1.0).astype(np.float32)
    lab = rgb_to_lab(rgb)
    support = (weight > 0).astype(np.uint8)
    eroded = cv2.erode(support, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1)
    interior = weight * eroded if eroded.any() else weight
    return RegionView(lab, weight, interior.astype(np.float32))


def image_view(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[RegionView, Box]:
    """The region of ``image`` under ``mask`` (whole image without one) and its box in the image."""
    rgb = as_rgb(image)
    m = as_mask(mask, rgb.shape[:2])
    box = mask_box(m)
    return _view(rgb[box.slices], m[box.slices], analysis_size(box.height, box.width)), box


def reference_view(ref: Reference, image_shape: tuple[int, int], box: Box, region_mask: np.ndarray | None) -> RegionView:
    """The reference laid over the region being measured.

    Without its own mask a reference stands for the whole target image: it is resized to the
    image and cut to the region's box (so composition compares like with like). With a mask,
    the masked part of the reference is stretched over the region's box.
    """
    size = analysis_size(box.height, box.width)
    if ref.mask is None:
        rgb = _resize(ref.image, image_shape)[box.slices]
        m = as_mask(region_mask, image_shape)[box.slices]
        return _view(rgb, m, size)
    own = mask_box(ref.mask)
    return _view(ref.image[own.slices], ref.mask[own.slices], size)
