"""Reconstruction scores on the hidden pixels only, each mapped to [0, 1] (1 = identical).

Every term is computed from the pixels alone, with no learned network weights: PSNR, masked
SSIM, masked MS-SSIM (when the hidden box is at least 161 px on its short side), a gradient
similarity after GMSD (Xue et al. 2014; GMSD itself is reported too), CIEDE2000 and a texture
distance (uniform-LBP histograms and Laplacian energy). The composite is their mean under the
fixed hand-set ``WEIGHTS`` below.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve, laplace
from skimage.color import rgb2gray

from ..errors import PakatiError
from ..geometry import mask_box
from ..images import unit_float
from ..lab import mean_ciede2000
from ..ssim import masked_ssim, ssim_maps, weighted_mean
from ..texture import chi_squared, lbp_histogram

WEIGHTS = {"psnr": 0.15, "ssim": 0.25, "ms_ssim": 0.1, "gms": 0.2, "color": 0.15, "texture": 0.15}
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIDE = 161
DELTA_E_SCALE = 20.0
TEXTURE_SCALE = 0.5  # mean dE2000 at which the colour term is 1/e


class ScoreError(PakatiError):
    """Images or masks that cannot be compared."""


def psnr_score(ref: np.ndarray, rec: np.ndarray, hidden: np.ndarray) -> float:
    """PSNR over hidden pixels, mapped by clip((PSNR - 10) / 30, 0, 1)."""
    mse = float(((ref[hidden] - rec[hidden]) ** 2).mean())
    if mse <= 1e-12:
        return 1.0
    psnr = 10 * np.log10(1.0 / mse)
    return float(np.clip((psnr - 10.0) / 30.0, 0.0, 1.0))


def ssim_score(ref: np.ndarray, rec: np.ndarray, hidden: np.ndarray) -> float:
    """Mean of the Gaussian-window SSIM map (Wang et al. settings) over hidden pixels."""
    return float(np.clip(masked_ssim(ref, rec, hidden, data_range=1.0), 0.0, 1.0))


def _half(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w]
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def ms_ssim_score(ref: np.ndarray, rec: np.ndarray, hidden: np.ndarray) -> float | None:
    """MS-SSIM on the grey hidden box, each scale's map averaged with the (pooled) mask; None if the box is small."""
    box = mask_box(hidden)
    if min(box.height, box.width) < MS_SSIM_MIN_SIDE:
        return None
    x, y = rgb2gray(ref[box.slices]), rgb2gray(rec[box.slices])
    m = hidden[box.slices].astype(np.float64)
    result = 1.0
    for i, w in enumerate(MS_SSIM_WEIGHTS):
        full, cs = ssim_maps(x, y)
        term = full if i == len(MS_SSIM_WEIGHTS) - 1 else cs
        result *= max(weighted_mean(term, m), 1e-6) ** w
        x, y, m = _half(x), _half(y), _half(m)
    return float(np.clip(result, 0.0, 1.0))


_PREWITT = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float64) / 3.0


def gradient_similarity(ref: np.ndarray, rec: np.ndarray, hidden: np.ndarray) -> tuple[float, float]:
    """(similarity, GMSD) over hidden pixels, on luminance at half resolution (Xue et al. 2014).

    GMSD is the deviation of the gradient *magnitude* similarity map. The similarity term uses
    the gradient *vectors*, (2 g_r.g_d + c) / (|g_r|^2 + |g_d|^2 + c) clipped at 0, because a
    magnitude-only map rewards any texture, noise included, over an honest flat guess.
    """
    x, y = _half(rgb2gray(ref) * 255.0), _half(rgb2gray(rec) * 255.0)
    m = _half(hidden.astype(np.float64)) > 0.5
    if not m.any():
        m = np.ones_like(x, bool)
    c = 170.0
    xr, yr = convolve(x, _PREWITT), convolve(x, _PREWITT.T)
    xd, yd = convolve(y, _PREWITT), convolve(y, _PREWITT.T)
    mr, md = np.hypot(xr, yr), np.hypot(xd, yd)
    gms = (2 * mr * md + c) / (mr**2 + md**2 + c)
    vec = np.clip((2 * (xr * xd + yr * yd) + c) / (mr**2 + md**2 + c), 0.0, 1.0)
    return float(vec[m].mean()), float(gms[m].std())


def color_score(ref: np.ndarray, rec: np.ndarray, hidden: np.ndarray) -> tuple[float, float]:
    """(score, mean CIEDE2000 over hidden pixels); score = exp(-dE / 20)."""
    de = mean_ciede2000(ref, rec, hidden)
    return float(np.exp(-de / DELTA_E_SCALE)), de


def texture_distance(ref: np.ndarray, rec: np.ndarray, hidden: np.ndarray) -> float:
    """Chi-square between uniform-LBP histograms plus |log| Laplacian-energy ratio, on hidden pixels."""
    gr, gd = (np.round(rgb2gray(a) * 255).astype(np.uint8) for a in (ref, rec))
    chi2 = chi_squared(lbp_histogram(gr, hidden), lbp_histogram(gd, hidden))
    er = float((laplace(gr.astype(float) / 255.0)[hidden] ** 2).mean())
    ed = float((laplace(gd.astype(float) / 255.0)[hidden] ** 2).mean())
    energy = abs(np.log((ed + 1e-3) / (er + 1e-3)))
    return chi2 + 0.25 * energy


def texture_score(ref: np.ndarray, rec: np.ndarray, hidden: np.ndarray) -> float:
    return float(np.exp(-texture_distance(ref, rec, hidden) / TEXTURE_SCALE))


def composite(terms: dict[str, float | None]) -> float:
    """Weighted mean of the available terms (MS-SSIM drops out when the box is too small)."""
    pairs = [(WEIGHTS[k], v) for k, v in terms.items() if k in WEIGHTS and v is not None]
    return float(sum(w * v for w, v in pairs) / sum(w for w, _ in pairs))


def score(reference: np.ndarray, reconstruction: np.ndarray, hidden: np.ndarray) -> dict[str, float | None]:
    """Every term plus ``composite``; only pixels where ``hidden`` is True count. Images are uint8 (0..255)
    or float (0..1)."""
    ref = unit_float(reference, "image", "the reference").astype(np.float64)[..., :3]
    rec = unit_float(reconstruction, "image", "the reconstruction").astype(np.float64)[..., :3]
    for name, a in (("reference", ref), ("reconstruction", rec)):
        if not np.isfinite(a).all():  # a NaN would read as a score (found by tests/test_fuzz.py)
            raise ScoreError(f"the {name} has {int(a.size - np.isfinite(a).sum())} NaN/infinite value(s)", "image")
    rec = np.clip(rec, 0.0, 1.0)
    hidden = np.asarray(hidden, bool)
    if ref.shape != rec.shape or hidden.shape != ref.shape[:2]:
        raise ScoreError(f"reference {ref.shape}, reconstruction {rec.shape} and mask {hidden.shape} differ", "image")
    if not hidden.any():
        raise ScoreError("the mask hides no pixel", "mask")
    col, de = color_score(ref, rec, hidden)
    gms_mean, gms_dev = gradient_similarity(ref, rec, hidden)
    terms: dict[str, float | None] = {
        "psnr": psnr_score(ref, rec, hidden),
        "ssim": ssim_score(ref, rec, hidden),
        "ms_ssim": ms_ssim_score(ref, rec, hidden),
        "gms": gms_mean,
        "color": col,
        "texture": texture_score(ref, rec, hidden),
    }
    terms["composite"] = composite(terms)
    terms["delta_e2000"] = de
    terms["gmsd"] = gms_dev
    return terms
