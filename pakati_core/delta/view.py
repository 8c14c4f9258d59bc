"""The part of an image that a measurement looks at, prepared so that nothing outside it counts.

The region is cropped to its mask's bounding box, pixels outside the mask are replaced by the
mask-weighted mean colour of the pixels inside (so neighbourhood filters near the border see
only in-mask content), and the crop is area-downscaled to at most ``ANALYSIS_SIDE`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ImageInputError
from ..finite import require_finite
from ..geometry import Box, mask_box
from ..images import as_rgb, resize_image
from ..lab import rgb_to_lab
from ..masks import resize_mask
from ..references import Reference

ANALYSIS_SIDE = 512


class DeltaInputError(ImageInputError):
    """An image or mask that delta analysis cannot measure."""


@dataclass(frozen=True)
class RegionView:
    lab: np.ndarray  # h x w x 3 float32 CIELAB
    weight: np.ndarray  # h x w float32 in [0, 1], 0 outside the region
    interior: np.ndarray  # weight where the 3x3 neighbourhood is inside the region (for filters)

    @property
    def shape(self) -> tuple[int, int]:
        return self.lab.shape[0], self.lab.shape[1]


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


def _filled(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    outside = mask <= 0
    if outside.any():
        w = mask[..., None]
        out[outside] = (rgb * w).sum(axis=(0, 1)) / w.sum()
    return out


def _view(rgb: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> RegionView:
    rgb = resize_image(_filled(rgb, mask), size[1], size[0], enlarge="linear")
    weight = resize_mask(mask, size[1], size[0])
    lab = rgb_to_lab(rgb)
    support = (weight > 0).astype(np.uint8)
    eroded = cv2.erode(support, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1)
    interior = weight * eroded if eroded.any() else weight
    return RegionView(lab, weight, interior.astype(np.float32))


def image_view(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[RegionView, Box]:
    """The region of ``image`` under ``mask`` (whole image without one) and its box in the image."""
    rgb = as_rgb(image, min_side=8)
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
        rgb = resize_image(ref.image, image_shape[1], image_shape[0], enlarge="linear")[box.slices]
        m = as_mask(region_mask, image_shape)[box.slices]
        return _view(rgb, m, size)
    own = mask_box(ref.mask)
    return _view(ref.image[own.slices], ref.mask[own.slices], size)
