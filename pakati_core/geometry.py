"""Plane geometry: Pakati's one box convention and the polygon arithmetic of regions.

A box is a half-open integer pixel rectangle ``Box(x0, y0, x1, y1)``: columns ``x0 <= x < x1``,
rows ``y0 <= y < y1`` (the order PIL, OpenCV and Region JSON ``rect`` corners use). Crops,
delta reports, scores and the nodes' crop boxes all take and return this one type; polygons
are ``[N, 2]`` arrays of canvas pixels.
"""

from __future__ import annotations

import math
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


def pad_box(box: Box, context: int, width: int, height: int) -> Box:
    """Grow a box by ``context`` pixels on every side, clipped to the image."""
    return Box(max(0, box.x0 - context), max(0, box.y0 - context), min(width, box.x1 + context), min(height, box.y1 + context))


def _grow_axis(lo: int, hi: int, want: int, limit: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` to length ``want`` around its centre, shifted to stay inside ``[0, limit)``."""
    want = min(max(want, hi - lo), limit)
    extra = want - (hi - lo)
    lo -= extra // 2
    hi = lo + want
    if lo < 0:
        lo, hi = 0, want
    if hi > limit:
        lo, hi = limit - want, limit
    return lo, hi


def fit_box(box: Box, target_w: int, target_h: int, width: int, height: int, exact: bool) -> Box:
    """Grow ``box`` to the target's aspect ratio (``exact``: to the target size itself) inside the image.

    Where the image is too small to hold that, the box stops at the image border and the crop
    is stretched slightly when it is resized to the target.
    """
    if exact:
        want_w, want_h = target_w, target_h
    else:
        aspect = target_w / target_h
        want_w = max(box.width, math.ceil(box.height * aspect))
        want_h = max(box.height, math.ceil(want_w / aspect))
        want_w = max(want_w, math.ceil(want_h * aspect))
    x0, x1 = _grow_axis(box.x0, box.x1, want_w, width)
    y0, y1 = _grow_axis(box.y0, box.y1, want_h, height)
    return Box(x0, y0, x1, y1)


def snapped_box(box: Box, padding: int, width: int, height: int, multiple: int = 8) -> Box:
    """``box`` grown by ``padding`` on every side, each side then a multiple of ``multiple`` (at most the
    image's side rounded down to one), shifted to stay inside the ``width x height`` image."""

    def span(lo: int, hi: int, size: int) -> tuple[int, int]:
        lo, hi = max(0, lo - padding), min(size, hi + padding)
        length = min(-(-(hi - lo) // multiple) * multiple, size // multiple * multiple)
        lo = max(0, min(lo, size - length))
        return lo, lo + length

    x0, x1 = span(box.x0, box.x1, width)
    y0, y1 = span(box.y0, box.y1, height)
    return Box(x0, y0, x1, y1)


def polygon_area(points: np.ndarray) -> float:
    """Unsigned shoelace area in square canvas pixels."""
    x, y = points[:, 0], points[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0


def polygon_centroid(points: np.ndarray) -> tuple[float, float]:
    x, y = points[:, 0], points[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    a = cross.sum() / 2.0
    if abs(a) < 1e-12:
        return float(x.mean()), float(y.mean())
    cx = ((x + np.roll(x, -1)) * cross).sum() / (6 * a)
    cy = ((y + np.roll(y, -1)) * cross).sum() / (6 * a)
    return float(cx), float(cy)


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sign (-1, 0, 1) of the turn a -> b -> c for arrays of points (``[..., 2]``); |cross| < 1e-9 is 0."""
    v = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    return np.where(np.abs(v) < 1e-9, 0, np.sign(v)).astype(np.int8)


def _on_segment(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Whether c lies in the bounding box of segment ab (used for collinear points)."""
    lo, hi = np.minimum(a, b) - 1e-9, np.maximum(a, b) + 1e-9
    return ((lo <= c) & (c <= hi)).all(axis=-1)


def segments_cross(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, p4: np.ndarray) -> np.ndarray:
    """True where closed segments p1p2 and p3p4 touch or cross (points ``[..., 2]``, broadcast)."""
    o1, o2, o3, o4 = _orient(p1, p2, p3), _orient(p1, p2, p4), _orient(p3, p4, p1), _orient(p3, p4, p2)
    return ((o1 != o2) & (o3 != o4)) | (
        ((o1 == 0) & _on_segment(p1, p2, p3))
        | ((o2 == 0) & _on_segment(p1, p2, p4))
        | ((o3 == 0) & _on_segment(p3, p4, p1))
        | ((o4 == 0) & _on_segment(p3, p4, p2))
    )


def _border_lines(p: np.ndarray, q: np.ndarray, size: tuple[float, float]) -> np.ndarray:
    """Per edge, a bit for each canvas border line (x=0, x=W, y=0, y=H) that the whole edge lies on."""
    w, h = size
    bits = np.zeros(len(p), np.int8)
    for bit, (axis, value) in enumerate(((0, 0.0), (0, w), (1, 0.0), (1, h))):
        bits |= ((p[:, axis] == value) & (q[:, axis] == value)).astype(np.int8) << bit
    return bits


def find_self_intersection(points: np.ndarray, border: tuple[float, float] | None = None) -> tuple[int, int] | None:
    """Return the indices of two non-adjacent edges that cross, or None for a simple polygon.

    With ``border`` (the canvas ``(width, height)``), edges lying on a border line may touch or
    overlap: clipping a polygon drawn past the edge makes such bridges of zero width, which cover
    nothing. Two edges on the same border line may always overlap; when every point is on the
    canvas (a clipped polygon), nothing can cross a border edge, so any contact with one is such
    a touch. Each edge is tested against all later edges at once (numpy),
    so a 500-point polygon is checked in milliseconds at queue time rather than seconds.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    n = len(p)
    q = np.roll(p, -1, axis=0)  # edge i runs p[i] -> q[i]
    lines = _border_lines(p, q, border) if border is not None else np.zeros(n, np.int8)
    on_canvas = border is not None and bool(((p >= 0) & (p <= np.asarray(border, np.float64))).all())
    for i in range(n):
        j = np.arange(i + 1, n)
        j = j[(j != (i + 1) % n) & ((j + 1) % n != i)]  # adjacent edges share a vertex by construction
        if j.size:
            allowed = ((lines[j] | lines[i]) != 0) if on_canvas else ((lines[j] & lines[i]) != 0)
            hit = segments_cross(p[i], q[i], p[j], q[j]) & ~allowed
            if hit.any():
                return i, int(j[np.argmax(hit)])
    return None


def clip_polygon(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clip a polygon to ``[0, width] x [0, height]`` (Sutherland-Hodgman); may return fewer than 3 points."""
    poly = [tuple(p) for p in np.asarray(points, dtype=np.float64)]
    edges = ((0, 0.0, 1), (0, width, -1), (1, 0.0, 1), (1, height, -1))  # (axis, bound, keep side)
    for axis, bound, side in edges:
        if not poly:
            break

        def inside(p: tuple, axis: int = axis, bound: float = bound, side: int = side) -> bool:
            return (p[axis] - bound) * side >= 0

        out = []
        for i, cur in enumerate(poly):
            prev = poly[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(_cross(prev, cur, axis, bound))
                out.append(cur)
            elif inside(prev):
                out.append(_cross(prev, cur, axis, bound))
        poly = out
    return np.asarray(poly, dtype=np.float64).reshape(-1, 2)


def _cross(a: tuple, b: tuple, axis: int, bound: float) -> tuple[float, float]:
    """Where segment ab crosses the line ``axis = bound`` (that coordinate exactly ``bound``)."""
    t = (bound - a[axis]) / (b[axis] - a[axis])
    p = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]
    p[axis] = float(bound)
    return (p[0], p[1])
