"""The region canvas: regions on a width x height canvas, Region JSON v1, rasterisation.

Region JSON v1 is Pakati's one exchange format (the canvas widget stores it, workflows and
API prompts carry it, and the planner in ``pakati_core.orchestration`` writes a plan's layout in
it). Points are canvas pixels; ``rect`` regions give two corners.
Rasterisation is anti-aliased (exact pixel coverage to 1/16 px) at any target resolution,
so the same region gives a mask at canvas, latent or UNet-token-grid size.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from .errors import (
    CanvasError,
    CanvasSizeError,
    DuplicateRegionError,
    RegionClippedWarning,
    RegionError,
    RegionGeometryError,
    RegionLimitError,
    RegionNotFoundError,
    UnsupportedVersionError,
)
from .geometry import clip_polygon, find_self_intersection, mask_box, polygon_area, polygon_centroid
from .jsonutil import parse_json, strict_json
from .masks import exclusive_masks, feather_mask, rasterize_polygon, resize_mask

log = logging.getLogger("pakati")

REGION_JSON_VERSION = 1
MAX_REGIONS = 32
MAX_CANVAS_SIDE = 16384
SHAPES = ("polygon", "rect", "mask")

# Region JSON v1 fields: name -> (accepted Python types, required)
_REGION_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), True),
    "name": ((str,), False),
    "shape": ((str,), True),
    "points": ((list,), True),
    "prompt": ((str,), False),
    "negative": ((str,), False),
    "strength": ((int, float), False),
    "feather": ((int, float), False),
    "seed": ((int, type(None)), False),
    "locked": ((bool,), False),
    "cfg": ((int, float, type(None)), False),  # null / absent: the sampler's CFG
    "denoise": ((int, float, type(None)), False),  # null / absent: 1.0
}
CFG_MAX = 100.0  # ComfyUI's KSampler limit
_CANVAS_FIELDS = {"version", "width", "height", "regions"}
# How far (relative) a mask's aspect ratio may differ from the image's and still be resized onto
# it: sizes rounded to the 8-px latent grid move the aspect by up to 8 / side, 1.6 % at 512 px.
ASPECT_TOLERANCE = 0.02


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Region:
    """One region. ``points`` are canvas pixels; ``mask`` is used when ``shape == "mask"``."""

    id: str
    shape: str = "polygon"
    points: tuple[tuple[float, float], ...] = ()
    name: str = ""
    prompt: str = ""
    negative: str = ""
    strength: float = 1.0
    feather: float = 0.0
    seed: int | None = None
    locked: bool = False
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    cfg: float | None = None  # this region's CFG scale (None: the sampler's)
    denoise: float | None = None  # this region's img2img denoise strength (None: 1.0)

    @property
    def label(self) -> str:
        return self.name or self.id

    def polygon(self) -> np.ndarray:
        """Vertices as an ``(n, 2)`` float array; a rect becomes its four corners."""
        if self.shape == "rect":
            (x0, y0), (x1, y1) = self.points
            return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
        return np.asarray(self.points, dtype=np.float64).reshape(-1, 2)

    def to_dict(self) -> dict[str, Any]:
        if self.shape == "mask":
            raise RegionError(
                "mask regions come from a MASK input and cannot be written to Region JSON v1",
                field=f"region '{self.label}'.shape",
            )
        optional = {key: _compact(value) for key, value in (("cfg", self.cfg), ("denoise", self.denoise)) if value is not None}
        return {
            "id": self.id,
            "name": self.name,
            "shape": self.shape,
            "points": [[_compact(x), _compact(y)] for x, y in self.points],
            "prompt": self.prompt,
            "negative": self.negative,
            "strength": _compact(self.strength),
            "feather": _compact(self.feather),
            "seed": self.seed,
            "locked": self.locked,
            **optional,
        }


def _compact(v: float) -> float | int:
    """Integers as integers; other values exactly (rounding them could turn a valid region into a
    self-intersecting or zero-area one on the way back: found by tests/test_fuzz.py)."""
    return int(v) if float(v).is_integer() else float(v)


def same_aspect(width: int, height: int, target_width: int, target_height: int) -> bool:
    """True when ``width x height`` has the target's aspect ratio within ``ASPECT_TOLERANCE``."""
    return abs((width / height) / (target_width / target_height) - 1.0) <= ASPECT_TOLERANCE


# --------------------------------------------------------------------------- canvas


@dataclass
class Canvas:
    """A width x height canvas with regions in z-order (later regions are on top)."""

    width: int = 1024
    height: int = 1024
    regions: list[Region] = field(default_factory=list)

    def __post_init__(self) -> None:
        validate_canvas_size(self.width, self.height)
        self.regions = list(self.regions)
        if len(self.regions) > MAX_REGIONS:
            raise RegionLimitError(f"{len(self.regions)} regions; at most {MAX_REGIONS} are supported", field="regions")
        seen: set[str] = set()
        for i, r in enumerate(self.regions):
            if r.id in seen:
                raise DuplicateRegionError(f"duplicate region id '{r.id}'", field=f"regions[{i}].id")
            seen.add(r.id)

    # -- lookup and editing -------------------------------------------------------------
    def index_of(self, key: str | int) -> int:
        """Index of a region given its index, id or name."""
        if isinstance(key, int) and not isinstance(key, bool):
            if -len(self.regions) <= key < len(self.regions):
                return key % len(self.regions)
            raise RegionNotFoundError(f"no region at index {key}; the canvas has {len(self.regions)}", field="region")
        key = str(key).strip()
        for i, r in enumerate(self.regions):
            if r.id == key or r.name == key:
                return i
        if key.lstrip("-").isdigit():
            return self.index_of(int(key))
        names = ", ".join(repr(r.label) for r in self.regions) or "none"
        raise RegionNotFoundError(f"no region named '{key}' (regions: {names})", field="region")

    def region(self, key: str | int) -> Region:
        return self.regions[self.index_of(key)]

    def add(self, region: Region) -> "Canvas":
        return Canvas(self.width, self.height, [*self.regions, region])

    def move(self, key: str | int, new_index: int) -> "Canvas":
        """Change z-order: move a region to ``new_index`` (0 = bottom)."""
        regions = list(self.regions)
        r = regions.pop(self.index_of(key))
        regions.insert(max(0, min(new_index, len(regions))), r)
        return Canvas(self.width, self.height, regions)

    def scaled(self, width: int, height: int) -> "Canvas":
        """The same layout on a canvas of another size (points and feather rescaled)."""
        sx, sy = width / self.width, height / self.height
        out = []
        for r in self.regions:
            pts = tuple((x * sx, y * sy) for x, y in r.points)
            out.append(replace(r, points=pts, feather=r.feather * math.sqrt(sx * sy)))
        return Canvas(width, height, out)

    # -- rasterisation ------------------------------------------------------------------
    def rasterize(self, key: str | int, width: int | None = None, height: int | None = None, feather: float | None = None) -> np.ndarray:
        """One region's own mask (ignoring overlaps) at ``width x height`` (default: canvas size).

        ``feather`` overrides the region's own feather; both are in canvas pixels.
        """
        r = self.region(key)
        width, height = width or self.width, height or self.height
        sx, sy = width / self.width, height / self.height
        if r.shape == "mask":
            m = resize_mask(np.asarray(r.mask, dtype=np.float32), width, height)
        else:
            m = rasterize_polygon(r.polygon(), width, height, sx, sy)
        f = r.feather if feather is None else feather
        return np.clip(feather_mask(m, f * math.sqrt(sx * sy)), 0.0, 1.0)

    def masks(self, width: int | None = None, height: int | None = None, exclusive: bool = True) -> np.ndarray:
        """All region masks ``[N, H, W]``; with ``exclusive`` a region hides the ones below it.

        Exclusive masks sum to at most 1 at every pixel, which is what regional attention and
        compositing need: ``m_i * prod_{j > i} (1 - m_j)``.
        """
        width, height = width or self.width, height or self.height
        if not self.regions:
            return np.zeros((0, height, width), np.float32)
        own = np.stack([self.rasterize(i, width, height) for i in range(len(self.regions))])
        return exclusive_masks(own) if exclusive else own.astype(np.float32)

    # -- queries ------------------------------------------------------------------------
    def bbox(self, key: str | int) -> tuple[int, int, int, int]:
        """Integer bounding box ``(x0, y0, x1, y1)`` in canvas pixels, feather excluded."""
        r = self.region(key)
        if r.shape == "mask":
            box = mask_box(self.rasterize(key, feather=0))
            return (0, 0, 0, 0) if box is None else box.as_tuple()
        p = r.polygon()
        return (
            int(math.floor(p[:, 0].min())),
            int(math.floor(p[:, 1].min())),
            int(math.ceil(p[:, 0].max())),
            int(math.ceil(p[:, 1].max())),
        )

    def area(self, key: str | int) -> float:
        """Area in square canvas pixels (exact for polygons, coverage sum for masks)."""
        r = self.region(key)
        if r.shape == "mask":
            return float(self.rasterize(key, feather=0).sum())
        return polygon_area(r.polygon())

    def centre(self, key: str | int) -> tuple[float, float]:
        r = self.region(key)
        if r.shape == "mask":
            m = self.rasterize(key, feather=0)
            ys, xs = np.mgrid[0 : m.shape[0], 0 : m.shape[1]]
            total = float(m.sum()) or 1.0
            return float((m * (xs + 0.5)).sum() / total), float((m * (ys + 0.5)).sum() / total)
        return polygon_centroid(r.polygon())

    def overlap(self, a: str | int, b: str | int) -> float:
        """Area (square canvas pixels) covered by both regions, feather excluded."""
        return float((self.rasterize(a, feather=0) * self.rasterize(b, feather=0)).sum())

    def topmost_at(self, x: float, y: float) -> Region | None:
        """The region that wins at a canvas point (the last one in z-order that covers it)."""
        for i in range(len(self.regions) - 1, -1, -1):
            m = self.rasterize(i, feather=0)
            xi, yi = int(min(max(x, 0), self.width - 1)), int(min(max(y, 0), self.height - 1))
            if m[yi, xi] >= 0.5:
                return self.regions[i]
        return None

    # -- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": REGION_JSON_VERSION,
            "width": self.width,
            "height": self.height,
            "regions": [r.to_dict() for r in self.regions],
        }

    def to_json(self, indent: int | None = None) -> str:
        return strict_json(self.to_dict(), "Region JSON", indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Canvas":
        return cls.from_dict(parse_json(text, CanvasError, "regions"))

    @classmethod
    def from_dict(cls, data: Any) -> "Canvas":
        if not isinstance(data, dict):
            raise CanvasError(f"expected a JSON object, got {type(data).__name__}")
        if "version" not in data:
            raise UnsupportedVersionError('missing; Region JSON must declare "version": 1', field="version")
        version = data["version"]
        if version != REGION_JSON_VERSION or isinstance(version, bool):
            raise UnsupportedVersionError(
                f"unknown Region JSON version {version!r}; this Pakati reads version {REGION_JSON_VERSION}", field="version"
            )
        unknown = set(data) - _CANVAS_FIELDS
        if unknown:
            raise CanvasError(f"unknown field(s) {sorted(unknown)}", field="canvas")
        for key in ("width", "height"):
            if key not in data:
                raise CanvasSizeError("missing", field=key)
            if not isinstance(data[key], int) or isinstance(data[key], bool):
                raise CanvasSizeError(f"must be an integer, got {type(data[key]).__name__} {data[key]!r}", field=key)
        width, height = data["width"], data["height"]
        validate_canvas_size(width, height)
        raw = data.get("regions", [])
        if not isinstance(raw, list):
            raise CanvasError(f"must be a list, got {type(raw).__name__}", field="regions")
        if len(raw) > MAX_REGIONS:
            raise RegionLimitError(f"{len(raw)} regions; at most {MAX_REGIONS} are supported", field="regions")
        regions = [parse_region(r, i, width, height) for i, r in enumerate(raw)]
        return cls(width, height, regions)


def validate_canvas_size(width: int, height: int) -> None:
    for key, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise CanvasSizeError(f"must be an integer, got {v!r}", field=key)
        if v < 8 or v > MAX_CANVAS_SIDE:
            raise CanvasSizeError(f"{v} is outside 8..{MAX_CANVAS_SIDE}", field=key)
        if v % 8:
            raise CanvasSizeError(f"{v} is not a multiple of 8 (SDXL latents are 1/8 of the image); try {round(v / 8) * 8 or 8}", field=key)


def parse_region(data: Any, index: int, width: int, height: int) -> Region:
    """Validate one Region JSON object and return a Region (points clipped to the canvas)."""
    where = f"regions[{index}]"
    if not isinstance(data, dict):
        raise RegionError(f"expected an object, got {type(data).__name__}", field=where)
    unknown = set(data) - set(_REGION_FIELDS)
    if unknown:
        raise RegionError(f"unknown field(s) {sorted(unknown)}", field=where)
    for key, (types, required) in _REGION_FIELDS.items():
        if key not in data:
            if required:
                raise RegionError("missing", field=f"{where}.{key}")
            continue
        value = data[key]
        bad_bool = isinstance(value, bool) and bool not in types
        if not isinstance(value, types) or bad_bool:
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise RegionError(f"must be {expected}, got {type(value).__name__} {value!r}", field=f"{where}.{key}")
    if data["shape"] not in ("polygon", "rect"):
        raise RegionError(f"unknown shape {data['shape']!r}; expected 'polygon' or 'rect'", field=f"{where}.shape")
    for key in ("strength", "feather"):
        if key in data and not math.isfinite(data[key]):
            raise RegionError(f"must be finite, got {data[key]!r}", field=f"{where}.{key}")
    for key, hi in (("cfg", CFG_MAX), ("denoise", 1.0)):
        value = data.get(key)
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= hi):
            raise RegionError(f"must be null or a number from 0 to {_compact(hi)}, got {value!r}", field=f"{where}.{key}")
    if data.get("strength", 1.0) < 0:
        raise RegionError(f"must be >= 0, got {data['strength']}", field=f"{where}.strength")
    if data.get("feather", 0.0) < 0:
        raise RegionError(f"must be >= 0, got {data['feather']}", field=f"{where}.feather")
    if not data["id"].strip():
        raise RegionError("must not be empty", field=f"{where}.id")
    points = validate_points(data["points"], data["shape"], f"{where}.points", width, height, label=data.get("name") or data["id"])
    return Region(
        id=data["id"],
        name=data.get("name", ""),
        shape=data["shape"],
        points=points,
        prompt=data.get("prompt", ""),
        negative=data.get("negative", ""),
        strength=float(data.get("strength", 1.0)),
        feather=float(data.get("feather", 0.0)),
        seed=data.get("seed"),
        locked=data.get("locked", False),
        cfg=None if data.get("cfg") is None else float(data["cfg"]),
        denoise=None if data.get("denoise") is None else float(data["denoise"]),
    )


def _without_repeats(points: list[tuple[float, float]], eps: float = 1e-6) -> list[tuple[float, float]]:
    """The polygon without a point that repeats the one before it (within ``eps`` px, cyclically):
    a double click, or a clip that lands next to a vertex, would otherwise read as the edges
    either side of it touching."""
    out: list[tuple[float, float]] = []
    for p in points:
        if not out or abs(p[0] - out[-1][0]) > eps or abs(p[1] - out[-1][1]) > eps:
            out.append(p)
    while len(out) > 1 and abs(out[0][0] - out[-1][0]) <= eps and abs(out[0][1] - out[-1][1]) <= eps:
        out.pop()
    return out


def validate_points(points: Sequence, shape: str, where: str, width: int, height: int, label: str = "") -> tuple[tuple[float, float], ...]:
    """Check coordinates and geometry; clip points outside the canvas with a warning."""
    pts: list[tuple[float, float]] = []
    for i, p in enumerate(points):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise RegionGeometryError(f"point {i} must be [x, y], got {p!r}", field=where)
        if not all(_is_number(c) for c in p):
            raise RegionGeometryError(f"point {i} has a non-numeric or non-finite coordinate: {p!r}", field=where)
        pts.append((float(p[0]), float(p[1])))
    if shape == "rect":
        if len(pts) != 2:
            raise RegionGeometryError(f"a rect needs exactly 2 corner points, got {len(pts)}", field=where)
    elif len(pts) < 3:
        raise RegionGeometryError(f"a polygon needs at least 3 points, got {len(pts)}", field=where)
    outside = sum(not (0.0 <= x <= width and 0.0 <= y <= height) for x, y in pts)
    if shape == "polygon":
        pts = _without_repeats(pts)
        # The shape as drawn must be simple. Then it is cut to the canvas exactly (Sutherland-
        # Hodgman); where it leaves and re-enters, the cut runs along the border as edges of zero
        # width, which the intersection test allows. Moving points onto the border one by one
        # (as before) made most polygons drawn across the edge cross themselves.
        hit = find_self_intersection(np.asarray(pts), border=(width, height))
        if hit is not None:
            i, j = hit
            raise RegionGeometryError(
                f"region '{label}' is self-intersecting: edge {i}->{(i + 1) % len(pts)} crosses edge {j}->{(j + 1) % len(pts)}",
                field=where,
            )
        clipped = _without_repeats([(float(x), float(y)) for x, y in clip_polygon(np.asarray(pts), width, height)]) if outside else pts
    else:
        clipped = [(min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))) for x, y in pts]
    if outside:
        msg = f"{where}: {outside} point(s) of region '{label}' lie outside the {width}x{height} canvas and were clipped to its border"
        warnings.warn(msg, RegionClippedWarning, stacklevel=3)
        log.warning("Pakati: %s", msg)
    if shape == "polygon" and len(clipped) < 3:
        raise RegionGeometryError(
            f"region '{label}' has zero area (points are collinear, coincide, or lie outside the canvas)", field=where
        )
    pts = clipped
    poly = Region(id="_", shape=shape, points=tuple(pts)).polygon()
    if polygon_area(poly) < 1e-6:
        raise RegionGeometryError(
            f"region '{label}' has zero area (points are collinear, coincide, or lie outside the canvas)", field=where
        )
    return tuple(pts)


def mask_region(region_id: str, mask: np.ndarray, **fields: Any) -> Region:
    """A region defined by an external mask (e.g. a ComfyUI MASK), resampled on demand."""
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim != 2:
        raise RegionError(f"mask must be 2-D (H, W), got shape {tuple(m.shape)}", field=f"region '{region_id}'.mask")
    if not np.isfinite(m).all():
        raise RegionError("mask contains NaN or infinite values", field=f"region '{region_id}'.mask")
    return Region(id=region_id, shape="mask", mask=np.clip(m, 0.0, 1.0), **fields)
