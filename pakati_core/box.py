"""Pixel boxes: Pakati's one rectangle convention.

A box is a half-open integer pixel rectangle ``Box(x0, y0, x1, y1)``: columns ``x0 <= x < x1``,
rows ``y0 <= y < y1`` (the order PIL, OpenCV and Region JSON ``rect`` corners use). Crops,
delta reports and scores all take and return this one type.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def slices(self) -> tuple[slice, slice]:
        """``array[box.slices]`` is the box's part of an ``[H, W, ...]`` array."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


def mask_box(mask: np.ndarray, threshold: float = 0.0) -> Box | None:
    """Bounding box of the pixels where ``mask > threshold``; None when there is none."""
    above = np.asarray(mask) > threshold
    rows = np.flatnonzero(above.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(above.any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
