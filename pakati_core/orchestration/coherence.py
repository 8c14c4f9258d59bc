"""Colour coherence across regions: one shared lighting, judged by CIEDE2000 on Lab statistics.

Each region's pixels are read through the delta-analysis view (``image_view``); its mean L* and
the a*/b* cast of its near-neutral pixels describe the light falling on it. The shared light is
the area-weighted median of those; a region whose light differs by more than ``TOLERANCE``
(CIEDE2000) gets a ``refine`` task with the Lab shift that brings it in line, and
:func:`harmonise` applies those shifts to an image (inside each region's mask, feathered), so
that pasted or separately generated regions stop looking lit by different suns. Hues the goal
asks for are left alone: only lightness and the neutral cast move.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..delta.features import weighted_mean_std
from ..delta.view import image_view
from ..images import as_rgb
from ..lab import ciede2000, lab_to_rgb, rgb_to_lab
from ..masks import feather_mask
from .plan_model import Plan, Task

TOLERANCE = 6.0  # CIEDE2000 between a region's light and the shared light
NEUTRAL_CHROMA = 12.0


@dataclass
class CoherenceReport:
    score: float  # 1 = every region under the same light
    shared: tuple[float, float, float]  # (L*, a* cast, b* cast)
    regions: dict[str, dict] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "score": round(self.score, 4),
            "shared": [round(v, 2) for v in self.shared],
            "regions": self.regions,
            "tasks": [t.to_dict() for t in self.tasks],
        }


def _region_light(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    view, _ = image_view(image, mask)
    mean, _ = weighted_mean_std(view.lab, view.weight)
    chroma = np.hypot(view.lab[..., 1], view.lab[..., 2])
    neutral = view.weight * (chroma < NEUTRAL_CHROMA)
    if neutral.sum() > 0.05 * view.weight.sum():
        cast, _ = weighted_mean_std(view.lab, neutral)
        a, b = float(cast[1]), float(cast[2])
    else:
        a, b = 0.0, 0.0
    return np.array([float(mean[0]), a, b]), float(view.weight.sum())


def colour_coherence(image: np.ndarray, plan: Plan) -> CoherenceReport:
    """How evenly lit the plan's regions are in ``image``, with refine tasks for the outliers."""
    rgb = as_rgb(image, min_side=8)
    canvas = plan.canvas_obj()
    H, W = rgb.shape[:2]
    lights, weights, ids = [], [], []
    for i, r in enumerate(canvas.regions):
        if r.id == "background":
            continue
        m = canvas.rasterize(i, W, H, feather=0)
        if m.sum() < 16:
            continue
        light, w = _region_light(rgb, m)
        lights.append(light)
        weights.append(w)
        ids.append(r.id)
    if not lights:
        return CoherenceReport(1.0, (0.0, 0.0, 0.0))
    L = np.array(lights)
    shared = np.array([_weighted_median(L[:, k], np.array(weights)) for k in range(3)])
    d = ciede2000(L, np.repeat(shared[None], len(L), axis=0))
    report = CoherenceReport(float(np.clip(1.0 - np.mean(d) / (4 * TOLERANCE), 0.0, 1.0)), tuple(float(v) for v in shared))
    after = (plan.tasks[-1].id,) if plan.tasks else ()
    for rid, light, de in zip(ids, L, d):
        shift = (shared - light).round(2)
        report.regions[rid] = {
            "light_lab": [round(float(v), 2) for v in light],
            "delta_e": round(float(de), 2),
            "shift_lab": [float(v) for v in shift],
        }
        if de > TOLERANCE:
            report.tasks.append(
                Task(
                    f"coherence_{rid}",
                    "refine",
                    (rid,),
                    {"action": "match_light", "lab_shift": [float(v) for v in shift], "delta_e": round(float(de), 2), "denoise": 0.3},
                    after,
                )
            )
    return report


def harmonise(image: np.ndarray, plan: Plan, report: CoherenceReport | None = None) -> np.ndarray:
    """Apply each out-of-tolerance region's Lab shift (lightness and neutral cast) inside its feathered mask."""
    rgb = as_rgb(image, min_side=8)
    report = report or colour_coherence(rgb, plan)
    canvas = plan.canvas_obj()
    H, W = rgb.shape[:2]
    lab = rgb_to_lab(rgb).astype(np.float32)
    for t in report.tasks:
        rid = t.region_ids[0]
        m = feather_mask(canvas.rasterize(rid, W, H, feather=0), max(1.0, 0.01 * min(W, H)))[..., None]
        lab = lab + m * np.array(t.params["lab_shift"], np.float32)
    lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
    return np.clip(lab_to_rgb(lab), 0.0, 1.0).astype(np.float32)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cdf = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cdf, cdf[-1] / 2.0)])
