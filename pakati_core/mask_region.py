"""A MASK as a polygon region: the outline of its largest blob, simplified, in canvas pixels.

Masks from attention (or any MASK) become regions a user can see, edit in the canvas editor
and save in Region JSON, which holds polygons, not pixels. The outline is OpenCV's contour of
the largest 8-connected blob above the threshold, simplified with Douglas-Peucker
(``cv2.approxPolyDP``) until it has at most ``max_points`` vertices and does not cross itself.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from .canvas import Canvas, same_aspect
from .errors import RegionError
from .geometry import find_self_intersection

MIN_POINTS, MAX_POINTS = 3, 256


def polygon_from_mask(mask: np.ndarray, width: int, height: int, threshold: float = 0.5, max_points: int = 32) -> list[list[float]]:
    """Vertices (canvas pixels of a ``width x height`` canvas) outlining the largest blob of ``mask >= threshold``.

    ``mask`` is ``[H, W]`` at any size with the canvas's aspect ratio. Raises ``RegionError``
    naming the field when the mask is empty, not finite, of another aspect, or its blob is too
    thin to outline.
    """
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim != 2 or min(m.shape) < 1:
        raise RegionError(f"expected one [H, W] mask, got shape {tuple(m.shape)}", field="mask")
    if not np.isfinite(m).all():
        raise RegionError("the mask has NaN or infinite values", field="mask")
    if not MIN_POINTS <= max_points <= MAX_POINTS:
        raise RegionError(f"must be between {MIN_POINTS} and {MAX_POINTS}, got {max_points}", field="max_points")
    mh, mw = m.shape
    if not same_aspect(mw, mh, width, height):
        raise RegionError(f"the mask is {mw}x{mh} but the canvas is {width}x{height}: their aspect ratios differ", field="mask")
    binary = (m >= threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count < 2:
        raise RegionError(
            f"no pixel of the mask reaches the threshold {threshold:g} (its largest value is {float(m.max()):.3g})", field="threshold"
        )
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == largest).astype(np.uint8)
    # Contours run through the centres of the blob's boundary pixels, half a pixel inside its
    # edge: tracing the blob enlarged f times (nearest) leaves 1/(2f) of a mask pixel.
    f = max(1, min(4, 1024 // max(mh, mw)))
    if f > 1:
        blob = cv2.resize(blob, (mw * f, mh * f), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=len).astype(np.float32)
    scale = np.array([width / (mw * f), height / (mh * f)], dtype=np.float64)
    epsilon = 0.5 * f
    for _ in range(64):
        approx = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2).astype(np.float64)
        if MIN_POINTS <= len(approx) <= max_points:
            pts = np.clip((approx + 0.5) * scale, 0.0, [width, height])
            if abs(_area(pts)) > 0 and find_self_intersection(pts, border=(width, height)) is None:
                return [[round(float(x), 2), round(float(y), 2)] for x, y in pts]
        if len(approx) < MIN_POINTS:
            break
        epsilon *= 1.4
    hull = cv2.convexHull(contour).reshape(-1, 2).astype(np.float64)  # a blob too thin or ragged to simplify
    if len(hull) >= MIN_POINTS:
        hull = cv2.approxPolyDP(hull.astype(np.float32), 0.5 * f, True).reshape(-1, 2).astype(np.float64)[:max_points]
        pts = np.clip((hull + 0.5) * scale, 0.0, [width, height])
        if len(pts) >= MIN_POINTS and abs(_area(pts)) > 0:
            return [[round(float(x), 2), round(float(y), 2)] for x, y in pts]
    raise RegionError(f"the mask's largest blob ({int(stats[largest, cv2.CC_STAT_AREA])} px) is too thin to outline", field="mask")


def _area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def add_mask_region(
    canvas: Canvas,
    mask: np.ndarray,
    *,
    name: str,
    prompt: str,
    negative: str = "",
    strength: float = 1.0,
    feather: float = 0.0,
    threshold: float = 0.5,
    max_points: int = 32,
) -> tuple[Canvas, dict]:
    """The canvas with one more region (on top) outlined from ``mask``, and that region's Region JSON.

    The new canvas goes through Region JSON parsing, so it holds exactly what the editor and a
    saved workflow would hold.
    """
    points = polygon_from_mask(mask, canvas.width, canvas.height, threshold, max_points)
    taken = {r.id for r in canvas.regions}
    base = re.sub(r"[^a-z0-9]+", "-", (name or "mask").strip().lower()).strip("-") or "mask"
    rid, n = base, 2
    while rid in taken:
        rid, n = f"{base}-{n}", n + 1
    region = {
        "id": rid,
        "name": name.strip() or rid,
        "shape": "polygon",
        "points": points,
        "prompt": prompt,
        "negative": negative,
        "strength": strength,
        "feather": feather,
        "seed": None,
        "locked": False,
    }
    doc = canvas.to_dict()
    doc["regions"] = [*doc["regions"], region]
    out = Canvas.from_dict(doc)
    return out, out.regions[-1].to_dict()


__all__ = ["add_mask_region", "polygon_from_mask"]
