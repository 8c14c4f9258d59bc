"""Regional prompting for diffusers' ``StableDiffusionXLPipeline``, without ComfyUI.

The same ``RegionalAttention`` as the ComfyUI nodes, as a processor that wraps whatever
processor each cross-attention layer (``attn2``) already has, for the duration of one
pipeline call. The prompt embeddings stay the base prompt's; the region tokens are
projected by each layer's own ``to_k``/``to_v`` once per call and cached, and each region is
attended only at the positions it covers. Over diffusers' plain attention processors Pakati
computes the layer itself (the base attention once, plus the regions); over any other
processor (IP-Adapter's, for instance) it runs that processor unchanged and adds only the
regional difference, so both apply. Conditional rows get the regional blend, unconditional
rows too where a region has a negative prompt or auto-negative is on.

    from diffusers import StableDiffusionXLPipeline
    from pakati_core import Canvas
    from pakati_core.diffusers import RegionalSDXL

    pipe = StableDiffusionXLPipeline.from_pretrained(...)
    images = RegionalSDXL(pipe)(Canvas.from_json(layout), "a city at dusk", num_inference_steps=30).images

Needs the optional ``diffusers`` package (``pip install diffusers``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ..attention_maps.excite import ExciteSettings, ExciteTarget
from ..attention_maps.subjects import SubjectRegion, region_subjects
from ..canvas import Canvas
from ..errors import RegionalConditioningError
from ..regional.attention import RegionalAttention, RegionalOptions, grid_shape
from ..regional.from_canvas import regions_from_canvas
from ..regional.gather import base_where_needed, blend, regional_delta, sdpa
from ..regional.projections import ProjectionCache
from ..regional.regions import RegionSet
from .excite import Exciter, run_excited, time_ids
from .processors import cross_attention_names, plain_processor_types, wrapped_processors
from .tokens import excite_target

DEFAULT_OPTIONS = RegionalOptions()


@dataclass
class _CallState:
    latent_hw: tuple[int, int]
    cfg: bool  # the batch is [uncond rows, cond rows] (diffusers' order)


class PakatiAttnProcessor:
    """Cross-attention processor: the regional blend around the layer's own processor."""

    def __init__(self, core: RegionalAttention, state: _CallState, inner, projections: ProjectionCache):
        self.core, self.state, self.inner, self.projections = core, state, inner, projections
        self.own = isinstance(inner, plain_processor_types())

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Any = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        ip_adapter_masks: Any = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        text = encoder_hidden_states[0] if isinstance(encoder_hidden_states, tuple) else encoder_hidden_states
        if (
            text is None
            or attention_mask is not None
            or hidden_states.ndim != 3
            or attn.spatial_norm is not None
            or attn.group_norm is not None
        ):
            raise RegionalConditioningError("Pakati's processor only runs on SDXL cross-attention layers", field="attention")
        b = hidden_states.shape[0]
        chunks = [("uncond", slice(0, b // 2)), ("cond", slice(b // 2, b))] if self.state.cfg else [("cond", slice(0, b))]
        chunks = [(kind, rows) for kind, rows in chunks if kind == "cond" or self.core.regionalises_uncond]
        heads = attn.heads
        q = attn.to_q(hidden_states)
        grid = grid_shape(self.state.latent_hw, q.shape[1])
        plans = [(self.core.plan(kind, self.state.latent_hw, grid, q.device, q.dtype), rows) for kind, rows in chunks]
        kx, vx = self._region_kv(attn, q.device, q.dtype)
        if attn.norm_cross:
            text = attn.norm_encoder_hidden_states(text)

        if not self.own:
            passed = {"temb": temb, "ip_adapter_masks": ip_adapter_masks, **kwargs}
            out = self.inner(
                attn,
                hidden_states,
                encoder_hidden_states=encoder_hidden_states,
                attention_mask=attention_mask,
                **{name: value for name, value in passed.items() if value is not None},
            )
            if out.requires_grad:  # a gradient pass (Attend-and-Excite): in-place updates must not touch a saved output
                out = out.clone()
            k, v = attn.to_k(text), attn.to_v(text)
            zero = attn.to_out[0](q.new_zeros(1, 1, q.shape[-1]))
            for plan, rows in plans:
                where, delta = regional_delta(q[rows], k[rows], v[rows], kx, vx, heads, plan)
                delta = (attn.to_out[0](delta) - zero) / attn.rescale_output_factor  # to_out is affine: its bias cancels
                if where is None:
                    out[rows] += delta
                else:
                    out[rows].index_add_(1, where, delta)
            return out

        k, v = attn.to_k(text), attn.to_v(text)
        if all(plan.base_index is None for plan, _ in plans):
            out = sdpa(q, k, v, heads)  # the base prompt applies everywhere: one call for the whole batch
        else:  # base attention only where it has weight (base_weight 0 under full cover)
            out = torch.empty_like(q)
            restricted = {rows.start: plan for plan, rows in plans if plan.base_index is not None}
            for rows in [slice(0, b // 2), slice(b // 2, b)] if self.state.cfg else [slice(0, b)]:
                plan = restricted.get(rows.start)
                out[rows] = (
                    sdpa(q[rows], k[rows], v[rows], heads) if plan is None else base_where_needed(q[rows], k[rows], v[rows], heads, plan)
                )
        if out.requires_grad:  # a gradient pass (Attend-and-Excite): the in-place blend must not touch a saved output
            out = out.clone()
        for plan, rows in plans:
            blend(out[rows], q[rows], kx, vx, heads, plan)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor

    def _region_kv(self, attn, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        def compute():
            extra = self.core.extra_context(device, dtype)
            if attn.norm_cross:
                extra = attn.norm_encoder_hidden_states(extra)
            return attn.to_k(extra), attn.to_v(extra)

        weights = [getattr(attn.to_k, "weight", None), getattr(attn.to_v, "weight", None)]
        return self.projections.get(attn, weights, device, dtype, compute)


@contextmanager
def regional_processors(unet: torch.nn.Module, core: RegionalAttention, state: _CallState) -> Iterator[ProjectionCache]:
    """Wrap every ``attn2`` processor of a diffusers UNet with Pakati's for the duration of the block."""
    projections = ProjectionCache()
    try:
        with wrapped_processors(
            unet, cross_attention_names(unet), lambda name, inner: PakatiAttnProcessor(core, state, inner, projections)
        ):
            yield projections
    finally:
        projections.clear()


class RegionalSDXL:
    """Render a canvas with a diffusers SDXL pipeline, one UNet pass per step."""

    def __init__(self, pipe, options: RegionalOptions = DEFAULT_OPTIONS):
        self.pipe, self.options = pipe, options
        self.exciter = None  # the last excited run's Exciter (its history), for inspection

    def encode(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings [1, 77, dim], pooled) with the pipeline's own two text encoders."""
        cond, _, pooled, _ = self.pipe.encode_prompt(
            prompt, device=self.pipe.device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return cond, pooled

    def regions_from_canvas(self, canvas: Canvas) -> RegionSet:
        return regions_from_canvas(canvas, lambda text: self.encode(text)[0])

    def subjects(self, canvas: Canvas, words: Mapping[str, str] | None = None) -> list[ExciteTarget]:
        """Attend-and-Excite targets: each region's word (``words`` by region label, id or number, else its prompt's
        last noun: the rule of :func:`pakati_core.attention_maps.subjects.region_subjects`)."""
        given = {k: (v, None) for k, v in (words or {}).items()}
        chosen = region_subjects([SubjectRegion(r.label, r.id, r.prompt) for r in canvas.regions], given)
        return [excite_target(self.pipe, s.prompt, s.word, region=s.index, name=f"{s.name}: {s.word}") for s in chosen]

    def __call__(
        self,
        canvas: Canvas,
        prompt: str,
        negative_prompt: str = "",
        excite: ExciteSettings | None = None,
        subjects: Mapping[str, str] | None = None,
        **pipe_kwargs: Any,
    ):
        """Render ``canvas``; with ``excite``, Attend-and-Excite on each region's subject inside its mask
        (``subjects``: region id or label -> word; default the last noun of the region's prompt)."""
        pos, pooled = self.encode(prompt)
        if not negative_prompt and getattr(self.pipe.config, "force_zeros_for_empty_prompt", False):
            neg, neg_pooled = torch.zeros_like(pos), torch.zeros_like(pooled)  # as the pipeline does itself
        else:
            neg, neg_pooled = self.encode(negative_prompt)
        pipe_kwargs.setdefault("width", canvas.width)
        pipe_kwargs.setdefault("height", canvas.height)
        targets = self.subjects(canvas, subjects) if excite is not None else ()
        return self.generate(self.regions_from_canvas(canvas), pos, pooled, neg, neg_pooled, excite=excite, targets=targets, **pipe_kwargs)

    def generate(
        self,
        regions: RegionSet,
        prompt_embeds: torch.Tensor,
        pooled_prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor,
        negative_pooled_prompt_embeds: torch.Tensor,
        *,
        width: int,
        height: int,
        guidance_scale: float = 5.0,
        excite: ExciteSettings | None = None,
        targets: Sequence[ExciteTarget] = (),
        blocks: str = "lowest resolution",
        **pipe_kwargs: Any,
    ):
        """Run the pipeline with precomputed embeddings (the pooled vectors come from the base prompt).

        With ``excite``, Attend-and-Excite on ``targets`` (``ExciteTarget``: a region's word, or a
        base-prompt word with ``region=None``) at the ``blocks`` layers."""
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
        state = _CallState(latent_hw, cfg=guidance_scale > 1.0)
        embeds = {
            "prompt_embeds": prompt_embeds,
            "negative_prompt_embeds": negative_prompt_embeds,
            "pooled_prompt_embeds": pooled_prompt_embeds,
            "negative_pooled_prompt_embeds": negative_pooled_prompt_embeds,
            "guidance_scale": guidance_scale,
        }
        with regional_processors(self.pipe.unet, core, state):
            if excite is None:
                return self.pipe(width=width, height=height, **embeds, **pipe_kwargs)
            if not targets:
                raise RegionalConditioningError("Attend-and-Excite needs at least one target", field="targets")
            for t in targets:
                if t.region is not None and not 0 <= t.region < len(regions):
                    raise RegionalConditioningError(f"target '{t.name}' names region {t.region} of {len(regions)}", field="targets")

            @contextmanager
            def cond_rows_only():  # a gradient pass runs the conditional rows alone
                saved, state.cfg = state.cfg, False
                try:
                    yield
                finally:
                    state.cfg = saved

            contexts = [None if t.region is None else regions.regions[t.region].cond for t in targets]
            exciter = Exciter(
                self.pipe,
                targets,
                contexts,
                excite,
                prompt_embeds,
                pooled_prompt_embeds,
                time_ids(self.pipe, width, height, pipe_kwargs),
                latent_hw,
                coverage=lambda region, grid: core.grid_masks(*latent_hw, *grid)[region],
                blocks=blocks,
                pass_context=cond_rows_only,
            )
            self.exciter = exciter  # its history, for inspection
            return run_excited(self.pipe, exciter, width, height, **embeds, **pipe_kwargs)
