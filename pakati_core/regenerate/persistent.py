"""Persistent regions: locked regions keep their pixels; regenerated regions are composed over the previous image."""

from __future__ import annotations

import zlib
from typing import Iterable

import numpy as np

from ..canvas import Canvas, Region
from .errors import LockedRegionError, StitchMismatchError

SEED_SPACE = 2**32


def region_seed(region: Region, base_seed: int = 0) -> int:
    """The region's own seed, or one derived from its id and ``base_seed`` (stable across runs)."""
    if region.seed is not None:
        return int(region.seed) % SEED_SPACE
    return (zlib.crc32(region.id.encode("utf-8")) ^ (int(base_seed) % SEED_SPACE)) % SEED_SPACE


def locked_mask(canvas: Canvas, width: int, height: int, exclude: Iterable[int] = ()) -> np.ndarray:
    """Union of the locked regions' coverage (feather ignored) at ``width x height``; 1 = keep."""
    keep = np.zeros((height, width), dtype=np.float32)
    skip = set(exclude)
    for i, r in enumerate(canvas.regions):
        if r.locked and i not in skip:
            m = canvas.rasterize(i, width, height, feather=0)
            keep = 1.0 - (1.0 - keep) * (1.0 - m)
    return keep


def regeneration_mask(canvas: Canvas, key: str | int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the region to regenerate, mask of locked pixels to keep), both at ``width x height``.

    A locked region cannot be regenerated; the regions locked around it are kept out of its
    blend band.
    """
    index = canvas.index_of(key)
    region = canvas.regions[index]
    if region.locked:
        raise LockedRegionError(f"region '{region.label}' is locked; unlock it to regenerate it", field="region")
    mask = canvas.rasterize(index, width, height, feather=0)
    return mask, locked_mask(canvas, width, height, exclude=[index])


def selected_regions(canvas: Canvas, keys: Iterable[str | int] | None) -> list[int]:
    """Indices of the regions to compose: the named ones, or every unlocked region when none is named."""
    if keys is None:
        return [i for i, r in enumerate(canvas.regions) if not r.locked]
    out = []
    for k in keys:
        i = canvas.index_of(k)
        if canvas.regions[i].locked:
            raise LockedRegionError(
                f"region '{canvas.regions[i].label}' is locked and keeps its pixels; unlock it to compose it", field="regions"
            )
        out.append(i)
    return out


def compose_regions(previous: np.ndarray, regenerated: np.ndarray, canvas: Canvas, keys: Iterable[str | int] | None = None) -> np.ndarray:
    """``previous`` with the selected regions taken from ``regenerated`` (``[H, W, C]`` float).

    Regions blend with their feathered, exclusive masks (later regions win); pixels inside
    locked regions, and pixels no selected region reaches, are copied from ``previous`` bit for bit.
    """
    if previous.shape != regenerated.shape:
        raise StitchMismatchError(
            f"previous image {previous.shape[1]}x{previous.shape[0]}x{previous.shape[2]} and regenerated image "
            f"{regenerated.shape[1]}x{regenerated.shape[0]}x{regenerated.shape[2]} differ",
            field="regenerated",
        )
    height, width = previous.shape[:2]
    chosen = selected_regions(canvas, keys)
    out = previous.astype(np.float32, copy=True)
    if not chosen:
        return out
    masks = canvas.masks(width, height, exclusive=True)
    weight = np.clip(masks[chosen].sum(0), 0.0, 1.0) * (1.0 - locked_mask(canvas, width, height))
    sel = weight > 0
    mixed = previous + (regenerated - previous) * weight[..., None]
    out[sel] = mixed[sel]
    return out
