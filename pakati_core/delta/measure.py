"""Named signed deltas between a region and a reference ('+' = more than the reference)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from skimage.registration import phase_cross_correlation

from ..lab import ciede2000
from ..ssim import masked_ssim
from ..texture import chi_squared
from .catalogue import DELTA_SPECS, DeltaSpec
from .features import EPS, RegionFeatures, ToneColour

NOISE_FLOOR = 1e-9  # float round-off: values below this are exactly zero
SAME_FRACTION = 0.25  # below a quarter of a JND a delta reads as "same"
SHIFT_SIDE = 256


@dataclass(frozen=True)
class Delta:
    name: str
    value: float

    @property
    def spec(self) -> DeltaSpec:
        return DELTA_SPECS[self.name]

    @property
    def unit(self) -> str:
        return self.spec.unit

    @property
    def aspect(self) -> str:
        return self.spec.aspect

    @property
    def magnitude(self) -> float:
        return abs(self.value)

    @property
    def similarity(self) -> float:
        return math.exp(-self.magnitude / self.spec.tau)

    @property
    def direction(self) -> str:
        if self.magnitude < SAME_FRACTION * self.spec.jnd:
            return "same"
        if not self.spec.signed:
            return "different"
        return "more" if self.value > 0 else "less"

    @property
    def sentence(self) -> str:
        s, d = self.spec, self.direction
        amount = f"{self.magnitude:.3g} {s.unit}"
        if not s.signed:
            return f"The {s.more} matches the reference." if d == "same" else f"The {s.more} differs from the reference by {amount}."
        if d == "same":
            return f"The region matches the reference ({s.name} within {amount})."
        return f"The region is {s.more if d == 'more' else s.less} than the reference by {amount}."

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "value": round(self.value, 6),
            "unit": self.unit,
            "aspect": self.aspect,
            "magnitude": round(self.magnitude, 6),
            "direction": self.direction,
            "similarity": round(self.similarity, 6),
            "sentence": self.sentence,
        }


def _log_ratio(a: float, b: float) -> float:
    return float(np.log((a + EPS) / (b + EPS)))


def _downscaled(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    s = min(1.0, side / max(h, w))
    return a if s >= 1.0 else cv2.resize(a, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)


def _shift(img: RegionFeatures, ref: RegionFeatures) -> tuple[float, float]:
    """Translation of the region's content relative to the reference, as fractions of its size."""
    li = img.view.lab[..., 0] * img.view.interior
    lr = ref.view.lab[..., 0] * img.view.interior
    li, lr = _downscaled(li - li.mean(), SHIFT_SIDE), _downscaled(lr - lr.mean(), SHIFT_SIDE)
    if float(np.abs(li).max()) < EPS or float(np.abs(lr).max()) < EPS:
        return 0.0, 0.0
    (dy, dx), _, _ = phase_cross_correlation(lr, li, upsample_factor=4, normalization="phase")
    h, w = li.shape
    return float(-dx / w), float(-dy / h)


def _ssim(img: RegionFeatures, ref: RegionFeatures) -> float:
    li, lr = img.view.lab[..., 0], ref.view.lab[..., 0]
    if min(li.shape) < 7:
        return 1.0
    return masked_ssim(li, lr, img.view.interior, data_range=100.0)


def tone_deltas(img: ToneColour, ref: ToneColour) -> dict[str, float]:
    """The five tone and colour deltas: the one definition of brightness (L*), contrast (log ratio
    of L* spread), warmth (b*), tint (a*) and saturation (C*ab), used by delta analysis and by the
    refine corrections."""
    mi, mr = img.mean_lab, ref.mean_lab
    return {
        "brightness": float(mi[0] - mr[0]),
        "contrast": _log_ratio(img.std_lab[0], ref.std_lab[0]),
        "warmth": float(mi[2] - mr[2]),
        "tint": float(mi[1] - mr[1]),
        "saturation": float(img.mean_chroma - ref.mean_chroma),
    }


def compare(img: RegionFeatures, ref: RegionFeatures) -> list[Delta]:
    """Every named delta of ``img`` against ``ref`` (both views must share one analysis size)."""
    mi, mr = img.mean_lab, ref.mean_lab
    shift_x, shift_y = _shift(img, ref)
    values = {
        **tone_deltas(img.tone, ref.tone),
        "palette_distance": float(np.abs(img.palette - ref.palette).mean()),
        "delta_e": float(ciede2000(mi[None], mr[None])[0]),
        "sharpness": img.sharpness - ref.sharpness,
        "glcm_contrast": _log_ratio(img.glcm["contrast"], ref.glcm["contrast"]),
        "glcm_homogeneity": img.glcm["homogeneity"] - ref.glcm["homogeneity"],
        "glcm_energy": img.glcm["energy"] - ref.glcm["energy"],
        "glcm_correlation": img.glcm["correlation"] - ref.glcm["correlation"],
        "lbp_chi2": chi_squared(img.lbp_hist, ref.lbp_hist),
        "shift_x": shift_x,
        "shift_y": shift_y,
        "energy_x": img.energy_centroid[0] - ref.energy_centroid[0],
        "energy_y": img.energy_centroid[1] - ref.energy_centroid[1],
        "energy_balance": float(np.abs(img.energy_grid - ref.energy_grid).sum() / 2),
        "ssim_loss": max(0.0, 1.0 - _ssim(img, ref)),
    }
    return [Delta(name, 0.0 if abs(float(v)) < NOISE_FLOOR else float(v)) for name, v in values.items()]
