"""Region prompts: an encoded prompt per region plus where it applies.

``RegionSet`` is what travels between nodes as ``PAKATI_REGIONS``. It is immutable: chaining
returns a new set, so ComfyUI's cache never sees a node mutate another node's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..canvas import MAX_REGIONS, Canvas, same_aspect
from ..errors import RegionalConditioningError, RegionLimitError
from ..masks import exclusive_masks, resize_mask


@dataclass(frozen=True)
class RegionPrompt:
    """One region's encoded prompt and its coverage.

    Coverage comes from a canvas region (rasterised exactly at any grid) or from a mask
    array of any resolution (resampled by area). ``negative`` is an optional per-region
    negative embedding used in the unconditional half of classifier-free guidance.
    """

    name: str
    cond: torch.Tensor  # [1, tokens, dim]
    strength: float = 1.0
    negative: torch.Tensor | None = None
    canvas: Canvas | None = field(default=None, compare=False, repr=False)
    canvas_index: int = -1
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)

    def coverage(self, width: int, height: int) -> np.ndarray:
        """This region's own (non-exclusive) coverage at ``width x height``."""
        if self.canvas is not None:
            return self.canvas.rasterize(self.canvas_index, width, height)
        return resize_mask(self.mask, width, height)

    def source_size(self) -> tuple[int, int]:
        if self.canvas is not None:
            return self.canvas.width, self.canvas.height
        return int(self.mask.shape[1]), int(self.mask.shape[0])


@dataclass(frozen=True)
class RegionSet:
    """Region prompts in z-order (later regions win where they overlap)."""

    regions: tuple[RegionPrompt, ...] = ()
    family: str = "sdxl"  # the model family the prompts were encoded for ("sdxl", "flux")
    base_real_tokens: int | None = None  # joint-attention families: the base prompt's real (unpadded) token count

    def __post_init__(self) -> None:
        if len(self.regions) > MAX_REGIONS:
            raise RegionLimitError(f"{len(self.regions)} regions; at most {MAX_REGIONS} are supported", field="regions")
        dims = {r.cond.shape[-1] for r in self.regions}
        if len(dims) > 1:
            raise RegionalConditioningError(
                f"region prompts come from different text encoders (embedding sizes {sorted(dims)})", field="conditioning"
            )

    def __len__(self) -> int:
        return len(self.regions)

    def add(self, region: RegionPrompt) -> "RegionSet":
        return RegionSet(self.regions + (region,), self.family, self.base_real_tokens)

    @property
    def embed_dim(self) -> int | None:
        return int(self.regions[0].cond.shape[-1]) if self.regions else None

    def check_aspect(self, width: int, height: int) -> None:
        """Refuse masks whose aspect ratio differs from the latent's (they would be stretched)."""
        target = width / height
        for r in self.regions:
            sw, sh = r.source_size()
            if not same_aspect(sw, sh, width, height):
                raise RegionalConditioningError(
                    f"region '{r.name}' is defined on a {sw}x{sh} {'canvas' if r.canvas is not None else 'mask'} "
                    f"(aspect {sw / sh:.3f}) but the latent is {width}x{height} pixels (aspect {target:.3f}); "
                    "use a canvas or mask with the image's aspect ratio",
                    field="mask",
                )

    def exclusive_masks(self, width: int, height: int) -> np.ndarray:
        """``[N, height, width]`` coverages where a region hides the ones below it (sum <= 1)."""
        if not self.regions:
            return np.zeros((0, height, width), np.float32)
        return exclusive_masks(np.stack([r.coverage(width, height) for r in self.regions]))
