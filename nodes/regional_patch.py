"""Adapts ``pakati_core.regional`` to ComfyUI's model patching.

Pakati never takes an attention slot for good. A keyed ``APPLY_MODEL`` wrapper runs at each
model call, after every other node has patched the model, and for that call only puts a
``RegionalAttn2`` on each cross-attention block. The sampler's context stays the base
prompt: ComfyUI projects it as usual, and ``RegionalAttn2`` adds the region prompts from
their own K/V projections, computed once per layer and sampling run (a keyed
``OUTER_SAMPLE`` wrapper clears them at both ends of a run; ComfyUI hooks that patch
weights mid-run turn the cache off). Each region is attended only at the positions it
covers, from index tables built once per grid. Where another pack already has an attn2
replace there (IP-Adapter, for instance), ``RegionalAttn2`` calls it with the base tokens
and adds only the regional difference, so both keep working whatever order the nodes were
applied in.
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.ldm.modules.attention as comfy_attention
import torch

from ..pakati_core.regional import ProjectionCache, RegionalAttention, base_where_needed, blend, regional_delta
from .common import PakatiNodeError, checked
from .unet import attn2_blocks, call_grid, in_schedule_range, with_attn2_replaced

WRAPPER_KEY = "pakati_regional"


@dataclass(frozen=True)
class CallState:
    latent_hw: tuple[int, int]
    volatile: bool  # weights may change between calls of this run (hooks): do not cache projections
    weights: object = None  # ComfyUI's uuid of the patches merged into the weights (None: none)


def patches_weights_per_call(linear: torch.nn.Module) -> bool:
    """ComfyUI patches this layer's weight at every call (a LoRA applied on the fly in lowvram mode):
    its projections may differ between calls. Layers that are only *cast* per call (fp8/fp16
    weights computed in another dtype, weights offloaded in lowvram mode) give the same values at
    every call, so their projections are cached like any other."""
    return bool(getattr(linear, "weight_function", None) or getattr(linear, "bias_function", None))


class RegionalAttn2:
    """attn2 replace for one model call; wraps the replace that was there, if any."""

    def __init__(self, core: RegionalAttention, state: CallState, layer: torch.nn.Module, projections: ProjectionCache, inner=None):
        self.core, self.state, self.layer, self.projections, self.inner = core, state, layer, projections, inner

    def region_kv(self, device: torch.device, dtype: torch.dtype, extra_options: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's K/V of the region tokens, from the cache while the weights stay the same.
        A PakatiRegionLora bound to a region changes that region's tokens' K/V here (its identity is part of the key)."""
        layer = self.layer
        extra = self.core.extra_context(device, dtype)
        volatile = self.state.volatile or patches_weights_per_call(layer.to_k) or patches_weights_per_call(layer.to_v)
        lora = (extra_options or {}).get("pakati_region_lora")
        lora = lora.region_tokens(layer, self.core) if lora is not None else None
        if lora is None:
            return self.projections.get(
                layer,
                [layer.to_k.weight, layer.to_v.weight],
                device,
                dtype,
                lambda: (layer.to_k(extra), layer.to_v(extra)),
                volatile=volatile,
                token=self.state.weights,
            )
        key, apply = lora
        return self.projections.get(
            layer,
            [layer.to_k.weight, layer.to_v.weight],
            device,
            dtype,
            lambda: apply(layer.to_k(extra), layer.to_v(extra), extra),
            volatile=volatile,
            token=(self.state.weights, key),
        )

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        heads = extra_options["n_heads"]
        chunks = extra_options.get("cond_or_uncond") or [0]
        per = q.shape[0] // len(chunks)
        kinds = ["cond" if c == 0 else "uncond" for c in chunks]
        regional = [i for i, kind in enumerate(kinds) if kind == "cond" or self.core.regionalises_uncond]
        if not regional:
            return self.inner(q, k, v, extra_options) if self.inner is not None else self._plain(q, k, v, heads, extra_options)
        grid = self._grid(extra_options, q.shape[1])
        plans = {i: self.core.plan(kinds[i], self.state.latent_hw, grid, q.device, q.dtype) for i in regional}
        kx, vx = self.region_kv(q.device, q.dtype, extra_options)
        rows = lambda i: slice(i * per, (i + 1) * per)  # noqa: E731
        plain_based = all(plans[i].base_index is None for i in regional) and getattr(self.inner, "plain_based", False)
        if self.inner is not None and not plain_based:
            out = self.inner(q, k, v, extra_options)
            if out.requires_grad:  # a gradient pass (Attend-and-Excite): the in-place blend must not touch a saved output
                out = out.clone()
            for i in regional:
                where, delta = regional_delta(q[rows(i)], k[rows(i)], v[rows(i)], kx, vx, heads, plans[i])
                if where is None:
                    out[rows(i)] += delta.to(out.dtype)
                else:
                    out[rows(i)].index_add_(1, where, delta.to(out.dtype))
            return out
        differences = None
        if all(plans[i].base_index is None for i in regional):
            out = self._plain(q, k, v, heads, extra_options)  # the base prompt applies everywhere: ComfyUI's own attention, once
            if plain_based:  # a region LoRA's K/V differences, taken from this plain attention before the blend
                differences = self.inner.differences(out, q, k, v, extra_options)
            if out.requires_grad:  # a gradient pass (Attend-and-Excite): the in-place blend must not touch a saved output
                out = out.clone()
        else:
            out = torch.empty_like(q)
            for i in range(len(chunks)):
                r = rows(i)
                if i in plans and plans[i].base_index is not None:
                    out[r] = base_where_needed(q[r], k[r], v[r], heads, plans[i])
                else:
                    out[r] = self._plain(q[r], k[r], v[r], heads, extra_options)
        for i in regional:
            blend(out[rows(i)], q[rows(i)], kx, vx, heads, plans[i])
        return out if differences is None else self.inner.add(out, differences)

    @staticmethod
    def _plain(q, k, v, heads, extra_options):
        """Exactly ComfyUI's own cross-attention over the base tokens."""
        return comfy_attention.optimized_attention(
            q, k, v, heads, attn_precision=extra_options.get("attn_precision"), transformer_options=extra_options
        )

    def _grid(self, extra_options: dict, tokens: int) -> tuple[int, int]:
        return call_grid(extra_options, tokens, self.state.latent_hw)


class RegionalWrapper:
    """APPLY_MODEL wrapper installed by PakatiApplyRegions (immutable; shared across clones)."""

    def __init__(self, core: RegionalAttention, start_percent: float, end_percent: float):
        self.core = core
        self.start_percent, self.end_percent = start_percent, end_percent
        self.projections = ProjectionCache()
        self._blocks: dict[int, dict] = {}

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        model = executor.class_obj
        if c_crossattn is None or self.core.extra is None or not in_schedule_range(model, t, self.start_percent, self.end_percent):
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        latent_hw = checked_call(int(self.core.extra.shape[-1]), c_crossattn, x, "SDXL", self.core.reference_masks)
        patcher = getattr(model, "current_patcher", None)
        volatile = bool(patcher is not None and (getattr(patcher, "hook_patches", None) or getattr(patcher, "current_hooks", None)))
        state = CallState(latent_hw, volatile, getattr(model, "current_weight_patches_uuid", None))
        unet = model.diffusion_model
        layers = self._blocks.get(id(unet))
        if layers is None:
            layers = self._blocks[id(unet)] = dict(attn2_blocks(unet))
        options = with_attn2_replaced(
            transformer_options, layers, lambda key, inner: RegionalAttn2(self.core, state, layers[key], self.projections, inner)
        )
        return finite_prediction(executor(x, t, c_concat, c_crossattn, control, options, **kwargs), t)


class RunScope:
    """OUTER_SAMPLE wrapper: region K/V projections in accelerator memory live for one sampling
    run; in host memory they stay for the next run with the same weights (a re-queue)."""

    def __init__(self, projections: ProjectionCache):
        self.projections = projections

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, *args, **kwargs):
        try:
            return executor(*args, **kwargs)
        finally:
            self.projections.release_accelerator_memory()


def checked_call(extra_dim: int, c_crossattn: torch.Tensor, x: torch.Tensor, family: str, reference_masks) -> tuple[int, int]:
    """The latent (h, w) of an Apply Regions model call (SDXL or Flux), once the sampler's conditioning is known to have
    the region prompts' embedding size and the region masks to fit the latent's aspect (``reference_masks(h, w)``, which
    the core validates once per latent size)."""
    if c_crossattn.shape[-1] != extra_dim:
        raise PakatiNodeError(
            "PakatiApplyRegions",
            "regions",
            f"region prompts have embedding size {extra_dim} but the sampler's conditioning has "
            f"{c_crossattn.shape[-1]}: encode regions and the base prompt with the same ({family}) CLIP",
        )
    latent_hw = (int(x.shape[-2]), int(x.shape[-1]))
    checked("PakatiApplyRegions", "regions", lambda: reference_masks(*latent_hw))
    return latent_hw


def finite_prediction(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``out`` when every value is finite; else the error that names Apply Regions and the sigma (SDXL and Flux alike)."""
    if not bool(torch.isfinite(out).all()):
        raise PakatiNodeError(
            "PakatiApplyRegions",
            "model",
            f"the model's prediction with the regions applied has NaN/infinite values (sigma {float(t.flatten()[0]):.4g}): "
            "the model or a patch on it overflows (fp16 overflow, a broken checkpoint or LoRA); try --force-fp32 or another checkpoint",
        )
    return out
