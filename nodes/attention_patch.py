"""Adapts ``pakati_core.attention_maps`` to ComfyUI's model patching.

Like the regional patch, the capture never takes an attention slot for good: a keyed
``APPLY_MODEL`` wrapper puts a ``CaptureAttn2`` on each watched cross-attention block for
one model call, wrapping whatever replace is there (another pack's). The capture wrapper is
kept first in the wrapper order, so a wrapper that runs inside it (PakatiApplyRegions) finds
``CaptureAttn2`` as the existing replace and calls it with the base prompt's tokens: the map
is always the base prompt's. A keyed ``OUTER_SAMPLE`` wrapper starts a fresh recording at
each sampler run. The layer's output is ComfyUI's own attention (or the wrapped replace's),
untouched; the probabilities are computed beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.ldm.modules.attention as comfy_attention
import torch

from ..pakati_core.attention_maps import AttentionRecorder
from .unet import attn2_block_keys, call_grid, in_schedule_range, with_attn2_replaced

WRAPPER_KEY = "pakati_capture"
EXCITE_PASS_OPTION = "pakati_excite_pass"  # set in transformer_options of Attend-and-Excite's gradient passes: not recorded
BLOCK_CHOICES = {
    "all": ("input", "middle", "output"),
    "input": ("input",),
    "middle": ("middle",),
    "output": ("output",),
    "middle+output": ("middle", "output"),
}


@dataclass
class CaptureHandle:
    """What PakatiCaptureAttention hands to PakatiAttentionMask: the recorder and the image scale."""

    recorder: AttentionRecorder
    downscale: int
    text: str


class CaptureAttn2:
    """attn2 replace for one model call: records the conditional rows, then attends as before."""

    def __init__(self, recorder: AttentionRecorder, layer: tuple, latent_hw: tuple[int, int], inner=None):
        self.recorder, self.layer, self.latent_hw, self.inner = recorder, layer, latent_hw, inner

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        chunks = extra_options.get("cond_or_uncond") or [0]
        per = q.shape[0] // len(chunks)
        cond = [i for i, c in enumerate(chunks) if c == 0]
        if cond:
            rows = torch.cat([torch.arange(i * per, (i + 1) * per) for i in cond]).to(q.device)
            qc, kc = q.index_select(0, rows), k.index_select(0, rows)
            self.recorder.record(
                self.layer, qc, kc, extra_options["n_heads"], len(cond), self._grid(extra_options, q.shape[1]), self.latent_hw
            )
        if self.inner is not None:
            return self.inner(q, k, v, extra_options)
        return comfy_attention.optimized_attention(
            q, k, v, extra_options["n_heads"], attn_precision=extra_options.get("attn_precision"), transformer_options=extra_options
        )

    def _grid(self, extra_options: dict, tokens: int) -> tuple[int, int]:
        return call_grid(extra_options, tokens, self.latent_hw)


class CaptureWrapper:
    """APPLY_MODEL wrapper installed by PakatiCaptureAttention (shared across clones)."""

    def __init__(self, recorder: AttentionRecorder, blocks: tuple[str, ...], start_percent: float, end_percent: float):
        self.recorder, self.blocks = recorder, blocks
        self.start_percent, self.end_percent = start_percent, end_percent
        self._keys: dict[int, list] = {}

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        model = executor.class_obj
        if (
            c_crossattn is None
            or transformer_options.get(EXCITE_PASS_OPTION)
            or not in_schedule_range(model, t, self.start_percent, self.end_percent)
        ):
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        unet = model.diffusion_model
        keys = self._keys.get(id(unet))
        if keys is None:
            keys = self._keys[id(unet)] = [k for k in attn2_block_keys(unet) if k[0] in self.blocks]
        latent_hw = (int(x.shape[-2]), int(x.shape[-1]))
        options = with_attn2_replaced(transformer_options, keys, lambda key, inner: CaptureAttn2(self.recorder, key, latent_hw, inner))
        return executor(x, t, c_concat, c_crossattn, control, options, **kwargs)


class CaptureRun:
    """OUTER_SAMPLE wrapper: each sampler run starts a fresh recording."""

    def __init__(self, recorder: AttentionRecorder):
        self.recorder = recorder

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, *args, **kwargs):
        self.recorder.begin_run()
        try:
            return executor(*args, **kwargs)
        finally:
            self.recorder.end_run()


def install(model, recorder: AttentionRecorder, blocks: tuple[str, ...], start_percent: float, end_percent: float):
    """A clone of ``model`` that records into ``recorder``; the capture wrapper is put first in the order."""
    patched = model.clone()
    for kind in ("apply_model", "outer_sample"):
        patched.remove_wrappers_with_key(kind, WRAPPER_KEY)
    patched.add_wrapper_with_key("outer_sample", WRAPPER_KEY, CaptureRun(recorder))
    patched.add_wrapper_with_key("apply_model", WRAPPER_KEY, CaptureWrapper(recorder, blocks, start_percent, end_percent))
    ordered = patched.wrappers["apply_model"]
    patched.wrappers["apply_model"] = {WRAPPER_KEY: ordered.pop(WRAPPER_KEY), **ordered}
    return patched
