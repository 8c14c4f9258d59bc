"""Region LoRA: a LoRA's change applied only through a region's mask, inside the one UNet pass.

For a layer the LoRA touches, the output becomes ``base(x) + m ⊙ Δ(x)`` at that layer's token
grid (``m`` is the region's mask pooled by area to the grid read from the activation's shape):
linear layers on ``[B, tokens, C]`` compute ``Δ`` only at the positions the mask covers (the
low-rank ``scale · (x Aᵀ) Bᵀ`` on the gathered rows, never a merged full weight); convolutions
on feature maps compute the low-rank ``Δ`` on the map and multiply it by the mask. Where a LoRA
changes cross-attention keys/values (which act on text tokens, not positions), the attention
with the LoRA'd keys/values replaces the plain one, blended in by the mask, only at the
covered positions: ``out += m ⊙ (attn(q, K + ΔK, V + ΔV) − attn(q, K, V))``.

Pure torch: the ComfyUI adapter (key mapping, hooks, attention replace) is
``nodes/region_lora_patch.py``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import RegionalConditioningError
from .gather import sdpa


@dataclass(frozen=True, eq=False)
class LayerDelta:
    """The change one LoRA makes to one layer's output, as a function of the layer's input.

    Low rank (``up [out, r]``, ``down [r, in]`` or a conv ``down [r, in, kh, kw]``) with
    ``scale = strength · alpha / rank``, or dense (``weight`` / ``bias`` differences, for the
    LyCORIS forms, DoRA and plain diffs, computed once by the host). ``conv`` holds the base
    convolution's (stride, padding, dilation) for convolution layers, None for linear ones.
    """

    up: torch.Tensor | None = None
    down: torch.Tensor | None = None
    scale: float = 1.0
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    conv: tuple | None = None
    _cast: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if (self.up is None) != (self.down is None):
            raise RegionalConditioningError("a low-rank delta needs both up and down matrices", field="lora")
        if self.up is None and self.weight is None and self.bias is None:
            raise RegionalConditioningError("a layer delta changes nothing", field="lora")

    @property
    def low_rank(self) -> bool:
        return self.up is not None

    def _get(self, name: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
        t = getattr(self, name)
        if t is None:
            return None
        key = (name, str(device), dtype)
        cached = self._cast.get(key)
        if cached is None:
            cached = self._cast[key] = t.to(device=device, dtype=dtype)
        return cached

    @property
    def linear_low_rank(self) -> bool:
        return self.up is not None and self.conv is None

    def factors(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """A low-rank linear change as ``(down [in, r], scale · up [r, out])``: ``Δ(x) = (x @ down) @ up``
        (contiguous, cast once per device and dtype, the scale folded into the up matrix)."""
        key = ("factors", str(device), dtype)
        cached = self._cast.get(key)
        if cached is None:
            down, up = self.down.reshape(self.down.shape[0], -1), self.up.reshape(self.up.shape[0], -1)
            up = up * self.scale if self.scale != 1.0 else up
            cached = self._cast[key] = (
                down.t().to(device=device, dtype=dtype).contiguous(),
                up.t().to(device=device, dtype=dtype).contiguous(),
            )
        return cached

    def __call__(self, x: torch.Tensor, out_hw: tuple[int, int] | None = None) -> torch.Tensor:
        """``Δ(x)``: ``x`` is ``[..., in]`` for a linear layer, ``[B, in, H, W]`` for a convolution
        (``out_hw``: the base convolution's output size, needed when only its bias changes)."""
        dev, dt = x.device, x.dtype
        if self.conv is None:
            if self.low_rank:
                down, up = self._get("down", dev, dt), self._get("up", dev, dt)
                out = (x @ down.reshape(down.shape[0], -1).t()) @ up.reshape(up.shape[0], -1).t()
                return out * self.scale if self.scale != 1.0 else out
            w, b = self._get("weight", dev, dt), self._get("bias", dev, dt)
            if w is None:
                return b.expand(*x.shape[:-1], b.shape[0])
            return F.linear(x, w.reshape(w.shape[0], -1), b)
        stride, padding, dilation = self.conv
        if self.low_rank:
            down, up = self._get("down", dev, dt), self._get("up", dev, dt)
            if down.ndim == 2:
                down = down[:, :, None, None]
            h = F.conv2d(x, down, None, stride, padding, dilation)
            out = F.conv2d(h, up.reshape(up.shape[0], -1, 1, 1))
            return out * self.scale if self.scale != 1.0 else out
        w, b = self._get("weight", dev, dt), self._get("bias", dev, dt)
        if w is None:
            return b.view(1, -1, 1, 1).expand(x.shape[0], b.shape[0], *out_hw)
        return F.conv2d(x, w, b, stride, padding, dilation)


@dataclass(frozen=True)
class Positions:
    """Where a mask is non-zero at one grid: ``index`` (None = every position) and ``weight [P, 1]``."""

    index: torch.Tensor | None
    weight: torch.Tensor
    count: int
    full_weight: torch.Tensor  # [1, 1, H, W] for feature maps
    hard: bool  # every covered weight is exactly 1
    _rows: dict = field(default_factory=dict, repr=False, compare=False)

    def rows(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index, weight)`` of the covered rows of a ``[batch · H·W, C]`` view of a ``[batch, H·W, C]``
        activation (``index`` must not be None), built once per batch size."""
        cached = self._rows.get(batch)
        if cached is None:
            n = self.full_weight.shape[-2] * self.full_weight.shape[-1]
            index = torch.cat([self.index + i * n for i in range(batch)]) if batch > 1 else self.index
            cached = self._rows[batch] = (index, self.weight.repeat(batch, 1) if batch > 1 else self.weight)
        return cached


class RegionMask:
    """A region's coverage (any resolution, values in [0, 1]) pooled by area to each layer's grid."""

    def __init__(self, mask: np.ndarray, name: str = "region"):
        m = np.asarray(mask, dtype=np.float32)
        if m.ndim != 2 or m.size == 0:
            raise RegionalConditioningError(f"the mask of {name} must be one 2-D mask, got shape {tuple(m.shape)}", field="mask")
        if not np.isfinite(m).all():
            raise RegionalConditioningError(f"the mask of {name} has NaN/infinite values", field="mask")
        self.mask = np.clip(m, 0.0, 1.0)
        self.name = name
        self.empty = not bool((self.mask > 0).any())
        # equal masks have equal positions at every grid: region LoRAs on one region share their gathers
        self.key = (self.mask.shape, hashlib.blake2b(self.mask.tobytes(), digest_size=16).hexdigest())
        self._grid: dict[tuple, torch.Tensor] = {}
        self._pos: dict[tuple, Positions] = {}

    @property
    def size(self) -> tuple[int, int]:
        return int(self.mask.shape[1]), int(self.mask.shape[0])

    def grid(self, gh: int, gw: int) -> torch.Tensor:
        """``[gh, gw]`` area coverage."""
        key = (gh, gw)
        g = self._grid.get(key)
        if g is None:
            t = torch.from_numpy(self.mask)[None, None]
            g = self._grid[key] = F.adaptive_avg_pool2d(t, (gh, gw))[0, 0].clamp_(0.0, 1.0)
        return g

    def positions(self, gh: int, gw: int, device: torch.device, dtype: torch.dtype) -> Positions:
        key = (gh, gw, str(device), dtype)
        p = self._pos.get(key)
        if p is None:
            g = self.grid(gh, gw)
            flat = g.reshape(-1)
            idx = torch.nonzero(flat > 0).flatten()
            index = None if idx.numel() == flat.numel() else idx.to(device)
            p = self._pos[key] = Positions(
                index=index,
                weight=flat[idx][:, None].to(device=device, dtype=dtype),
                count=int(idx.numel()),
                full_weight=g[None, None].to(device=device, dtype=dtype),
                hard=bool((flat[idx] == 1.0).all()),
            )
        return p


def token_grid(latent_hw: tuple[int, int], tokens: int) -> tuple[int, int]:
    """The (h, w) grid of a ``[B, tokens, C]`` activation (UNet downsampling rounds up)."""
    from .attention import grid_shape

    return grid_shape(latent_hw, tokens)


def add_masked(
    output: torch.Tensor,
    x: torch.Tensor,
    items: list[tuple[LayerDelta, RegionMask]],
    latent_hw: tuple[int, int],
    cache: dict | None = None,
) -> torch.Tensor:
    """``output + Σ m ⊙ Δ(x)`` for one layer; ``output`` is written in place unless autograd tracks it.

    ``x``/``output`` are ``[B, tokens, C]`` (token grid from ``latent_hw``) or ``[B, C, H, W]``.
    Inputs of any other shape (embeddings, which have no positions) are returned unchanged.
    ``cache`` (one dict per layer, kept by the caller across calls) holds the stacked factors of
    several low-rank changes bound to one mask.

    Low-rank linear changes (plain LoRAs) take the fast path: the changes bound to equal masks are
    stacked into one ``[in, Σr]`` down and one ``[Σr, out]`` up matrix (the scale folded in), the
    covered rows of the batch-flattened activation are gathered once, the mask weights multiply
    the rank-``Σr`` activations (not the ``out``-wide change), and the change is accumulated in
    place (``addmm_`` where the mask covers every position, one ``index_add_`` of rows otherwise).
    Positions outside the mask are never written.
    """
    track = output.requires_grad
    if x.ndim == 3 and output.ndim == 3:
        grid = token_grid(latent_hw, x.shape[1])
        rest = items
        if not track and x.dtype == output.dtype and output.is_contiguous():
            groups: dict[tuple, tuple[RegionMask, list[LayerDelta]]] = {}
            rest = []
            for delta, mask in items:
                if delta.linear_low_rank:
                    groups.setdefault(mask.key, (mask, []))[1].append(delta)
                else:
                    rest.append((delta, mask))
            for mask, deltas in groups.values():
                _add_low_rank(output, x, mask.positions(*grid, x.device, output.dtype), deltas, cache)
        for delta, mask in rest:
            p = mask.positions(*grid, x.device, output.dtype)
            if p.count == 0:
                continue
            if p.index is None:
                d = delta(x).to(output.dtype)
                d = d if p.hard else d * p.weight
                output = output + d if track else output.add_(d)
            else:
                d = delta(x.index_select(1, p.index)).to(output.dtype)
                d = d if p.hard else d * p.weight
                output = output.index_add(1, p.index, d) if track else output.index_add_(1, p.index, d)
        return output
    if x.ndim == 4 and output.ndim == 4:
        for delta, mask in items:
            p = mask.positions(output.shape[2], output.shape[3], x.device, output.dtype)
            if p.count == 0:
                continue
            d = delta(x, tuple(output.shape[2:])).to(output.dtype)
            d = d if (p.hard and p.index is None) else d * p.full_weight
            output = output + d if track else output.add_(d)
        return output
    return output


def _add_low_rank(output: torch.Tensor, x: torch.Tensor, p: Positions, deltas: list[LayerDelta], cache: dict | None) -> None:
    """``output += m ⊙ Σ (x @ downᵢ) @ upᵢ`` in place, for low-rank linear changes bound to one mask."""
    if p.count == 0:
        return
    if len(deltas) == 1:
        down, up = deltas[0].factors(x.device, x.dtype)
    else:
        key = (tuple(id(d) for d in deltas), str(x.device), x.dtype)
        stacked = cache.get(key) if cache is not None else None
        if stacked is None:
            parts = [d.factors(x.device, x.dtype) for d in deltas]
            stacked = (torch.cat([a for a, _ in parts], 1), torch.cat([b for _, b in parts], 0))
            if cache is not None:
                cache[key] = stacked
        down, up = stacked
    b, n, c = x.shape
    rows = x.reshape(b * n, c)
    out = output.view(b * n, output.shape[-1])
    if p.index is None:
        h = torch.mm(rows, down)
        if not p.hard:
            h.view(b, n, -1).mul_(p.weight)
        out.addmm_(h, up)
        return
    index, weight = p.rows(b)
    h = torch.mm(rows.index_select(0, index), down)
    if not p.hard:
        h.mul_(weight)
    out.index_add_(0, index, torch.mm(h, up))


def kv_differences(
    plain: torch.Tensor | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    heads: int,
    items: list[tuple[LayerDelta | None, LayerDelta | None, RegionMask]],
    context: torch.Tensor,
    grid: tuple[int, int],
) -> list[tuple[Positions, torch.Tensor]]:
    """Each mask's ``(positions, m ⊙ (attn(q, K + ΔK, V + ΔV) − attn(q, K, V)))`` at the positions it covers.

    ``context`` is the text the layer's ``K = to_k(context)``, ``V = to_v(context)`` were projected
    from (``[B or 1, T, C]``). ``plain``: ``attn(q, K, V)`` already computed (``[B, Q, heads·d]``), read at the covered positions
    instead of computing it again; None computes it there. Nothing is written, so an outer attention
    can take the differences from the plain attention, blend its own terms, then add them
    (``add_kv_differences``).
    """
    ctx = context.to(device=k.device, dtype=k.dtype)
    if ctx.shape[0] != k.shape[0]:
        ctx = ctx.expand(k.shape[0], -1, -1)
    dtype = plain.dtype if plain is not None else q.dtype
    out = []
    for dk, dv, mask in items:
        p = mask.positions(*grid, q.device, dtype)
        if p.count == 0:
            continue
        qc = q if p.index is None else q.index_select(1, p.index)
        if plain is None:
            base = sdpa(qc, k, v, heads)
        else:
            base = plain if p.index is None else plain.index_select(1, p.index)
        k2 = k + dk(ctx).to(k.dtype) if dk is not None else k
        v2 = v + dv(ctx).to(v.dtype) if dv is not None else v
        d = sdpa(qc, k2, v2, heads).to(dtype) - base.to(dtype)
        out.append((p, d if p.hard else d * p.weight if d.requires_grad else d.mul_(p.weight)))
    return out


def add_kv_differences(out: torch.Tensor, differences: list[tuple[Positions, torch.Tensor]]) -> torch.Tensor:
    """``out`` plus the differences of ``kv_differences`` (in place unless autograd tracks ``out``)."""
    track = out.requires_grad
    for p, d in differences:
        d = d.to(out.dtype)
        if p.index is None:
            out = out + d if track else out.add_(d)
        else:
            out = out.index_add(1, p.index, d) if track else out.index_add_(1, p.index, d)
    return out


def apply_to_tokens(
    k: torch.Tensor,
    v: torch.Tensor,
    extra: torch.Tensor,
    spans: list[tuple[int, int]],
    deltas: list[tuple[LayerDelta | None, LayerDelta | None]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Region tokens' K/V with the LoRA'd projections of the token ranges ``spans`` (one delta pair per span)."""
    k, v = k.clone(), v.clone()
    for (a, e), (dk, dv) in zip(spans, deltas):
        if dk is not None:
            k[:, a:e] += dk(extra[:, a:e]).to(k.dtype)
        if dv is not None:
            v[:, a:e] += dv(extra[:, a:e]).to(v.dtype)
    return k, v
