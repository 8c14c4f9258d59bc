"""Property tests (Hypothesis): whatever Region JSON or image comes in, the core either refuses it
with a typed error that names the field, or returns finite numbers in their stated ranges.

Kept fast (modest ``max_examples``, small raster sizes, ``deadline=None`` for the shared CI cores).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from pakati_core import Canvas, PakatiError
from pakati_core.canvas import RegionClippedWarning
from pakati_core.delta import DELTA_SPECS, analyse
from pakati_core.geometry import find_self_intersection
from pakati_core.references import Reference
from pakati_core.understanding import score

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
)

# -------------------------------------------------------------------------------- Region JSON

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
COORD = st.one_of(st.floats(-2000, 6000, allow_nan=False), st.integers(-2000, 6000))


@st.composite
def star_polygon(draw, width: int, height: int) -> list[list[float]]:
    """A simple polygon of 3-500 points (angles sorted around a centre), partly outside the canvas at times."""
    n = draw(st.integers(3, 500))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radius = rng.uniform(0.05, 0.6, n) * min(width, height)
    cx, cy = draw(st.floats(-0.2, 1.2)) * width, draw(st.floats(-0.2, 1.2)) * height
    return [[float(cx + r * math.cos(a)), float(cy + r * math.sin(a))] for a, r in zip(angles, radius)]


def chance(draw, p: float) -> bool:
    """True with probability about ``p``. Hypothesis favours 0 and the bounds when it draws numbers,
    so the True band sits in the middle of the range rather than at 0."""
    return 400 <= draw(st.integers(0, 999)) < 400 + round(p * 1000)


@st.composite
def region_json(draw, width: int, height: int, index: int) -> dict:
    shape = "polygon-random" if chance(draw, 0.15) else draw(st.sampled_from(["polygon", "rect"]))
    if shape == "rect":
        points = [[draw(COORD), draw(COORD)], [draw(COORD), draw(COORD)]]
    elif shape == "polygon":
        points = draw(star_polygon(width, height))
    else:  # arbitrary points: usually self-intersecting or degenerate
        points = draw(st.lists(st.lists(COORD, min_size=2, max_size=2), min_size=3, max_size=40))
    region = {
        "id": f"r{index}",
        "name": draw(st.text(max_size=12)),
        "shape": "rect" if shape == "rect" else "polygon",
        "points": points,
        "prompt": draw(st.text(max_size=20)),
        "negative": draw(st.text(max_size=8)),
        "strength": draw(st.floats(0, 10)),
        "feather": draw(st.one_of(st.floats(0, 64), st.floats(0, 1e12))),
        "seed": draw(st.one_of(st.none(), st.integers(0, 2**64))),
        "locked": draw(st.booleans()),
    }
    for key, hi in (("cfg", 100.0), ("denoise", 1.0)):  # optional, null = the default; sometimes out of range
        if draw(st.booleans()):
            region[key] = draw(
                st.one_of(st.none(), st.floats(0, hi), st.integers(0, int(hi)), st.floats(-1e3, 1e3), st.floats(allow_nan=True))
            )
    while chance(draw, 0.25):  # corrupt some fields: wrong types, non-finite numbers, unknown keys
        key = draw(st.sampled_from([*region, "extra", "points"]))
        if key == "points" and draw(st.booleans()):
            pts = list(region["points"])
            pts[draw(st.integers(0, len(pts) - 1))] = draw(ODD_VALUES)
            region["points"] = pts
        else:
            region[key] = draw(ODD_VALUES)
    if chance(draw, 0.05):
        del region[draw(st.sampled_from(sorted(region)))]
    return region


@st.composite
def canvas_json(draw) -> dict:
    def side() -> int:  # 64..4096; one in ten not a multiple of 8
        return draw(st.integers(64, 4096)) if chance(draw, 0.1) else draw(st.integers(8, 512)) * 8

    width, height = side(), side()
    regions = [draw(region_json(width, height, i)) for i in range(draw(st.integers(1, 3)))]
    data = {"version": 1, "width": width, "height": height, "regions": regions}
    if chance(draw, 0.05):
        data[draw(st.sampled_from(["version", "width", "height", "regions"]))] = draw(ODD_VALUES)
    if chance(draw, 0.05):
        regions.append(dict(regions[0]))  # a duplicate id
    return data


def _field_named(e: PakatiError) -> None:
    assert e.field, f"{type(e).__name__} without a field: {e}"
    assert str(e).startswith(f"{e.field}: "), str(e)


@FAST
@given(data=canvas_json(), out_w=st.integers(8, 192), out_h=st.integers(8, 192))
def test_region_json_is_refused_with_the_field_or_gives_sane_masks(data, out_w, out_h):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegionClippedWarning)
        try:
            canvas = Canvas.from_dict(data)
        except PakatiError as e:
            _field_named(e)
            event(f"refused: {type(e).__name__}")
            return
    event(f"accepted with {len(canvas.regions)} region(s)")
    for w, h in ((out_w, out_h), (out_w // 8 * 8 or 8, out_h // 8 * 8 or 8)):
        for exclusive in (True, False):
            masks = canvas.masks(w, h, exclusive=exclusive)
            assert masks.shape == (len(canvas.regions), h, w) and masks.dtype == np.float32
            assert np.isfinite(masks).all() and masks.min(initial=0) >= 0 and masks.max(initial=0) <= 1
        if canvas.regions:
            assert canvas.masks(w, h, exclusive=True).sum(0).max() <= 1 + 1e-5  # exclusive masks share each pixel
    assert Canvas.from_json(canvas.to_json()).to_dict() == canvas.to_dict()  # what parses round-trips
    for r, raw in zip(canvas.regions, data["regions"]):
        for key, hi in (("cfg", 100.0), ("denoise", 1.0)):
            value = getattr(r, key)
            assert (value is None) == (raw.get(key) is None) and (value is None or 0.0 <= value <= hi), (key, value)


def _crosses_scalar(p1, p2, p3, p4) -> bool:
    """The textbook segment test, one pair at a time: the oracle for the vectorised one."""

    def orient(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return 0 if abs(v) < 1e-9 else (1 if v > 0 else -1)

    def on(a, b, c):
        return min(a[0], b[0]) - 1e-9 <= c[0] <= max(a[0], b[0]) + 1e-9 and min(a[1], b[1]) - 1e-9 <= c[1] <= max(a[1], b[1]) + 1e-9

    o1, o2, o3, o4 = orient(p1, p2, p3), orient(p1, p2, p4), orient(p3, p4, p1), orient(p3, p4, p2)
    if o1 != o2 and o3 != o4:
        return True
    return (o1 == 0 and on(p1, p2, p3)) or (o2 == 0 and on(p1, p2, p4)) or (o3 == 0 and on(p3, p4, p1)) or (o4 == 0 and on(p3, p4, p2))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=3, max_size=10))
def test_self_intersection_matches_the_pairwise_oracle(points):
    """Small integer grids hit the collinear and touching cases the tolerance handles."""
    p = np.asarray(points, np.float64)
    n = len(p)
    expected = None
    for i in range(n):
        for j in range(i + 1, n):
            if j == (i + 1) % n or (j + 1) % n == i:
                continue
            if _crosses_scalar(p[i], p[(i + 1) % n], p[j], p[(j + 1) % n]):
                expected = (i, j)
                break
        if expected:
            break
    assert find_self_intersection(p) == expected


# -------------------------------------------------------------------------------- images


@st.composite
def image(draw, min_side: int = 8, max_side: int = 96) -> np.ndarray:
    h, w = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    channels = draw(st.sampled_from([3, 4]))  # alpha is ignored
    kind = draw(st.sampled_from(["constant", "noise", "extreme", "binary", "gradient"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "constant":
        a = np.full((h, w, channels), draw(st.floats(-2, 3)), np.float32)
    elif kind == "noise":
        a = rng.random((h, w, channels), dtype=np.float32)
    elif kind == "extreme":  # far outside [0, 1]: clipped, never NaN
        a = rng.choice(np.array([-1e30, -1.0, 0.0, 1.0, 2.0, 1e30], np.float32), size=(h, w, channels))
    elif kind == "binary":
        a = (rng.random((h, w, channels)) > 0.5).astype(np.float32)
    else:
        a = np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32)[None, :, None], (h, w, channels))  # a read-only view
    return a


@st.composite
def mask_for(draw, h: int, w: int) -> np.ndarray | None:
    kind = draw(st.sampled_from(["none", "pixel", "box", "soft"]))
    if kind == "none":
        return None
    m = np.zeros((h, w), np.float32)
    y, x = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
    if kind == "pixel":  # a 1x1 region
        m[y, x] = draw(st.floats(0.01, 1.0))
    elif kind == "box":
        m[y : y + draw(st.integers(1, h)), x : x + draw(st.integers(1, w))] = 1.0
    else:
        m = np.random.default_rng(y * w + x).random((h, w)).astype(np.float32) * draw(st.floats(0.01, 2.0))
        m[y, x] = 1.0
    return m


def _check_report(report) -> None:
    assert 0.0 <= report.overall <= 1.0 and math.isfinite(report.overall)
    for r in report.results:
        assert 0.0 <= r.score <= 1.0
        assert all(0.0 <= v <= 1.0 for v in r.aspects.values())
        assert {d.name for d in r.deltas} == set(DELTA_SPECS)
        for d in r.deltas:
            assert math.isfinite(d.value), (d.name, d.value)
            assert 0.0 <= d.similarity <= 1.0
            if not d.spec.signed:
                assert d.value >= 0.0, (d.name, d.value)
    box = report.box
    assert 0 <= box.x0 < box.x1 and 0 <= box.y0 < box.y1
    report.to_json()


@FAST
@given(data=st.data())
def test_delta_analysis_gives_finite_numbers_in_range(data):
    img = data.draw(image())
    h, w = img.shape[:2]
    mask = data.draw(mask_for(h, w))
    ref = data.draw(image())
    ref_mask = data.draw(st.one_of(st.none(), mask_for(*ref.shape[:2])))
    assume(ref_mask is None or (ref_mask > 0).any())
    aspect = data.draw(st.sampled_from(["color", "texture", "composition", "lighting", "style", "general"]))
    report = analyse(img, [Reference(ref, aspect=aspect, mask=ref_mask), Reference(img, weight=0.5)], mask)
    _check_report(report)


def test_delta_analysis_on_a_4096_view():
    """A 4096x4096 read-only view (no copy of 200 MB made by the caller) and a 1x1 region in it."""
    big = np.broadcast_to(np.linspace(0, 1, 4096, dtype=np.float32)[None, :, None], (4096, 4096, 3))
    mask = np.zeros((4096, 4096), np.float32)
    mask[2048, 4095] = 1.0
    _check_report(analyse(big, [Reference(big[::64, ::64])], mask))
    _check_report(analyse(big, [Reference(big[:512, :512])]))


@FAST
@given(data=st.data())
def test_non_finite_reconstructions_are_refused_with_the_field(data):
    """A NaN/Inf anywhere in what is scored is a ScoreError, never a NaN score. (NaN images given to
    Reference and delta analysis are refused by the NaN hardening of issue 10 item 2.)"""
    img = np.array(data.draw(image()), copy=True)
    bad = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    img[data.draw(st.integers(0, img.shape[0] - 1)), data.draw(st.integers(0, img.shape[1] - 1)), data.draw(st.integers(0, 2))] = bad
    good = np.full(img.shape[:2] + (3,), 0.5, np.float32)
    hidden = np.ones(img.shape[:2], bool)
    for ref, rec in ((good, img), (img, good)):
        with pytest.raises(PakatiError) as e:
            score(ref, rec, hidden)
        _field_named(e.value)


@FAST
@given(data=st.data())
def test_understanding_scores_are_finite_and_in_range(data):
    ref = np.clip(np.asarray(data.draw(image(min_side=8, max_side=200)), np.float64), 0, 1)
    h, w = ref.shape[:2]
    kind = data.draw(st.sampled_from(["identical", "extreme", "noise", "constant"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    channels = data.draw(st.sampled_from([3, 4]))
    if kind == "identical":
        rec = ref
    elif kind == "extreme":  # far outside [0, 1]: clipped
        rec = rng.choice(np.array([-1e30, 0.0, 0.5, 1.0, 1e30]), size=(h, w, channels))
    elif kind == "noise":
        rec = rng.random((h, w, channels))
    else:
        rec = np.full((h, w, channels), data.draw(st.floats(-1, 2)))
    hidden = data.draw(mask_for(h, w))
    hidden = np.ones((h, w), bool) if hidden is None else hidden > 0
    s = score(ref, rec, hidden)
    for k in ("psnr", "ssim", "gms", "color", "texture", "composite"):
        assert math.isfinite(s[k]) and 0.0 <= s[k] <= 1.0, (k, s[k])
    assert s["ms_ssim"] is None or 0.0 <= s["ms_ssim"] <= 1.0
    assert math.isfinite(s["delta_e2000"]) and s["delta_e2000"] >= 0 and math.isfinite(s["gmsd"]) and s["gmsd"] >= 0
    if rec is ref:
        assert s["composite"] == pytest.approx(1.0, abs=1e-6)
