"""Classical reconstructions on the same views: the bar a model must clear, and the honesty ladder.

Spatial masks: OpenCV Telea and scikit-image biharmonic inpainting. Frequency bands: unsharp
masking and Richardson-Lucy deconvolution with the known Gaussian blur. Below both: a flat
fill with the visible mean colour, and seeded uniform noise.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.restoration import inpaint_biharmonic, richardson_lucy

from .masking import MaskedView


def telea(view: MaskedView, radius: int = 3) -> np.ndarray:
    img = (np.clip(view.view, 0, 1) * 255).round().astype(np.uint8)
    out = cv2.inpaint(img, view.hidden.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    return out.astype(np.float32) / 255.0


def biharmonic(view: MaskedView) -> np.ndarray:
    return inpaint_biharmonic(view.view, view.hidden, channel_axis=-1).astype(np.float32)


def unsharp(view: MaskedView) -> np.ndarray:
    from .masking import low_pass

    blurred_again = low_pass(view.view, view.sigma)
    return np.clip(view.view + 1.5 * (view.view - blurred_again), 0, 1).astype(np.float32)


def _gaussian_psf(sigma: float) -> np.ndarray:
    r = int(np.ceil(3 * sigma))
    x = np.arange(-r, r + 1)
    g = np.exp(-(x**2) / (2 * sigma**2))
    psf = np.outer(g, g)
    return psf / psf.sum()


def deconvolve(view: MaskedView, iterations: int = 20) -> np.ndarray:
    psf = _gaussian_psf(view.sigma)
    chans = [richardson_lucy(view.view[..., c].astype(np.float64), psf, num_iter=iterations, clip=True) for c in range(3)]
    return np.stack(chans, -1).astype(np.float32)


def flat_fill(view: MaskedView) -> np.ndarray:
    """Hidden pixels (the whole image for a frequency band) set to the mean colour of what is shown."""
    shown = ~view.hidden
    mean = view.view[shown].mean(axis=0) if shown.any() else view.view.reshape(-1, 3).mean(axis=0)
    return np.where(view.hidden[..., None], mean.astype(np.float32), view.view).astype(np.float32)


def noise(view: MaskedView, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(view.hidden[..., None], rng.random(view.view.shape, dtype=np.float32), view.view)


def classical(view: MaskedView) -> dict[str, np.ndarray]:
    """The two classical reconstructions that a model's reconstruction must beat."""
    if view.kind == "img2img":
        return {"unsharp": unsharp(view), "richardson_lucy": deconvolve(view)}
    return {"telea": telea(view), "biharmonic": biharmonic(view)}
