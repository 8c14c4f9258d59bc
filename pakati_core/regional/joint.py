"""Regional prompting for joint-attention transformers (Flux's double/single stream blocks).

A DiT such as Flux has no cross-attention: text and image tokens go through one attention over
their concatenation. Regions join that sequence: every region's prompt tokens (trimmed to their
real length) are appended to the base prompt's, and one additive bias over the joint sequence
decides who sees whom. Layout of the extended sequence (the model's own order, text first)::

    [ base text: real tokens | registers ][ region 1 ] ... [ region R ][ image grid ][ other image tokens ]

``registers`` are the base prompt's padding tokens (T5 pads Flux's prompt to 256 tokens and the
model was trained with them there): every text token sees them, like the model always did.

* base text queries see the base text and every image token (exactly what they see without regions);
* a region's text queries see their own tokens, the registers and the image tokens of their region;
* an image query at a position sees the base prompt's real tokens with the bias ``log w_base``,
  each region's tokens with ``log w_region`` (``-inf`` where the region does not apply: exactly zero
  attention), the registers and every image token with bias 0. The weights are the SDXL path's own
  normalised blend weights (``RegionalAttention.weights``: ``base_weight``, each region's
  ``strength``, soft masks), so a feathered edge is an additive bias, not a cut.

Where no region applies, ``w_base`` is 1: the bias is 0 and the position attends exactly as
without regions. A full-canvas region whose prompt is the base prompt gives the same
attention as no region at all (its tokens equal the base's real tokens, and
``w_base + w_region = 1`` splits each key's mass in two), which the tests check.

Blocks that do not carry the regional bias (``depth`` < 1) use the *quiet* bias: image tokens
see the base prompt alone, region tokens stay in the sequence but no image token sees them.
Pure torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import RegionalConditioningError
from .attention import RegionalAttention, RegionalOptions
from .regions import RegionSet

ROW_KINDS = ("cond", "uncond", None)  # None: a batch row that is not regionalised


@dataclass(frozen=True)
class JointGeometry:
    """One model call's sequence geometry."""

    base_tokens: int  # the sampler's text tokens (base prompt)
    latent_hw: tuple[int, int]  # latent size (h, w)
    grid_hw: tuple[int, int]  # image token grid (h, w)
    other_image: int = 0  # image tokens after the grid (reference latents, Kontext)


def masked_block_count(depth: float, total: int) -> int:
    """How many blocks, from the first, carry the regional bias for a ``depth`` fraction."""
    if not 0.0 <= depth <= 1.0 or math.isnan(depth):
        raise RegionalConditioningError(f"depth must lie in [0, 1], got {depth}", field="depth")
    return min(total, round(depth * total))


def flux_grid(latent_hw: tuple[int, int], patch: int = 2) -> tuple[int, int]:
    """Flux's image token grid: the latent padded up to the patch size, one token per patch."""
    return (latent_hw[0] + patch - 1) // patch, (latent_hw[1] + patch - 1) // patch


class JointRegionalAttention:
    """Token layout and attention biases for one ``RegionSet`` over a joint text+image sequence."""

    def __init__(self, regions: RegionSet, options: RegionalOptions | None = None, depth: float = 1.0):
        """``regions.base_real_tokens`` splits the base text into real tokens and registers (None: all real)."""
        if len(regions) == 0:
            raise RegionalConditioningError("no regions", field="regions")
        base_real_tokens = regions.base_real_tokens
        if base_real_tokens is not None and base_real_tokens < 1:
            raise RegionalConditioningError(f"base_real_tokens must be positive, got {base_real_tokens}", field="regions")
        masked_block_count(depth, 1)
        options = options or RegionalOptions()
        self.core = RegionalAttention(regions, options)
        self.regions, self.options, self.depth = regions, options, depth
        self.base_real_tokens = base_real_tokens
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def extra(self) -> torch.Tensor:
        """``[1, E, dim]``: every region's tokens (positives, then negatives), appended after the base prompt."""
        return self.core.extra

    @property
    def extra_tokens(self) -> int:
        return int(self.core.extra.shape[1])

    @property
    def regionalises_uncond(self) -> bool:
        return self.core.regionalises_uncond

    def extra_context(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return self.core.extra_context(device, dtype)

    def masked_blocks(self, total: int) -> int:
        return masked_block_count(self.depth, total)

    def real_tokens(self, base_tokens: int) -> int:
        """The base prompt's real (weighted) tokens; the rest of the base text are registers."""
        return base_tokens if self.base_real_tokens is None else min(self.base_real_tokens, base_tokens)

    def spans(self, geometry: JointGeometry) -> list[tuple[int, int]]:
        """Absolute token ranges of every region segment (positives, then negatives) in the sequence."""
        spans = [(a, e) for a, e in self.core._pos] + [(a, e) for a, e in self.core._neg]
        return [(geometry.base_tokens + a, geometry.base_tokens + e) for a, e in spans]

    def sequence_length(self, geometry: JointGeometry) -> int:
        g = geometry
        return g.base_tokens + self.extra_tokens + g.grid_hw[0] * g.grid_hw[1] + g.other_image

    def bias(self, kinds: tuple, geometry: JointGeometry, regional: bool, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``[B, L, L]`` additive attention bias (0 or ``log w`` or ``-inf``) for batch rows of ``kinds``.

        ``regional`` False gives the quiet bias (image tokens never see region tokens). Cached
        per geometry, so every block and step of a run reuses one tensor.
        """
        key = (kinds, geometry, regional, str(device), dtype)
        out = self._cache.get(key)
        if out is None:
            per_kind = {k: self._bias_one(k if regional else None, geometry) for k in set(kinds)}
            out = torch.stack([per_kind[k] for k in kinds]).to(device=device, dtype=dtype)
            if len(self._cache) > 32:
                self._cache.clear()
            self._cache[key] = out
        return out

    def _bias_one(self, kind: str | None, g: JointGeometry) -> torch.Tensor:
        if kind not in ROW_KINDS:
            raise RegionalConditioningError(f"unknown row kind {kind!r}", field="kinds")
        t, e = g.base_tokens, self.extra_tokens
        n = g.grid_hw[0] * g.grid_hw[1]
        img0, img1, length = t + e, t + e + n, self.sequence_length(g)
        real = self.real_tokens(t)
        neg_inf = float("-inf")
        b = torch.full((length, length), neg_inf, dtype=torch.float32)
        b[:t, :t] = 0.0  # base text: as without regions
        b[:t, img0:] = 0.0
        b[img0:, :t] = 0.0  # image: base text (real tokens reweighted below) and every image token
        b[img0:, img0:] = 0.0
        spans = self.spans(g)
        masks = self.core.grid_masks(*g.latent_hw, *g.grid_hw)  # [R, n] exclusive coverage
        for i, (a, z) in enumerate(spans):
            b[a:z, a:z] = 0.0  # a region's text sees its own tokens and the registers
            b[a:z, real:t] = 0.0
            region = i if i < len(self.core._pos) else self.core.neg_index[i - len(self.core._pos)]
            seen = masks[region] > 0
            b[a:z, img0:img1] = torch.where(seen, 0.0, neg_inf)[None, :]  # ... and the image tokens of its region
        if kind is None:
            return b
        w = self.core.weights(kind, g.latent_hw, g.grid_hw, torch.device("cpu"))  # [S, n], rows sum to 1
        logw = torch.log(w)  # log 0 = -inf: exactly zero attention
        b[img0:img1, :real] = logw[0][:, None]
        offset = t
        for j, (a, z) in enumerate(self.core.extra_spans(kind)):
            b[img0:img1, offset + a : offset + z] = logw[j + 1][:, None]
        return b


def real_token_count(ids: list[int], pad: int) -> int:
    """Tokens up to the last one that is not padding (at least 1): a prompt's real length."""
    for i in range(len(ids) - 1, -1, -1):
        if ids[i] != pad:
            return i + 1
    return 1
