"""Masks: coverage arrays (float32 ``H x W`` in [0, 1]) drawn, softened, grown and resized.

Rasterisation is anti-aliased (exact pixel coverage to 1/16 px) at any target resolution, so
the same region gives a mask at canvas, latent or UNet-token-grid size. Every feature package
(canvas, regional attention, regeneration, attention maps, delta analysis) takes its mask
helpers from here.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .errors import RegionError

_SUPERSAMPLE = 4  # rasterise at 4x (16x for small grids) and area-average
_SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point precision: 1/16 px


def rasterize_polygon(points: np.ndarray, width: int, height: int, scale_x: float = 1.0, scale_y: float = 1.0) -> np.ndarray:
    """Anti-aliased coverage mask (float32 in [0, 1], ``height x width``) of a polygon.

    ``scale_x``/``scale_y`` map canvas pixels to target pixels, so one polygon rasterises at
    any resolution with exact area coverage (no resampling of a canvas-sized mask).

    The polygon is drawn supersampled, but only pixels near its outline can be partly covered:
    their supersampled blocks are counted, tile by tile along the outline; every other pixel is
    read off one sample. The result is the full area average (4096² took 10 s that way, now 0.2 s).
    """
    ss = _SUPERSAMPLE if max(width, height) >= 256 else 4 * _SUPERSAMPLE  # finer for token grids
    # Pixel (i, j) spans [j, j+1) x [i, i+1). cv2.fillPoly treats integer coordinates as pixel
    # centres and fills scanline spans inclusively at both ends, so shift by half a pixel,
    # draw with a spare row/column, and drop the extra right/bottom pixel of every span.
    pts = np.asarray(points, dtype=np.float64) * np.array([scale_x, scale_y])
    fixed = np.round((pts * ss - 0.5) * (1 << _SUBPIXEL_BITS)).astype(np.int32).reshape(1, -1, 2)
    hi = np.zeros((height * ss + 1, width * ss + 1), dtype=np.uint8)
    cv2.fillPoly(hi, fixed, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    if width * height <= 4 * _TILE * _TILE:
        return _block_coverage(hi, 0, 0, width, height, ss)
    out = hi[ss // 2 :: ss, ss // 2 :: ss][:height, :width].astype(np.float32)  # whole pixels, inside or out
    centres = np.round((pts - 0.5) * (1 << _SUBPIXEL_BITS)).astype(np.int32).reshape(1, -1, 2)
    band = np.zeros((height, width), dtype=np.uint8)  # pixels the outline passes through, with a margin
    cv2.polylines(band, centres, True, 1, thickness=1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    band = cv2.dilate(band, np.ones((9, 9), np.uint8)).view(bool)
    band[-1], band[:, -1] = True, True  # spans cut by the right/bottom border end there: count them too
    for y0 in range(0, height, _TILE):
        y1 = min(y0 + _TILE, height)
        cols = band[y0:y1].any(axis=0)
        for x0 in range(0, width, _TILE):
            x1 = min(x0 + _TILE, width)
            if cols[x0:x1].any():
                sel = band[y0:y1, x0:x1]
                out[y0:y1, x0:x1][sel] = _block_coverage(hi, x0, y0, x1 - x0, y1 - y0, ss)[sel]
    return out


_TILE = 64  # pixels per side of the tiles whose supersampled blocks are counted along an outline


def _block_coverage(hi: np.ndarray, x0: int, y0: int, width: int, height: int, ss: int) -> np.ndarray:
    """Coverage of pixels ``[y0, y0 + height) x [x0, x0 + width)`` from the supersampled drawing ``hi``."""
    win = hi[y0 * ss : (y0 + height) * ss + 1, x0 * ss : (x0 + width) * ss + 1]
    core = win[:-1, :-1] & win[:-1, 1:]
    core &= win[1:, :-1]
    # Area average of each ss x ss block as integer counts (what INTER_AREA computes for an
    # integer factor, without a float32 copy of the supersampled image).
    counts = core.reshape(height, ss, width, ss).sum(axis=(1, 3), dtype=np.uint16)
    return np.clip(counts.astype(np.float32) * np.float32(1.0 / (ss * ss)), 0.0, 1.0)


def feather_mask(mask: np.ndarray, feather_px: float) -> np.ndarray:
    """Soften a mask's edge over about ``feather_px`` pixels (Gaussian, sigma = feather / 2).

    The kernel reaches 3 sigma but never beyond the mask's own size: a feather wider than a third
    of the mask already spreads it over the whole mask, and an unbounded kernel (feather 1e6 took
    11 s on a 64 px mask; 1e300 overflowed) buys nothing.
    """
    if not math.isfinite(feather_px):
        raise RegionError(f"must be finite, got {feather_px!r}", field="feather")
    if feather_px <= 0:
        return mask
    side = max(mask.shape[:2])
    sigma = min(feather_px / 2.0, float(side))
    k = min(int(2 * math.ceil(3 * sigma) + 1), 2 * side + 1)
    return cv2.GaussianBlur(mask.astype(np.float32), (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resample a coverage mask to ``height x width`` (a canvas, a latent, a token grid): area averaging to
    shrink (a thin region keeps its coverage fraction), bilinear to enlarge; float32 clipped to 0..1."""
    if mask.shape == (height, width):
        return mask.astype(np.float32)
    down = width <= mask.shape[1] and height <= mask.shape[0]
    interp = cv2.INTER_AREA if down else cv2.INTER_LINEAR
    return np.clip(cv2.resize(mask.astype(np.float32), (width, height), interpolation=interp), 0.0, 1.0)


def exclusive_masks(own: np.ndarray) -> np.ndarray:
    """Z-ordered coverages ``[N, H, W]`` (later on top) made exclusive: ``m_i * prod_{j > i} (1 - m_j)``.

    A region hides the ones below it, so the result sums to at most 1 at every pixel. The one
    builder used by the canvas, regional attention and the region-mask node.
    """
    own = np.asarray(own, np.float32)
    out = own.copy()
    above = np.ones(own.shape[1:], np.float32)
    for i in range(len(own) - 1, -1, -1):
        out[i] = own[i] * above
        above *= 1.0 - own[i]
    return out


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grow_mask(mask: np.ndarray, grow: int) -> np.ndarray:
    """Dilate a soft mask by ``grow`` pixels (a disc); negative values erode."""
    m = mask.astype(np.float32)
    if grow > 0:
        return cv2.dilate(m, _disc(grow), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    if grow < 0:
        return cv2.erode(m, _disc(-grow), borderType=cv2.BORDER_REPLICATE)
    return m


def paste_masked(base: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``base`` with ``edited`` blended in by ``mask``; pixels where mask == 0 are copied untouched."""
    out = np.array(base, dtype=np.float32, copy=True)
    idx = mask > 0
    w = mask[idx][:, None]
    out[idx] = base[idx] + w * (np.asarray(edited, np.float32)[idx] - base[idx])
    return out
