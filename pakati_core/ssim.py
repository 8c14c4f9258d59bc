"""SSIM: Pakati's one structural-similarity map (Wang et al. 2004, Gaussian window).

The formulation is scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)`` (an 11-tap Gaussian, reflect borders, K1 = 0.01, K2 = 0.03),
written out once here because MS-SSIM also needs the contrast-structure map on its own, which
scikit-image does not return. A test holds it to scikit-image's map.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

SIGMA = 1.5
TRUNCATE = 3.5  # 11-tap window at sigma 1.5
K1, K2 = 0.01, 0.03


def ssim_maps(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(SSIM map, contrast-structure map) of two same-shape 2-D arrays (float64)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    f = lambda a: gaussian_filter(a, SIGMA, truncate=TRUNCATE)  # noqa: E731
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return lum * cs, cs


def ssim_map(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """The SSIM map; ``[H, W, C]`` inputs give the mean of the per-channel maps."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 3:
        return np.mean([ssim_maps(x[..., c], y[..., c], data_range)[0] for c in range(x.shape[-1])], axis=0)
    return ssim_maps(x, y, data_range)[0]


def weighted_mean(values: np.ndarray, weight: np.ndarray) -> float:
    """Mean of ``values`` weighted by ``weight`` (a bool mask or soft weights); 0 weight gives 0."""
    w = np.asarray(weight, np.float64)
    return float((values * w).sum() / max(float(w.sum()), 1e-12))


def masked_ssim(x: np.ndarray, y: np.ndarray, weight: np.ndarray, data_range: float = 1.0) -> float:
    """SSIM averaged over the pixels of ``weight`` (bool or soft)."""
    return weighted_mean(ssim_map(x, y, data_range), weight)
