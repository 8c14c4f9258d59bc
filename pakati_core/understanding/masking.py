"""Masking strategies: seeded, deterministic views of a reference with parts hidden.

Every spatial mask is built on the latent grid (8x8-pixel cells) and hides an exact number of
cells, so the hidden area matches the level to within one latent patch. The frequency-band
strategy hides no pixels: it degrades the whole image to a low-pass band, to be restored by
img2img at a matching denoise. New strategies join through :func:`register_strategy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.ndimage import gaussian_filter

from ..errors import PakatiError
from ..finite import require_finite
from ..images import unit_float

CELL = 8  # one latent patch, in pixels
GREY = 0.5  # what hidden pixels show in the masked view


class MaskingError(PakatiError):
    """A strategy, level or image that masking cannot work with."""


@dataclass(frozen=True)
class Level:
    """One difficulty step: a label, the hidden fraction, and (frequency band) blur and denoise."""

    label: str
    hidden: float
    sigma: float = 0.0
    denoise: float = 1.0


@dataclass
class MaskedView:
    """What the reconstructor sees, and what it must bring back."""

    strategy: str
    level: int
    label: str
    kind: str  # "inpaint" or "img2img"
    hidden: np.ndarray  # bool H x W, True where pixels are scored
    view: np.ndarray  # float H x W x 3: hidden pixels grey (inpaint) or the degraded image (img2img)
    expected_hidden: float
    denoise: float = 1.0
    sigma: float = 0.0

    @property
    def hidden_fraction(self) -> float:
        return float(self.hidden.mean())


class MaskingStrategy(Protocol):
    name: str
    kind: str
    random: bool
    levels: tuple[Level, ...]

    def view(self, image: np.ndarray, level: int, seed: int) -> MaskedView: ...


def check_image(image: np.ndarray) -> np.ndarray:
    """A float H x W x 3 image in [0, 1] whose sides are multiples of 16 (an even latent grid); takes uint8 or float."""
    a = unit_float(image, "image", "the reference image")
    if a.ndim != 3 or a.shape[2] < 3:
        raise MaskingError(f"expected an H x W x 3 image, got shape {a.shape}", "image")
    h, w = a.shape[:2]
    if h % (2 * CELL) or w % (2 * CELL) or h < 4 * CELL or w < 4 * CELL:
        raise MaskingError(f"image sides must be multiples of 16 and at least 32 px, got {w}x{h}", "image")
    require_finite(a[..., :3], "the reference image", "image")
    return np.clip(a[..., :3].astype(np.float32), 0.0, 1.0)


def cells_to_pixels(cells: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(cells, CELL, axis=0), CELL, axis=1)


def take_cells(order: np.ndarray, shape: tuple[int, int], fraction: float) -> np.ndarray:
    """Hide the first round(fraction * cells) cells of ``order`` (flat indices)."""
    n = int(round(fraction * shape[0] * shape[1]))
    cells = np.zeros(shape[0] * shape[1], bool)
    cells[order[:n]] = True
    return cells.reshape(shape)


class _Spatial:
    kind = "inpaint"
    random = False
    name = ""
    levels: tuple[Level, ...] = ()

    def level(self, level: int) -> Level:
        if not 0 <= level < len(self.levels):
            raise MaskingError(f"{self.name} has levels 0..{len(self.levels) - 1}, got {level}", "levels")
        return self.levels[level]

    def order(self, grid: tuple[int, int], image: np.ndarray, seed: int, lv: Level) -> np.ndarray:
        raise MaskingError(f"{self.name} defines no cell order", "strategies")

    def view(self, image: np.ndarray, level: int, seed: int) -> MaskedView:
        img = check_image(image)
        lv = self.level(level)
        grid = (img.shape[0] // CELL, img.shape[1] // CELL)
        hidden = cells_to_pixels(take_cells(self.order(grid, img, seed, lv), grid, lv.hidden))
        view = np.where(hidden[..., None], np.float32(GREY), img)
        return MaskedView(self.name, level, lv.label, self.kind, hidden, view, lv.hidden)


def _ratio_levels(prefix: str, ratios: tuple[float, ...]) -> tuple[Level, ...]:
    return tuple(Level(f"{prefix} {int(round(r * 100))}%", r) for r in ratios)


def _radial(grid: tuple[int, int]) -> np.ndarray:
    """Per cell: normalised Chebyshev distance from the centre (aspect-aware), ties by Euclid."""
    gh, gw = grid
    y = (np.arange(gh) + 0.5) / gh - 0.5
    x = (np.arange(gw) + 0.5) / gw - 0.5
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return (np.maximum(np.abs(yy), np.abs(xx)) + 1e-3 * np.hypot(yy, xx)).ravel()


class RandomPatches(_Spatial):
    """MAE-style: square patches hidden in seeded random order; the last patch partly, for exactness."""

    name, random = "random_patches", True
    levels = _ratio_levels("hide", (0.25, 0.5, 0.75))

    def order(self, grid, image, seed, lv):
        gh, gw = grid
        p = max(1, min(gh, gw) // 8)  # patch side in cells: about 8 patches across
        rng = np.random.default_rng(seed)
        py, px = np.meshgrid(np.arange(gh) // p, np.arange(gw) // p, indexing="ij")
        patch_id = (py * (gw // p + 1) + px).ravel()
        rank = rng.permutation(patch_id.max() + 1)[patch_id]
        return np.lexsort((np.arange(gh * gw), rank))


class ProgressiveReveal(_Spatial):
    """A ladder of nested views: each easier level reveals a superset of the harder one's cells."""

    name, random = "progressive_reveal", True
    levels = tuple(Level(f"show {int(round((1 - h) * 100))}%", h) for h in (0.1, 0.3, 0.5, 0.7, 0.9))

    def order(self, grid, image, seed, lv):
        # One permutation for every level: a harder level hides a longer prefix, so views are nested.
        return np.random.default_rng(seed).permutation(grid[0] * grid[1])


class CenterOut(_Spatial):
    """Hide a centred block (aspect-aware); reconstruct the middle from its surroundings."""

    name = "center_out"
    levels = _ratio_levels("centre", (0.1, 0.25, 0.5))

    def order(self, grid, image, seed, lv):
        return np.argsort(_radial(grid), kind="stable")


class EdgeIn(_Spatial):
    """Hide the border and keep the centre: outpainting."""

    name = "edge_in"
    levels = _ratio_levels("border", (0.25, 0.5, 0.75))

    def order(self, grid, image, seed, lv):
        return np.argsort(-_radial(grid), kind="stable")


class QuadrantReveal(_Spatial):
    """Hide one, two or three quadrants, chosen by the seed."""

    name, random = "quadrant_reveal", True
    levels = _ratio_levels("quadrants", (0.25, 0.5, 0.75))

    def order(self, grid, image, seed, lv):
        gh, gw = grid
        q = (np.arange(gh)[:, None] >= gh // 2).astype(int) * 2 + (np.arange(gw)[None, :] >= gw // 2)
        rank = np.random.default_rng(seed).permutation(4)[q.ravel()]
        return np.lexsort((np.arange(gh * gw), rank))


class SemanticRegions(_Spatial):
    """Hide whole superpixels (SLIC on the reference, or given segments) in seeded order."""

    name, random = "semantic_regions", True
    levels = _ratio_levels("segments", (0.25, 0.5, 0.75))

    def __init__(self, segments: np.ndarray | None = None, n_segments: int = 24):
        self.segments, self.n_segments = segments, n_segments

    def order(self, grid, image, seed, lv):
        labels = self.segments
        if labels is None:
            from skimage.segmentation import slic

            labels = slic(image, n_segments=self.n_segments, compactness=10, start_label=0, channel_axis=-1)
        labels = np.asarray(labels)
        if labels.shape != image.shape[:2]:
            raise MaskingError(f"segments must be {image.shape[:2]}, got {labels.shape}", "segments")
        cell_label = labels[CELL // 2 :: CELL, CELL // 2 :: CELL][: grid[0], : grid[1]].ravel()
        _, dense = np.unique(cell_label, return_inverse=True)
        rank = np.random.default_rng(seed).permutation(dense.max() + 1)[dense]
        return np.lexsort((np.arange(cell_label.size), rank))


class FrequencyBands(_Spatial):
    """Keep only the low-frequency band (Gaussian low-pass); restore the rest by img2img."""

    name, kind = "frequency_bands", "img2img"
    levels = (
        Level("low-pass s=1.5", 1.0, sigma=1.5, denoise=0.35),
        Level("low-pass s=3", 1.0, sigma=3.0, denoise=0.5),
        Level("low-pass s=6", 1.0, sigma=6.0, denoise=0.65),
    )

    def view(self, image: np.ndarray, level: int, seed: int) -> MaskedView:
        img = check_image(image)
        lv = self.level(level)
        degraded = low_pass(img, lv.sigma)
        hidden = np.ones(img.shape[:2], bool)
        return MaskedView(self.name, level, lv.label, self.kind, hidden, degraded, 1.0, lv.denoise, lv.sigma)


def low_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(image, sigma=(sigma, sigma, 0), mode="reflect").astype(np.float32)


STRATEGIES: dict[str, MaskingStrategy] = {}


def register_strategy(strategy: MaskingStrategy) -> MaskingStrategy:
    """Add (or replace) a strategy under its name."""
    STRATEGIES[strategy.name] = strategy
    return strategy


for _s in (RandomPatches(), ProgressiveReveal(), CenterOut(), EdgeIn(), QuadrantReveal(), FrequencyBands(), SemanticRegions()):
    register_strategy(_s)


def get_strategy(name: str) -> MaskingStrategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise MaskingError(f"unknown strategy '{name}'; known: {', '.join(STRATEGIES)}", "strategies") from None


def parse_strategies(text: str) -> list[str]:
    """'all' or a comma-separated list of registered names, in registry order if 'all'."""
    names = [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]
    if not names or names == ["all"]:
        return list(STRATEGIES)
    for n in names:
        get_strategy(n)
    return list(dict.fromkeys(names))
