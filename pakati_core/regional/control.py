"""A region's mask on a ControlNet's residuals (plain torch; no host imports).

A ControlNet hands the UNet a dict of residual lists (``{"input": [...], "middle": [...],
"output": [...]}``, tensors ``[B, C, h, w]``, ``None`` where a level gets nothing). To make
the control act inside one region only, every residual is multiplied by the region's
coverage resized to that residual's own grid (odd sizes included): a canvas region is
rasterised at that grid with its feather scaled to it, a mask array is resampled by area, so
a feathered edge stays soft at every level. Where the coverage is zero at a grid the residual
becomes ``None`` (the UNet adds nothing there), so an empty region leaves the model's
arithmetic exactly as without the ControlNet.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from ..canvas import Canvas, same_aspect
from ..errors import RegionalConditioningError
from ..masks import exclusive_masks, resize_mask

Residuals = dict[str, list]


class ControlMask:
    """A region's coverage for ControlNet residuals, from a canvas region or a mask array.

    Immutable once built; the per-grid masks are cached (they depend on the grid only).
    """

    def __init__(
        self,
        *,
        canvas: Canvas | None = None,
        index: int = -1,
        mask: np.ndarray | None = None,
        name: str = "region",
        exclusive: bool = False,
    ):
        """``exclusive``: a canvas region less the regions stacked above it (what the regional attention gives it)."""
        if (canvas is None) == (mask is None):
            raise RegionalConditioningError("give a canvas region or a mask, not both and not neither", field="mask")
        self.canvas, self.index, self.name, self.exclusive = canvas, index, name, bool(exclusive) and canvas is not None
        self.mask = None
        if mask is not None:
            m = np.asarray(mask, dtype=np.float32)
            if m.ndim != 2 or min(m.shape) < 1:
                raise RegionalConditioningError(f"expected one 2-D mask, got shape {tuple(m.shape)}", field="mask")
            if not np.isfinite(m).all():
                raise RegionalConditioningError("the mask contains NaN or infinite values", field="mask")
            self.mask = np.clip(m, 0.0, 1.0)
            self.mask.setflags(write=False)
        elif not 0 <= index < len(canvas.regions):
            raise RegionalConditioningError(f"no region at index {index}; the canvas has {len(canvas.regions)}", field="region")
        self._grids: dict[tuple[int, int], np.ndarray] = {}
        self._tensors: dict[tuple, torch.Tensor | None] = {}
        self._lock = threading.Lock()

    def source_size(self) -> tuple[int, int]:
        if self.canvas is not None:
            return self.canvas.width, self.canvas.height
        return int(self.mask.shape[1]), int(self.mask.shape[0])

    def check_aspect(self, width: int, height: int) -> None:
        """Refuse a layout whose aspect ratio differs from the latent's (it would be stretched)."""
        sw, sh = self.source_size()
        if not same_aspect(sw, sh, width, height):
            kind = "canvas" if self.canvas is not None else "mask"
            raise RegionalConditioningError(
                f"'{self.name}' is defined on a {sw}x{sh} {kind} (aspect {sw / sh:.3f}) but the ControlNet's latent grid is "
                f"{width}x{height} (aspect {width / height:.3f}); use a {kind} with the image's aspect ratio",
                field="mask" if self.canvas is None else "canvas",
            )

    def at(self, height: int, width: int) -> np.ndarray:
        """The coverage at ``height x width`` (values in [0, 1])."""
        key = (int(height), int(width))
        with self._lock:
            m = self._grids.get(key)
            if m is None:
                if self.canvas is not None and self.exclusive:
                    own = [self.canvas.rasterize(j, key[1], key[0]) for j in range(self.index, len(self.canvas.regions))]
                    m = exclusive_masks(np.stack(own))[0]
                elif self.canvas is not None:
                    m = self.canvas.rasterize(self.index, key[1], key[0])
                else:
                    m = resize_mask(self.mask, key[1], key[0])
                m = np.ascontiguousarray(np.clip(m, 0.0, 1.0), dtype=np.float32)
                m.setflags(write=False)
                self._grids[key] = m
            return m

    def is_empty(self) -> bool:
        """True when the region covers nothing (at its own resolution)."""
        if self.mask is not None:
            return not bool((self.mask > 0).any())
        sw, sh = self.source_size()
        return not bool((self.at(sh, sw) > 0).any())

    def tensor(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
        """``[1, 1, h, w]`` coverage on ``device``/``dtype``, or ``None`` where it is zero everywhere."""
        key = (int(height), int(width), str(device), dtype)
        with self._lock:
            if key in self._tensors:
                return self._tensors[key]
        m = self.at(height, width)
        t = None if not (m > 0).any() else torch.from_numpy(m.copy()).to(device=device, dtype=dtype)[None, None]
        with self._lock:
            self._tensors[key] = t
        return t


def mask_residuals(control: Residuals, mask: ControlMask) -> Residuals:
    """Every residual multiplied by ``mask`` resized to its own grid; ``None`` where the mask is empty there.

    Returns new lists and new tensors (ComfyUI's control merge may share tensors between levels;
    nothing here writes in place).
    """
    out: Residuals = {}
    for key, values in control.items():
        masked = []
        for x in values:
            if x is None:
                masked.append(None)
                continue
            if x.ndim != 4:
                raise RegionalConditioningError(
                    f"a ControlNet residual at '{key}' has shape {tuple(x.shape)}; region masks need [batch, channels, height, width]",
                    field="control_net",
                )
            m = mask.tensor(x.shape[-2], x.shape[-1], x.device, x.dtype)
            masked.append(None if m is None else x * m)
        out[key] = masked
    return out


def merge_residuals(mine: Residuals | None, previous: Residuals | None) -> Residuals | None:
    """Sum two residual dicts level by level, as ComfyUI chains ControlNets (``None`` adds nothing)."""
    if previous is None:
        return mine
    if mine is None:
        return previous
    out: Residuals = {}
    for key in dict.fromkeys([*mine.keys(), *previous.keys()]):
        a, b = list(mine.get(key, [])), previous.get(key, [])
        for i, p in enumerate(b):
            if i >= len(a):
                a.append(p)
            elif p is not None:
                a[i] = p if a[i] is None else p + a[i]
        out[key] = a
    return out
