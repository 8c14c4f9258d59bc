"""Masks as polygon regions (pakati_core.mask_region): outlines that match the mask, errors that name the field."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pakati_core.canvas import Canvas
from pakati_core.errors import RegionError
from pakati_core.mask_region import add_mask_region, polygon_from_mask
from pakati_core.masks import rasterize_polygon

EMPTY = (
    '{"version": 1, "width": 1024, "height": 768, "regions": [{"id": "sky", "shape": "rect", '
    '"points": [[0, 0], [1024, 300]], "prompt": "sky"}]}'
)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("blur", [0, 7])
def test_outline_covers_the_mask(blur):
    mask = np.zeros((96, 128), np.float32)
    cv2.ellipse(mask, (70, 50), (38, 22), 25, 0, 360, 1.0, -1)
    cv2.rectangle(mask, (5, 5), (12, 12), 1.0, -1)  # a smaller blob: not the region
    if blur:
        mask = cv2.GaussianBlur(mask, (blur, blur), 2.0)
    points = polygon_from_mask(mask, 1024, 768, threshold=0.5, max_points=24)
    assert 3 <= len(points) <= 24
    drawn = rasterize_polygon(np.array(points), 128, 96, 128 / 1024, 96 / 768) >= 0.5
    blob = mask >= 0.5
    blob[:20, :20] = False
    assert iou(drawn, blob) >= 0.93


def test_region_is_added_on_top_with_a_unique_id():
    mask = np.zeros((96, 128), np.float32)
    mask[30:70, 40:100] = 1.0
    canvas = Canvas.from_json(EMPTY)
    out, region = add_mask_region(canvas, mask, name="Shirt", prompt="a shirt printed with apples", feather=8.0)
    again, second = add_mask_region(out, mask, name="Shirt", prompt="x")
    assert [r.id for r in again.regions] == ["sky", "shirt", "shirt-2"]
    assert region["prompt"] == "a shirt printed with apples" and region["feather"] == 8 and region["shape"] == "polygon"
    assert Canvas.from_dict(again.to_dict()).to_dict() == again.to_dict(), "the result is ordinary Region JSON"
    drawn = again.rasterize("shirt", feather=0) >= 0.5  # canvas pixels
    want = cv2.resize(mask, (1024, 768), interpolation=cv2.INTER_NEAREST) >= 0.5
    assert iou(drawn, want) >= 0.97


@pytest.mark.parametrize(
    "mask, kwargs, field",
    [
        (np.zeros((96, 128), np.float32), {}, "threshold"),
        (np.full((96, 128), np.nan, np.float32), {}, "mask"),
        (np.ones((100, 100), np.float32), {}, "mask"),  # square mask, 4:3 canvas
        (np.ones((96, 128), np.float32), {"max_points": 2}, "max_points"),
        (np.ones((2, 96, 128), np.float32), {}, "mask"),
    ],
)
def test_bad_masks_raise_errors_naming_the_field(mask, kwargs, field):
    with pytest.raises(RegionError) as info:
        polygon_from_mask(mask, 1024, 768, **kwargs)
    assert info.value.field == field


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.95), st.integers(3, 64), st.sampled_from([(64, 48), (33, 25), (128, 96)]))
def test_any_mask_gives_a_valid_region_or_a_region_error(seed, threshold, max_points, shape):
    """Random noise, speckles, thin lines and blobs: a simple polygon that parses as Region JSON, or a RegionError."""
    rng = np.random.default_rng(seed)
    h, w = shape
    kind = seed % 4
    if kind == 0:
        mask = rng.random((h, w)).astype(np.float32)
    elif kind == 1:
        mask = (rng.random((h, w)) > 0.97).astype(np.float32)
    elif kind == 2:
        mask = np.zeros((h, w), np.float32)
        cv2.line(mask, (int(rng.integers(0, w)), 0), (int(rng.integers(0, w)), h - 1), 1.0, 1)
    else:
        mask = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3.0)
        mask = (mask - mask.min()) / max(float(np.ptp(mask)), 1e-6)
    try:
        out, region = add_mask_region(Canvas.from_json(EMPTY), mask, name="m", prompt="p", threshold=threshold, max_points=max_points)
    except RegionError as e:
        assert e.field in {"mask", "threshold", "regions"}, e.field
        return
    assert 3 <= len(region["points"]) <= max_points
    assert out.area("m") > 0
