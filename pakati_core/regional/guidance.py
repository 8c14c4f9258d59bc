"""Per-region CFG: a spatial guidance map inside classifier-free guidance.

``guided = uncond + cfg(x) · (cond − uncond)`` where ``cfg(x)`` is the sampler's scale outside
every region with a ``cfg`` and, inside, the regions' own scales blended by their feathered,
z-ordered (exclusive) masks: ``cfg(x) = s · (1 − Σ m_i) + Σ m_i · cfg_i``. A region at CFG 1.0
therefore gets the conditional prediction itself. Pure torch / numpy; the ComfyUI adapter
(``sampler_cfg_function``) is ``nodes/region_guidance.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import RegionalConditioningError
from ..masks import resize_mask


class GuidanceMap:
    """Region CFG scales and their exclusive masks; ``scale_map`` for any latent size and sampler scale."""

    def __init__(self, masks_at: callable, cfgs: list[float | None]):
        """``masks_at(width, height) -> [N, H, W]`` exclusive masks (z-order applied) of every region;
        ``cfgs``: each region's CFG (None = the sampler's)."""
        for c in cfgs:
            if c is not None and not (np.isfinite(c) and c >= 0):
                raise RegionalConditioningError(f"a region's cfg must be a finite number >= 0, got {c!r}", field="cfg")
        self.cfgs = list(cfgs)
        self.masks_at = masks_at
        self._maps: dict[tuple, np.ndarray] = {}

    @property
    def active(self) -> bool:
        return any(c is not None for c in self.cfgs)

    def weights(self, latent_h: int, latent_w: int) -> np.ndarray:
        """``[N, h, w]`` exclusive coverages of the regions with a cfg (others zero), at latent size, by area."""
        key = (latent_h, latent_w)
        if key not in self._maps:
            scale = min(1.0, 1024 / (8 * max(latent_h, latent_w)))
            w, h = max(1, round(latent_w * 8 * scale)), max(1, round(latent_h * 8 * scale))
            ref = self.masks_at(w, h)
            out = np.zeros((len(self.cfgs), latent_h, latent_w), np.float32)
            for i, c in enumerate(self.cfgs):
                if c is not None:
                    out[i] = resize_mask(ref[i], latent_w, latent_h)
            self._maps[key] = out
        return self._maps[key]

    def scale_map(self, cond_scale: float, latent_hw: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``[1, 1, h, w]``: the CFG scale at every latent position."""
        m = self.weights(*latent_hw)
        covered = np.clip(m.sum(0), 0.0, 1.0)
        s = np.float32(cond_scale) * (1.0 - covered)
        for i, c in enumerate(self.cfgs):
            if c is not None:
                s = s + np.float32(c) * m[i]
        return torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32))[None, None].to(device=device, dtype=dtype)


def guide(uncond: torch.Tensor, cond: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``uncond + scale · (cond − uncond)``, ``scale`` broadcast over batch and channels."""
    return uncond + (cond - uncond) * scale


def denoise_map(canvas, width: int | None = None, height: int | None = None, default: float = 1.0) -> np.ndarray:
    """``[H, W]`` per-pixel img2img denoise strength of a canvas (for DifferentialDiffusion's noise mask).

    Each region's ``denoise`` (null = 1.0; a locked region 0.0) inside its feathered, z-ordered
    (exclusive) mask, ``default`` where no region is: ``(1 − Σ m_i) · default + Σ m_i · d_i``.
    """
    if not (np.isfinite(default) and 0.0 <= default <= 1.0):
        raise RegionalConditioningError(f"must be a number from 0 to 1, got {default!r}", field="default_denoise")
    width, height = width or canvas.width, height or canvas.height
    out = np.full((height, width), np.float32(default), np.float32)
    if not canvas.regions:
        return out
    masks = canvas.masks(width, height, exclusive=True)
    covered = np.clip(masks.sum(0), 0.0, 1.0)
    out *= 1.0 - covered
    for m, r in zip(masks, canvas.regions):
        d = 0.0 if r.locked else (1.0 if r.denoise is None else r.denoise)
        out += np.float32(d) * m
    return np.clip(out, 0.0, 1.0)
