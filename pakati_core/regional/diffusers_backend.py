"""Regional prompting for diffusers' ``StableDiffusionXLPipeline``, without ComfyUI.

The same ``RegionalAttention`` as the ComfyUI nodes, installed as an attention processor on
every cross-attention layer (``attn2``) for the duration of one pipeline call. The region
tokens are appended to the prompt embeddings (positive and negative alike, so the pipeline's
CFG batch keeps one shape); the processor gives conditional rows the regional blend and
unconditional rows plain attention over the base tokens, exactly as without Pakati.

    from diffusers import StableDiffusionXLPipeline
    from pakati_core import Canvas
    from pakati_core.regional.diffusers_backend import RegionalSDXL

    pipe = StableDiffusionXLPipeline.from_pretrained(...)
    images = RegionalSDXL(pipe)(Canvas.from_json(layout), "a city at dusk", num_inference_steps=30).images

Needs the optional ``diffusers`` package (``pip install diffusers``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from ..canvas import Canvas
from ..errors import RegionalConditioningError
from .attention import RegionalAttention, RegionalOptions, grid_shape
from .regions import RegionPrompt, RegionSet


@dataclass
class _CallState:
    base_len: int
    latent_hw: tuple[int, int]
    cfg: bool  # the batch is [uncond rows, cond rows] (diffusers' order)


class PakatiAttnProcessor:
    """Cross-attention processor: regional blend for conditional rows, plain attention otherwise."""

    def __init__(self, core: RegionalAttention, state: _CallState):
        self.core, self.state = core, state

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        if encoder_hidden_states is None or attention_mask is not None or hidden_states.ndim != 3:
            raise RegionalConditioningError("Pakati's processor only runs on SDXL cross-attention layers", field="attention")
        residual = hidden_states
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        heads = attn.heads
        q = attn.to_q(hidden_states)
        k = attn.to_k(encoder_hidden_states)
        v = attn.to_v(encoder_hidden_states)
        base_len = self.state.base_len
        out = _sdpa(q, k[:, :base_len], v[:, :base_len], heads)
        b = q.shape[0]
        rows = slice(b // 2, b) if self.state.cfg else slice(0, b)
        grid = grid_shape(self.state.latent_hw, q.shape[1])
        out[rows] = self.core.attend(q[rows], k[rows], v[rows], heads, "cond", base_len, self.state.latent_hw, grid)
        if self.core.regionalises_uncond and self.state.cfg:
            un = slice(0, b // 2)
            out[un] = self.core.attend(q[un], k[un], v[un], heads, "uncond", base_len, self.state.latent_hw, grid)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, hd = q.shape
    d = hd // heads
    split = lambda t: t.view(b, -1, heads, d).transpose(1, 2)  # noqa: E731
    return F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(b, n, hd)


@contextmanager
def regional_processors(unet: torch.nn.Module, core: RegionalAttention, state: _CallState) -> Iterator[None]:
    """Install Pakati on every ``attn2`` of a diffusers UNet for the duration of the block."""
    saved = dict(unet.attn_processors)
    processor = PakatiAttnProcessor(core, state)
    unet.set_attn_processor({name: processor if ".attn2." in name else proc for name, proc in saved.items()})
    try:
        yield
    finally:
        unet.set_attn_processor(saved)


class RegionalSDXL:
    """Render a canvas with a diffusers SDXL pipeline, one UNet pass per step."""

    def __init__(self, pipe, options: RegionalOptions = RegionalOptions()):
        self.pipe, self.options = pipe, options

    def encode(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings [1, 77, dim], pooled) with the pipeline's own two text encoders."""
        cond, _, pooled, _ = self.pipe.encode_prompt(prompt, device=self.pipe.device, num_images_per_prompt=1, do_classifier_free_guidance=False)
        return cond, pooled

    def regions_from_canvas(self, canvas: Canvas) -> RegionSet:
        regions = []
        for i, r in enumerate(canvas.regions):
            if not r.prompt.strip():
                raise RegionalConditioningError(f"region '{r.label}' has an empty prompt", field=f"regions[{i}].prompt")
            negative = self.encode(r.negative)[0] if r.negative.strip() else None
            regions.append(RegionPrompt(name=r.label, cond=self.encode(r.prompt)[0], strength=r.strength, negative=negative, canvas=canvas, canvas_index=i))
        return RegionSet(tuple(regions))

    def __call__(self, canvas: Canvas, prompt: str, negative_prompt: str = "", **pipe_kwargs: Any):
        pos, pooled = self.encode(prompt)
        if not negative_prompt and getattr(self.pipe.config, "force_zeros_for_empty_prompt", False):
            neg, neg_pooled = torch.zeros_like(pos), torch.zeros_like(pooled)  # as the pipeline does itself
        else:
            neg, neg_pooled = self.encode(negative_prompt)
        pipe_kwargs.setdefault("width", canvas.width)
        pipe_kwargs.setdefault("height", canvas.height)
        return self.generate(self.regions_from_canvas(canvas), pos, pooled, neg, neg_pooled, **pipe_kwargs)

    def generate(self, regions: RegionSet, prompt_embeds: torch.Tensor, pooled_prompt_embeds: torch.Tensor,
                 negative_prompt_embeds: torch.Tensor, negative_pooled_prompt_embeds: torch.Tensor, *,
                 width: int, height: int, guidance_scale: float = 5.0, **pipe_kwargs: Any):
        """Run the pipeline with precomputed embeddings (the pooled vectors come from the base prompt)."""
        if len(regions) == 0:
            raise RegionalConditioningError("no regions to render", field="regions")
        if prompt_embeds.shape != negative_prompt_embeds.shape:
            raise RegionalConditioningError(
                f"prompt and negative embeddings differ in shape ({tuple(prompt_embeds.shape)} vs {tuple(negative_prompt_embeds.shape)})",
                field="negative_prompt_embeds",
            )
        if regions.embed_dim is not None and regions.embed_dim != prompt_embeds.shape[-1]:
            raise RegionalConditioningError(
                f"region embeddings have size {regions.embed_dim}, the prompt {prompt_embeds.shape[-1]}", field="regions"
            )
        core = RegionalAttention(regions, self.options)
        f = getattr(self.pipe, "vae_scale_factor", 8)
        latent_hw = (height // f, width // f)
        core.reference_masks(*latent_hw)  # aspect check before any sampling
        extra = core.extra_context(prompt_embeds.device, prompt_embeds.dtype).expand(prompt_embeds.shape[0], -1, -1)
        state = _CallState(prompt_embeds.shape[1], latent_hw, cfg=guidance_scale > 1.0)
        with regional_processors(self.pipe.unet, core, state):
            return self.pipe(
                prompt_embeds=torch.cat([prompt_embeds, extra], 1),
                negative_prompt_embeds=torch.cat([negative_prompt_embeds, extra], 1),
                pooled_prompt_embeds=pooled_prompt_embeds,
                negative_pooled_prompt_embeds=negative_pooled_prompt_embeds,
                width=width, height=height, guidance_scale=guidance_scale, **pipe_kwargs,
            )
