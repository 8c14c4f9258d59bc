"""The named deltas: unit, aspect, just-noticeable difference and the words for each sign.

Stored as data so that calibration and wording change in one place. ``jnd`` is the change a
viewer just notices; a delta of one JND maps to a similarity of 0.95 (``exp(-|d|/tau)`` with
``tau = jnd / -ln 0.95``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SIMILARITY_AT_JND = 0.95


@dataclass(frozen=True)
class DeltaSpec:
    name: str
    aspect: str
    unit: str
    jnd: float
    more: str  # words for a positive value ("more than the reference"); unsigned deltas: the noun
    less: str = ""  # words for a negative value; empty for unsigned deltas

    @property
    def signed(self) -> bool:
        return bool(self.less)

    @property
    def tau(self) -> float:
        return self.jnd / -math.log(SIMILARITY_AT_JND)


_SPECS = [
    DeltaSpec("brightness", "lighting", "L*", 2.0, "brighter", "darker"),
    DeltaSpec("contrast", "lighting", "log ratio of L* std", 0.05, "more contrasted", "flatter"),
    DeltaSpec("warmth", "color", "b*", 2.0, "warmer (more yellow)", "cooler (more blue)"),
    DeltaSpec("tint", "color", "a*", 2.0, "more magenta", "greener"),
    DeltaSpec("saturation", "color", "C*ab", 2.0, "more saturated", "more muted"),
    DeltaSpec("palette_distance", "color", "Lab (sliced Wasserstein)", 2.0, "palette"),
    DeltaSpec("delta_e", "color", "CIEDE2000 of means", 2.3, "mean colour"),
    DeltaSpec("sharpness", "texture", "log ratio of Laplacian/L* std", 0.1, "sharper", "softer"),
    DeltaSpec("glcm_contrast", "texture", "log ratio of GLCM contrast", 0.1, "coarser in local contrast", "smoother in local contrast"),
    DeltaSpec("glcm_homogeneity", "texture", "GLCM homogeneity", 0.01, "more uniform", "less uniform"),
    DeltaSpec("glcm_energy", "texture", "GLCM energy", 0.005, "more regular", "less regular"),
    DeltaSpec("glcm_correlation", "texture", "GLCM correlation", 0.01, "more correlated", "less correlated"),
    DeltaSpec("lbp_chi2", "texture", "chi-squared of uniform LBP histograms", 0.005, "micro-texture"),
    DeltaSpec("shift_x", "composition", "fraction of width", 0.01, "shifted right", "shifted left"),
    DeltaSpec("shift_y", "composition", "fraction of height", 0.01, "shifted down", "shifted up"),
    DeltaSpec("energy_x", "composition", "fraction of width", 0.01, "weighted further right", "weighted further left"),
    DeltaSpec("energy_y", "composition", "fraction of height", 0.01, "weighted lower", "weighted higher"),
    DeltaSpec("energy_balance", "composition", "L1 of 3x3 edge-energy shares", 0.02, "balance of edge energy"),
    DeltaSpec("ssim_loss", "composition", "1 - masked SSIM of L*", 0.02, "structure"),
]

DELTA_SPECS: dict[str, DeltaSpec] = {s.name: s for s in _SPECS}

MEASURED_ASPECTS = ("lighting", "color", "texture", "composition")
ASPECT_DELTAS: dict[str, tuple[str, ...]] = {a: tuple(s.name for s in _SPECS if s.aspect == a) for a in MEASURED_ASPECTS}
# Bundles: which measured aspects an annotated aspect is scored on.
ASPECT_BUNDLES: dict[str, tuple[str, ...]] = {
    "lighting": ("lighting",),
    "color": ("color",),
    "texture": ("texture",),
    "composition": ("composition",),
    "style": ("color", "texture", "lighting"),
    "general": MEASURED_ASPECTS,
}
