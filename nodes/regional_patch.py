"""Adapts ``pakati_core.regional`` to ComfyUI's model patching.

Pakati never takes an attention slot for good. A keyed ``APPLY_MODEL`` wrapper runs at each
model call, after every other node has patched the model: it appends the region tokens to
the context and, for that call only, puts a ``RegionalAttn2`` on each cross-attention block.
Where another pack already has an attn2 replace there (IP-Adapter, for instance),
``RegionalAttn2`` calls it with the base tokens and adds only the regional difference, so
both keep working whatever order the nodes were applied in.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import comfy.ldm.modules.attention as comfy_attention

from ..pakati_core.errors import PakatiError
from ..pakati_core.regional import RegionalAttention, grid_shape, segment_blended_attention
from .common import PakatiNodeError

WRAPPER_KEY = "pakati_regional"


@dataclass(frozen=True)
class CallState:
    base_len: int
    latent_hw: tuple[int, int]


class RegionalAttn2:
    """attn2 replace for one model call; wraps the replace that was there, if any."""

    def __init__(self, core: RegionalAttention, state: CallState, inner=None):
        self.core, self.state, self.inner = core, state, inner

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        heads = extra_options["n_heads"]
        base_len = self.state.base_len
        kb, vb = k[:, :base_len], v[:, :base_len]
        chunks = extra_options.get("cond_or_uncond") or [0]
        per = q.shape[0] // len(chunks)
        kinds = ["cond" if c == 0 else "uncond" for c in chunks]
        regional_chunks = [i for i, kind in enumerate(kinds) if kind == "cond" or self.core.regionalises_uncond]
        grid = self._grid(extra_options, q.shape[1])
        if self.inner is not None:
            out = self.inner(q, kb, vb, extra_options)
        else:
            out = torch.empty_like(q)
            for i in range(len(chunks)):
                if i not in regional_chunks:  # exactly ComfyUI's own attention over the base tokens
                    rows = slice(i * per, (i + 1) * per)
                    out[rows] = comfy_attention.optimized_attention(
                        q[rows], kb[rows], vb[rows], heads, attn_precision=extra_options.get("attn_precision"), transformer_options=extra_options
                    )
        for i in regional_chunks:
            rows = slice(i * per, (i + 1) * per)
            regional = self.core.attend(q[rows], k[rows], v[rows], heads, kinds[i], base_len, self.state.latent_hw, grid)
            if self.inner is None:
                out[rows] = regional
            else:
                base = segment_blended_attention(q[rows], kb[rows], vb[rows], heads, [(0, base_len)], torch.ones(1, q.shape[1], device=q.device))
                out[rows] = out[rows] + (regional - base)
        return out

    def _grid(self, extra_options: dict, tokens: int) -> tuple[int, int]:
        shape = extra_options.get("activations_shape")
        if shape is not None and len(shape) == 4 and shape[2] * shape[3] == tokens:
            return int(shape[2]), int(shape[3])
        return grid_shape(self.state.latent_hw, tokens)


def attn2_block_keys(unet: torch.nn.Module) -> list[tuple[str, int, int]]:
    """(block, id, index) of every cross-attention transformer, as ComfyUI's UNet names them."""
    keys: list[tuple[str, int, int]] = []
    groups = [("input", list(unet.input_blocks)), ("middle", [unet.middle_block]), ("output", list(unet.output_blocks))]
    for name, blocks in groups:
        for i, block in enumerate(blocks):
            for module in block:
                tblocks = getattr(module, "transformer_blocks", None)
                if tblocks is not None:
                    keys += [(name, i, j) for j, tb in enumerate(tblocks) if getattr(tb, "attn2", None) is not None]
    return keys


class RegionalWrapper:
    """APPLY_MODEL wrapper installed by PakatiApplyRegions (immutable; shared across clones)."""

    def __init__(self, core: RegionalAttention, start_percent: float, end_percent: float):
        self.core = core
        self.start_percent, self.end_percent = start_percent, end_percent
        self._keys: dict[int, list] = {}

    def __deepcopy__(self, memo):
        return self

    def _active(self, model, sigma: torch.Tensor) -> bool:
        if self.start_percent <= 0.0 and self.end_percent >= 1.0:
            return True
        ms = model.model_sampling
        hi, lo = ms.percent_to_sigma(self.start_percent), ms.percent_to_sigma(self.end_percent)
        s = float(sigma.flatten()[0])
        return lo <= s <= hi

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        model = executor.class_obj
        if c_crossattn is None or self.core.extra is None or not self._active(model, t):
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        if c_crossattn.shape[-1] != self.core.extra.shape[-1]:
            raise PakatiNodeError(
                "PakatiApplyRegions", "regions",
                f"region prompts have embedding size {self.core.extra.shape[-1]} but the sampler's conditioning has "
                f"{c_crossattn.shape[-1]}: encode regions and the base prompt with the same (SDXL) CLIP",
            )
        latent_hw = (int(x.shape[-2]), int(x.shape[-1]))
        try:
            self.core.reference_masks(*latent_hw)  # validates aspect once per latent size
        except PakatiError as e:
            raise PakatiNodeError("PakatiApplyRegions", "regions", str(e)) from e
        extra = self.core.extra_context(c_crossattn.device, c_crossattn.dtype)
        context = torch.cat([c_crossattn, extra.expand(c_crossattn.shape[0], -1, -1)], dim=1)
        state = CallState(int(c_crossattn.shape[1]), latent_hw)
        options = dict(transformer_options)
        replace = dict(options.get("patches_replace", {}))
        attn2 = dict(replace.get("attn2", {}))
        unet = model.diffusion_model
        keys = self._keys.get(id(unet))
        if keys is None:
            keys = self._keys[id(unet)] = attn2_block_keys(unet)
        for key in keys:
            inner = attn2.get(key, attn2.get(key[:2]))
            attn2[key] = RegionalAttn2(self.core, state, inner)
        replace["attn2"] = attn2
        options["patches_replace"] = replace
        out = executor(x, t, c_concat, context, control, options, **kwargs)
        if not bool(torch.isfinite(out).all()):
            raise PakatiNodeError(
                "PakatiApplyRegions", "model",
                f"the model's prediction with the regions applied has NaN/infinite values (sigma {float(t.flatten()[0]):.4g}): "
                "the model or a patch on it overflows (fp16 overflow, a broken checkpoint or LoRA); try --force-fp32 or another checkpoint",
            )
        return out
