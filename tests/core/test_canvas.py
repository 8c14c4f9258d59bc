"""pakati_core.canvas: Region JSON v1, validation, rasterisation and queries (no ComfyUI)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from skimage.draw import polygon as sk_polygon

from pakati_core import (
    Canvas,
    CanvasError,
    CanvasSizeError,
    DuplicateRegionError,
    Region,
    RegionClippedWarning,
    RegionError,
    RegionGeometryError,
    RegionLimitError,
    RegionNotFoundError,
    UnsupportedVersionError,
    mask_region,
)
from pakati_core.canvas import REGION_JSON_VERSION
from pakati_core.geometry import polygon_area
from pakati_core.masks import rasterize_polygon


def doc(regions, width=1024, height=1024, **extra):
    return json.dumps({"version": 1, "width": width, "height": height, "regions": regions, **extra})


def poly(id_, points, **kw):
    return {"id": id_, "shape": "polygon", "points": points, **kw}


SKY = poly("r1", [[0, 0], [1024, 0], [1024, 380], [0, 420]], name="sky", prompt="dramatic sky", feather=24)


def test_design_example_round_trips():
    c = Canvas.from_json(doc([SKY]))
    assert c.regions[0].name == "sky" and c.regions[0].feather == 24
    again = Canvas.from_json(c.to_json())
    assert again == c
    assert json.loads(c.to_json())["version"] == REGION_JSON_VERSION


def test_rect_shape_two_corners():
    c = Canvas.from_json(doc([{"id": "a", "shape": "rect", "points": [[100, 50], [300, 250]]}]))
    assert c.area("a") == 200 * 200
    assert c.bbox("a") == (100, 50, 300, 250)
    assert c.centre("a") == (200, 150)


# -- validation: every case names its field ------------------------------------------------------


@pytest.mark.parametrize(
    "text, error, needle",
    [
        (doc([poly("a", [[0, 0], [10, 10]])]), RegionGeometryError, "regions[0].points: a polygon needs at least 3 points, got 2"),
        (doc([poly("a", [[0, 0], [100, 100], [200, 200]])]), RegionGeometryError, "zero area"),
        (doc([poly("a", [[0, 0], [100, 100], [100, 0], [0, 100]])]), RegionGeometryError, "self-intersecting"),
        (doc([poly("a", [[0, 0], ["x", 10], [10, 10]])]), RegionGeometryError, "regions[0].points: point 1 has a non-numeric"),
        (doc([poly("a", [[0, 0], [True, 10], [10, 10]])]), RegionGeometryError, "non-numeric"),
        (doc([], width=1004), CanvasSizeError, "width: 1004 is not a multiple of 8"),
        (doc([], height=7), CanvasSizeError, "height: 7 is outside"),
        (doc([poly(f"r{i}", [[0, 0], [8, 0], [8, 8]]) for i in range(33)]), RegionLimitError, "33 regions; at most 32"),
        (
            doc([poly("a", [[0, 0], [8, 0], [8, 8]]), poly("a", [[0, 0], [9, 0], [9, 9]])]),
            DuplicateRegionError,
            "regions[1].id: duplicate region id 'a'",
        ),
        (
            json.dumps({"version": 2, "width": 64, "height": 64, "regions": []}),
            UnsupportedVersionError,
            "version: unknown Region JSON version 2",
        ),
        (json.dumps({"width": 64, "height": 64, "regions": []}), UnsupportedVersionError, "version: missing"),
        (doc([poly("a", [[0, 0], [8, 0], [8, 8]], strength="high")]), RegionError, "regions[0].strength: must be int or float, got str"),
        (doc([poly("a", [[0, 0], [8, 0], [8, 8]], locked="yes")]), RegionError, "regions[0].locked: must be bool"),
        (doc([poly("a", [[0, 0], [8, 0], [8, 8]], seed=1.5)]), RegionError, "regions[0].seed: must be int or null"),
        (doc([poly("a", [[0, 0], [8, 0], [8, 8]], prompt=3)]), RegionError, "regions[0].prompt: must be str"),
        (doc([poly("a", [[0, 0], [8, 0], [8, 8]], colour="red")]), RegionError, "regions[0]: unknown field(s) ['colour']"),
        (doc([{"id": "a", "shape": "circle", "points": [[0, 0], [1, 1]]}]), RegionError, "regions[0].shape: unknown shape 'circle'"),
        (
            doc([{"id": "a", "shape": "rect", "points": [[0, 0], [5, 5], [9, 9]]}]),
            RegionGeometryError,
            "a rect needs exactly 2 corner points",
        ),
        (doc([poly("a", [[0, 0], [8, 0], [8, 8]], strength=-1)]), RegionError, "regions[0].strength: must be >= 0"),
        (doc([poly("a", [[0, 0], [8, 0], [8, 8]], cfg="high")]), RegionError, "regions[0].cfg: must be int or float or null, got str"),
        (
            doc([poly("a", [[0, 0], [8, 0], [8, 8]], cfg=101)]),
            RegionError,
            "regions[0].cfg: must be null or a number from 0 to 100, got 101",
        ),
        (
            doc([poly("a", [[0, 0], [8, 0], [8, 8]], denoise=1.5)]),
            RegionError,
            "regions[0].denoise: must be null or a number from 0 to 1, got 1.5",
        ),
        (
            doc([poly("a", [[0, 0], [8, 0], [8, 8]], denoise=True)]),
            RegionError,
            "regions[0].denoise: must be int or float or null, got bool",
        ),
        (json.dumps({"version": 1, "width": "1024", "height": 64}), CanvasSizeError, "width: must be an integer"),
        ("{not json", CanvasError, "not valid JSON"),
        (doc([poly("a", [[0, 0], [8, 0], [8, 8]])], extra=1), CanvasError, "unknown field(s) ['extra']"),
        (json.dumps({"version": 1, "width": 64, "height": 64, "regions": {}}), CanvasError, "regions: must be a list"),
    ],
)
def test_validation_errors_name_the_field(text, error, needle):
    with pytest.raises(error) as info:
        Canvas.from_json(text)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)  # every core error is also a ValueError


def test_points_outside_canvas_are_clipped_with_a_warning():
    with pytest.warns(RegionClippedWarning, match=r"regions\[0\].points: 2 point\(s\) of region 'a' lie outside the 64x64 canvas"):
        c = Canvas.from_json(doc([poly("a", [[-10, -10], [100, 0], [32, 32]])], width=64, height=64))
    # cut exactly at the border (Sutherland-Hodgman), not points moved onto it: the region keeps
    # the part of the drawn triangle that lies on the canvas
    pts = np.array(c.regions[0].points)
    assert (pts >= 0).all() and (pts <= 64).all() and len(pts) == 4
    drawn = rasterize_polygon(np.array([[-10, -10], [100, 0], [32, 32]], float), 64, 64)
    assert polygon_area(pts) == pytest.approx(float(drawn.sum()), rel=2e-3)


def test_a_polygon_drawn_across_the_border_is_clipped_not_refused():
    """Moving each outside point onto the border folded most such polygons onto themselves
    (found by tests/core/test_input_properties.py); the exact cut keeps them simple and round-trips."""
    star = [
        [-40 + 70 * np.cos(a) * (1.3 if i % 2 else 0.8), 30 + 70 * np.sin(a) * (1.3 if i % 2 else 0.8)]
        for i, a in enumerate(np.linspace(0, 2 * np.pi, 24, endpoint=False))
    ]
    with pytest.warns(RegionClippedWarning):
        c = Canvas.from_json(doc([poly("a", star)], width=64, height=64))
    assert Canvas.from_json(c.to_json()).to_dict() == c.to_dict()
    assert c.masks().sum() > 100


def test_region_entirely_outside_is_zero_area_after_clipping():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegionClippedWarning)
        with pytest.raises(RegionGeometryError, match="zero area"):
            Canvas.from_json(doc([poly("a", [[100, 0], [200, 0], [150, 50]])], width=64, height=64))


def test_lookup_errors():
    c = Canvas.from_json(doc([SKY]))
    with pytest.raises(RegionNotFoundError, match="no region named 'ground' \\(regions: 'sky'\\)"):
        c.region("ground")
    with pytest.raises(RegionNotFoundError, match="no region at index 3"):
        c.region(3)
    assert c.region("sky") is c.region(0) is c.region("r1") is c.region("0")


# -- rasterisation ----------------------------------------------------------------------------


def independent_raster(points, width, height, sx=1.0, sy=1.0):
    """Binary raster by pixel-centre inclusion (scikit-image), for comparison."""
    p = np.asarray(points, float)
    rr, cc = sk_polygon(p[:, 1] * sy - 0.5, p[:, 0] * sx - 0.5, (height, width))
    m = np.zeros((height, width), np.float32)
    m[rr, cc] = 1
    return m


@pytest.mark.parametrize("size", [(1024, 1024), (1000, 744), (128, 128), (37, 29)])
def test_rasterisation_matches_independent_raster_at_any_resolution(size):
    pts = [[100, 80], [900, 150], [700, 900], [300, 700], [120, 500]]
    c = Canvas.from_json(doc([poly("a", pts)]))
    w, h = size
    ours = c.rasterize("a", w, h)
    ref = independent_raster(pts, w, h, w / 1024, h / 1024)
    # Interiors agree exactly; only edge pixels (anti-aliased) may differ.
    assert ((ours > 0.5) != (ref > 0.5)).mean() < 0.02
    assert np.all(ours[ref == 1][ours[ref == 1] < 1] > 0)
    # Anti-aliased coverage sums to the exact area, scaled.
    assert ours.sum() == pytest.approx(c.area("a") * (w / 1024) * (h / 1024), rel=0.01)
    assert 0.0 <= ours.min() and ours.max() <= 1.0
    edge = (ours > 0) & (ours < 1)
    assert edge.any(), "edges are anti-aliased"


def test_feather_softens_edges_and_keeps_mass():
    c = Canvas.from_json(doc([{"id": "a", "shape": "rect", "points": [[256, 256], [768, 768]], "feather": 32}]))
    hard = c.rasterize("a", feather=0)
    soft = c.rasterize("a")
    assert np.isin(hard, [0, 1]).all()
    assert ((soft > 0.01) & (soft < 0.99)).sum() > 1000
    assert soft[512, 512] == pytest.approx(1.0)
    assert soft.sum() == pytest.approx(hard.sum(), rel=0.01)


def test_z_order_later_region_wins_and_masks_never_exceed_one():
    a = {"id": "a", "shape": "rect", "points": [[0, 0], [600, 600]]}
    b = {"id": "b", "shape": "rect", "points": [[400, 400], [1024, 1024]]}
    c = Canvas.from_json(doc([a, b]))
    m = c.masks(256, 256)
    assert m.shape == (2, 256, 256)
    assert m[0, 120, 120] == 0.0 and m[1, 120, 120] == 1.0  # overlap -> top region b
    assert m.sum(0).max() <= 1.0 + 1e-6
    assert c.overlap("a", "b") == pytest.approx(200 * 200)
    assert c.topmost_at(500, 500).id == "b" and c.topmost_at(100, 100).id == "a" and c.topmost_at(1000, 10) is None
    swapped = c.move("b", 0)
    assert [r.id for r in swapped.regions] == ["b", "a"]
    assert swapped.masks(256, 256)[1, 120, 120] == 1.0


def test_scaled_canvas_rescales_points():
    c = Canvas.from_json(doc([SKY])).scaled(512, 256)
    assert c.regions[0].points[2] == (512.0, 95.0)
    assert c.width == 512 and c.height == 256


def test_mask_regions_and_queries():
    m = np.zeros((64, 64), np.float32)
    m[10:20, 30:50] = 1
    c = Canvas(64, 64, [mask_region("m", m, prompt="x")])
    assert c.area("m") == 200
    assert c.bbox("m") == (30, 10, 50, 20)
    assert c.centre("m") == (40, 15)
    assert c.rasterize("m", 32, 32).sum() == pytest.approx(50)
    with pytest.raises(RegionError, match="cannot be written to Region JSON"):
        c.to_json()


def test_python_api_enforces_limits():
    r = Region(id="a", shape="rect", points=((0, 0), (8, 8)))
    with pytest.raises(DuplicateRegionError):
        Canvas(64, 64, [r, r])
    with pytest.raises(CanvasSizeError):
        Canvas(60, 64)


def test_core_imports_without_comfyui():
    """Every module of pakati_core imports with no ComfyUI module loaded (walked, not listed).

    ``pkgutil.walk_packages`` finds the regular packages; a folder without ``__init__.py`` (a
    namespace package) is not walked by it, so modules are also derived from the files and the
    two lists must cover every file."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    files = sorted(
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__") for p in (root / "pakati_core").rglob("*.py")
    )
    code = (
        "import importlib, json, pkgutil, sys, pakati_core\n"
        "walked = [m.name for m in pkgutil.walk_packages(pakati_core.__path__, 'pakati_core.')]\n"
        f"names = sorted(set(walked) | set({files!r}))\n"
        "for n in names: importlib.import_module(n)\n"
        "bad = [m for m in sys.modules if m == 'comfy' or m.startswith(('comfy.', 'comfy_api', 'nodes', 'folder_paths'))]\n"
        "assert not bad, bad\n"
        "print(json.dumps({'walked': walked, 'imported': [n for n in names if n in sys.modules]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result["imported"]) == set(files), "every module of pakati_core was imported"
    assert len(result["walked"]) >= 30, "walk_packages found the subpackages"


def test_a_repeated_point_is_not_a_self_intersection():
    """A double click repeats a point; the edges either side of it touch there, which is no crossing."""
    c = Canvas.from_json(doc([poly("a", [[0, 0], [40, 0], [40, 0], [40, 40], [0, 40]])], width=64, height=64))
    assert c.regions[0].points == ((0.0, 0.0), (40.0, 0.0), (40.0, 40.0), (0.0, 40.0))
    assert Canvas.from_json(c.to_json()).to_dict() == c.to_dict()
