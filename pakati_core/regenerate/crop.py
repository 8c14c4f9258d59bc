"""Crop a region (plus context) out of an image at its sampling resolution, keeping what the stitch needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..canvas import same_aspect
from ..geometry import Box, fit_box, pad_box
from ..images import resize_image, unit_float
from ..masks import resize_mask
from .blend import region_blend
from .box import support_box, target_size
from .errors import EmptyMaskError, MaskSizeError, RegenerateError


@dataclass
class RegionStitch:
    """Everything needed to put regenerated crops back: the original frames, boxes and blend masks.

    ``blends[b]`` is image-sized and exactly 0 outside the mask plus its blend band; the stitch
    copies every other pixel from ``image`` untouched.
    """

    image: np.ndarray  # [B, H, W, C] float32, the frames the crops came from
    boxes: list[Box]
    blends: list[np.ndarray]  # [H, W] float32 per frame
    target: tuple[int, int]  # (width, height) of the crops
    ring: int = 16  # width (px) of the context ring used for colour matching
    meta: dict = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return len(self.boxes)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[2]), int(self.image.shape[1])


@dataclass
class RegionCrop:
    images: np.ndarray  # [B, th, tw, C]
    masks: np.ndarray  # [B, th, tw] the blend mask at sampling resolution (use as the noise mask)
    stitch: RegionStitch


def match_mask_to_image(masks: np.ndarray, batch: int, width: int, height: int) -> np.ndarray:
    """Masks ``[Bm, h, w]`` as ``[batch, height, width]``: resized when only the scale differs, repeated when Bm is 1."""
    masks = np.asarray(masks, dtype=np.float32)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise MaskSizeError(f"expected a [B, H, W] mask, got shape {tuple(masks.shape)}", field="mask")
    bm, h, w = masks.shape
    if bm not in (1, batch):
        raise MaskSizeError(f"{bm} masks for {batch} images; give one mask or one per image", field="mask")
    if (w, h) != (width, height):
        if not same_aspect(w, h, width, height):
            raise MaskSizeError(
                f"the mask is {w}x{h} but the image is {width}x{height}; their aspect ratios differ, so the "
                "mask cannot be placed on the image",
                field="mask",
            )
        masks = np.stack([resize_mask(m, width, height) for m in masks])
    if not np.isfinite(masks).all():
        raise MaskSizeError("the mask contains NaN or infinite values", field="mask")
    masks = np.clip(masks, 0.0, 1.0)
    return np.repeat(masks, batch, axis=0) if bm == 1 and batch > 1 else masks


def crop_region(
    image: np.ndarray,
    mask: np.ndarray,
    context: int = 32,
    mode: str = "sdxl native",
    explicit: tuple[int, int] = (1024, 1024),
    grow: int = 8,
    feather: float = 16.0,
    keep_out: np.ndarray | None = None,
    ring: int = 16,
    check_interrupt: Callable[[], None] | None = None,
) -> RegionCrop:
    """Crop each frame's region plus ``context`` px, resized to one sampling size (multiples of 8).

    ``image`` is ``[B, H, W, C]`` float in 0..1 or uint8 in 0..255 (the crop is float either way);
    ``mask`` is ``[B or 1, h, w]``. ``keep_out`` (``[H, W]``, 1 = keep) marks pixels that must never change, such as locked regions.
    Batches with different masks get one box per frame, all fitted to the same sampling size.
    """
    image = unit_float(image, "image")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[1] < 8 or image.shape[2] < 8:
        raise RegenerateError(f"expected a [B, H, W, C] image of at least 8x8 px, got shape {tuple(image.shape)}", field="image")
    batch, height, width = image.shape[:3]
    if context < 0 or grow < 0 or feather < 0:
        raise RegenerateError(f"context ({context}), grow ({grow}) and feather ({feather}) must be >= 0", field="context")
    masks = match_mask_to_image(mask, batch, width, height)
    blends, tight = [], []
    for b in range(batch):
        if check_interrupt:
            check_interrupt()
        m = masks[b] if keep_out is None else masks[b] * (1.0 - keep_out)
        bl = region_blend(masks[b], grow, feather, keep_out)
        where = f"mask[{b}]" if batch > 1 else "mask"
        if not (m > 0).any():
            raise EmptyMaskError(
                "the mask is empty (every pixel is 0, or every masked pixel is locked), so there is no region to regenerate", field=where
            )
        blends.append(bl)
        tight.append(pad_box(support_box(bl, where), context, width, height))
    span_w, span_h = max(t.width for t in tight), max(t.height for t in tight)
    tw, th = target_size(mode, span_w, span_h, explicit)
    boxes = [fit_box(t, tw, th, width, height, exact=(mode == "keep")) for t in tight]
    crops = np.stack([resize_image(image[b][bx.slices], tw, th) for b, bx in enumerate(boxes)])
    crop_masks = np.stack([resize_mask(blends[b][bx.slices], tw, th) for b, bx in enumerate(boxes)])
    stitch = RegionStitch(image=image, boxes=boxes, blends=blends, target=(tw, th), ring=ring)
    return RegionCrop(images=crops.astype(np.float32), masks=np.clip(crop_masks, 0.0, 1.0).astype(np.float32), stitch=stitch)
