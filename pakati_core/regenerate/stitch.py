"""Paste regenerated crops back: resize to the box, match colour to the ring, blend inside the band only."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..images import resize_image, unit_float
from .blend import ring as ring_mask
from .colour import match_colour
from .crop import RegionStitch
from .errors import StitchMismatchError


def stitch_region(
    stitch: RegionStitch,
    regenerated: np.ndarray,
    original: np.ndarray | None = None,
    colour_match: bool = True,
    check_interrupt: Callable[[], None] | None = None,
) -> np.ndarray:
    """The original frames with the regenerated crops blended in; ``[B, H, W, C]`` float32 in 0..1 (the
    images may be uint8 0..255 or float 0..1).

    Pixels where the blend mask is 0 (outside mask + band) are copied from the original,
    bit for bit. ``original`` replaces the frames stored in the stitch (same size). One
    stitch frame with several regenerated crops gives one output per crop.
    """
    regenerated = unit_float(regenerated, "regenerated", "the regenerated crop")
    if regenerated.ndim == 3:
        regenerated = regenerated[None]
    base = stitch.image if original is None else unit_float(original, "original", "the original image")
    if base.ndim == 3:
        base = base[None]
    w, h = stitch.size
    if base.shape[1:3] != (h, w):
        raise StitchMismatchError(
            f"the original is {base.shape[2]}x{base.shape[1]} but the region was cropped from a {w}x{h} image", field="original"
        )
    n = max(stitch.batch, regenerated.shape[0])
    for name, count in (("image", regenerated.shape[0]), ("original", base.shape[0])):
        if count not in (1, n):
            raise StitchMismatchError(
                f"{count} frames, but the stitch holds {stitch.batch} and the regenerated batch {regenerated.shape[0]}", field=name
            )
    if stitch.batch not in (1, n):
        raise StitchMismatchError(f"{regenerated.shape[0]} regenerated crops for a stitch of {stitch.batch} frames", field="image")
    out = []
    for i in range(n):
        if check_interrupt:
            check_interrupt()
        s = i if stitch.batch > 1 else 0
        frame = base[i if base.shape[0] > 1 else 0]
        out.append(_paste(frame, regenerated[i if regenerated.shape[0] > 1 else 0], stitch, s, colour_match))
    return np.stack(out)


def _paste(frame: np.ndarray, crop: np.ndarray, stitch: RegionStitch, index: int, colour_match: bool) -> np.ndarray:
    box, blend = stitch.boxes[index], stitch.blends[index]
    result = frame.copy()
    orig = frame[box.slices]
    channels = min(orig.shape[-1], crop.shape[-1])
    piece = resize_image(crop[..., :channels], box.width, box.height)
    b = blend[box.slices]
    if colour_match:
        piece = match_colour(piece, orig[..., :channels], ring_mask(b, 0, stitch.ring))
    sel = b > 0
    if sel.any():
        region = result[box.slices]
        mixed = orig[..., :channels] + (piece - orig[..., :channels]) * b[..., None]
        region[sel, :channels] = mixed[sel]
        full = b >= 1.0
        region[full, :channels] = piece[full]
    return result
