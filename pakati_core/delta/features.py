"""Mask-weighted statistics of one region view: tone, colour, palette, texture, edge energy.

Everything is weighted by the region mask and normalised by the total weight (not diluted by
the zeros outside). Filters (Laplacian, LBP, Sobel) are read only where their 3x3 support lies
inside the region; the GLCM counts only pixel pairs with both ends inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..texture import lbp_histogram
from .view import RegionView

GLCM_LEVELS = 32
GLCM_OFFSETS = [(0, 1), (1, 1), (1, 0), (1, -1), (0, 3), (3, 0)]
PALETTE_DIRECTIONS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -1, 0], [0, 1, 1], [0, 1, -1], [1, 1, 1]], np.float32)
PALETTE_DIRECTIONS /= np.linalg.norm(PALETTE_DIRECTIONS, axis=1, keepdims=True)
PALETTE_QUANTILES = np.linspace(0.02, 0.98, 25)
PALETTE_SAMPLES = 1 << 14
EPS = 1e-6


@dataclass(frozen=True)
class ToneColour:
    """Mask-weighted tone and colour of a region in CIELAB: what brightness, contrast, warmth,
    tint and saturation deltas are measured from (delta analysis and refine corrections alike)."""

    mean_lab: np.ndarray  # (3,) L*, a*, b*
    std_lab: np.ndarray  # (3,)
    mean_chroma: float  # mean C*ab = hypot(a*, b*)


@dataclass(frozen=True)
class RegionFeatures:
    tone: ToneColour
    sharpness: float  # log(std of Laplacian / std of L*)
    glcm: dict[str, float]
    lbp_hist: np.ndarray
    palette: np.ndarray  # (directions, quantiles)
    energy_centroid: tuple[float, float]  # (x, y) as fractions of the width/height
    energy_grid: np.ndarray  # 3x3 shares, sum 1
    view: RegionView

    @property
    def mean_lab(self) -> np.ndarray:
        return self.tone.mean_lab

    @property
    def std_lab(self) -> np.ndarray:
        return self.tone.std_lab

    @property
    def mean_chroma(self) -> float:
        return self.tone.mean_chroma


def weighted_mean_std(values: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation per channel of an h x w [x c] array."""
    flat = values.reshape(weight.size, -1).astype(np.float32, copy=False)
    w = weight.reshape(-1).astype(np.float32, copy=False)
    total = float(w.sum(dtype=np.float64))
    mean = (w @ flat).astype(np.float64) / total
    centred = flat - mean.astype(np.float32)
    var = (w @ (centred * centred)).astype(np.float64) / total
    std = np.sqrt(np.maximum(var, 0.0))
    return (mean, std) if values.ndim == 3 else (mean[0], std[0])


def tone_colour(lab: np.ndarray, weight: np.ndarray) -> ToneColour:
    """Tone and colour of Lab pixels (``[..., 3]``) weighted by ``weight`` (``[...]``, not all zero)."""
    flat = np.asarray(lab, np.float32).reshape(-1, 1, 3)
    w = np.asarray(weight, np.float32).reshape(-1, 1)
    mean, std = weighted_mean_std(flat, w)
    chroma = np.hypot(flat[:, 0, 1], flat[:, 0, 2])
    return ToneColour(mean, std, float((chroma * w[:, 0]).sum(dtype=np.float64) / w.sum(dtype=np.float64)))


def weighted_quantiles(values: np.ndarray, weight: np.ndarray, q: np.ndarray) -> np.ndarray:
    order = np.argsort(values)
    v, w = values[order], weight[order]
    cdf = np.cumsum(w)
    cdf = (cdf - 0.5 * w) / cdf[-1]
    return np.interp(q, cdf, v)


def _palette(view: RegionView) -> np.ndarray:
    lab = view.lab.reshape(-1, 3)
    w = view.weight.reshape(-1)
    keep = np.flatnonzero(w > 0)
    if keep.size > PALETTE_SAMPLES:
        keep = keep[:: int(np.ceil(keep.size / PALETTE_SAMPLES))]
    proj = lab[keep] @ PALETTE_DIRECTIONS.T
    return np.stack([weighted_quantiles(proj[:, k], w[keep], PALETTE_QUANTILES) for k in range(proj.shape[1])])


def _glcm(lightness: np.ndarray, inside: np.ndarray) -> dict[str, float]:
    """GLCM contrast, homogeneity, energy and correlation over in-region pixel pairs only."""
    q = np.clip((lightness / 100.0 * GLCM_LEVELS).astype(np.int32), 0, GLCM_LEVELS - 1)
    h, w = q.shape
    props = {"contrast": [], "homogeneity": [], "energy": [], "correlation": []}
    i_idx, j_idx = np.mgrid[0:GLCM_LEVELS, 0:GLCM_LEVELS].astype(np.float64)
    for dy, dx in GLCM_OFFSETS:
        ys, ye = 0, h - dy
        xs, xe = max(0, -dx), w - max(0, dx)
        a, b = q[ys:ye, xs:xe], q[ys + dy : ye + dy, xs + dx : xe + dx]
        ok = inside[ys:ye, xs:xe] & inside[ys + dy : ye + dy, xs + dx : xe + dx]
        if ok.sum() < 4:
            continue
        codes = a[ok] * GLCM_LEVELS + b[ok]
        p = np.bincount(codes, minlength=GLCM_LEVELS * GLCM_LEVELS).reshape(GLCM_LEVELS, GLCM_LEVELS).astype(np.float64)
        p = p + p.T
        p /= p.sum()
        d2 = (i_idx - j_idx) ** 2
        mi, mj = (p * i_idx).sum(), (p * j_idx).sum()
        si = np.sqrt((p * (i_idx - mi) ** 2).sum())
        sj = np.sqrt((p * (j_idx - mj) ** 2).sum())
        props["contrast"].append((p * d2).sum())
        props["homogeneity"].append((p / (1.0 + d2)).sum())
        props["energy"].append(np.sqrt((p * p).sum()))
        cov = (p * (i_idx - mi) * (j_idx - mj)).sum()
        props["correlation"].append(cov / (si * sj) if si > EPS and sj > EPS else 1.0)
    return {k: float(np.mean(v)) if v else 0.0 for k, v in props.items()}


def _energy(lightness: np.ndarray, interior: np.ndarray) -> tuple[tuple[float, float], np.ndarray]:
    gx = cv2.Sobel(lightness, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lightness, cv2.CV_32F, 0, 1, ksize=3)
    e = np.sqrt(gx * gx + gy * gy) * interior
    total = float(e.sum())
    h, w = e.shape
    if total <= EPS:
        return (0.5, 0.5), np.full((3, 3), 1 / 9)
    cx = float((e.sum(axis=0) * (np.arange(w) + 0.5)).sum() / total / w)
    cy = float((e.sum(axis=1) * (np.arange(h) + 0.5)).sum() / total / h)
    yb = np.linspace(0, h, 4).astype(int)
    xb = np.linspace(0, w, 4).astype(int)
    grid = np.array([[e[yb[i] : yb[i + 1], xb[j] : xb[j + 1]].sum() for j in range(3)] for i in range(3)]) / total
    return (cx, cy), grid


def region_features(view: RegionView) -> RegionFeatures:
    lab, weight, interior = view.lab, view.weight, view.interior
    tone = tone_colour(lab, weight)
    lightness = np.ascontiguousarray(lab[..., 0])
    lap = cv2.Laplacian(lightness, cv2.CV_32F, ksize=3)
    _, lap_std = weighted_mean_std(lap, interior)
    _, l_std = weighted_mean_std(lightness, interior)
    sharpness = float(np.log((lap_std + EPS) / (l_std + EPS)))
    inside = weight > 0
    hist = lbp_histogram(lightness, interior)
    centroid, grid = _energy(lightness, interior)
    return RegionFeatures(tone, sharpness, _glcm(lightness, inside), hist, _palette(view), centroid, grid, view)
