"""Regional prompting nodes: encode region prompts, attach any conditioning to any mask, patch the model."""

from __future__ import annotations

import logging

import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.canvas import Canvas
from ..pakati_core.regional import RegionalAttention, RegionalOptions, RegionPrompt, RegionSet
from .common import CanvasType, PakatiNodeError, RegionsType, canvas_regions, checked, mask_to_numpy, node_name
from .region_guidance import install_region_cfg
from .region_lora_patch import clip_for_region
from .regional_flux import apply_flux, clip_family, encode_flux, model_family, unsupported
from .regional_patch import WRAPPER_KEY, RegionalWrapper, RunScope

log = logging.getLogger("pakati")

SDXL_CONTEXT_DIM, SDXL_POOLED_DIM = 2048, 1280


def encode(clip, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode like CLIPTextEncode: long prompts chunked by 77 tokens, (word:1.2) weights honoured."""
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return cond, pooled


def region_encoder(clip, region_id: str):
    """text -> embeddings with the CLIP a PakatiRegionLora bound to the region (its CLIP part applies to that region's
    prompt only), or None where none is bound (the region is encoded with ``clip``)."""
    rclip = clip_for_region(clip, region_id)
    return None if rclip is clip else lambda text: encode(rclip, text)[0]


def require_sdxl(node: str, input_name: str, cond: torch.Tensor, pooled: torch.Tensor | None) -> None:
    if cond.shape[-1] != SDXL_CONTEXT_DIM or (pooled is not None and pooled.shape[-1] != SDXL_POOLED_DIM):
        pooled_dim = None if pooled is None else pooled.shape[-1]
        raise PakatiNodeError(
            node,
            input_name,
            f"conditioning is not from an SDXL text encoder (embedding size {cond.shape[-1]}, pooled {pooled_dim}; "
            f"SDXL gives {SDXL_CONTEXT_DIM} and {SDXL_POOLED_DIM}); load an SDXL checkpoint's CLIP",
        )


class PakatiRegionalConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiRegionalConditioning",
            display_name="Pakati Regional Conditioning",
            category="Pakati/regional",
            description="Encodes every region's prompt (and negative) of a canvas with the model's CLIP (SDXL or Flux), "
            "plus the base prompt and negative for the sampler's positive and negative inputs.",
            inputs=[
                io.Clip.Input(
                    "clip",
                    tooltip="The model's CLIP: an SDXL checkpoint's (both text encoders) or Flux's (T5 + CLIP-L, from DualCLIPLoader).",
                ),
                CanvasType.Input("canvas", tooltip="The regions, from Pakati Canvas."),
                io.String.Input(
                    "base_prompt",
                    multiline=True,
                    default="",
                    tooltip="The whole-image prompt: style, lighting, what lies outside every region. Also gives SDXL's pooled embedding.",
                ),
                io.String.Input("base_negative", multiline=True, default="", tooltip="The negative prompt for the whole image."),
            ],
            outputs=[
                RegionsType.Output(display_name="regions", tooltip="The encoded regions, for Pakati Apply Regions."),
                io.Conditioning.Output(display_name="positive", tooltip="The base prompt, for the sampler's positive input."),
                io.Conditioning.Output(display_name="negative", tooltip="The base negative, for the sampler's negative input."),
            ],
        )

    @classmethod
    def execute(cls, clip, canvas: Canvas, base_prompt: str, base_negative: str) -> io.NodeOutput:
        node = node_name(cls)
        if clip is None:
            raise PakatiNodeError(node, "clip", "no CLIP given (the checkpoint has no text encoder)")
        family = clip_family(clip)
        if family == "flux":
            return io.NodeOutput(*encode_flux(node, clip, canvas, base_prompt, base_negative))
        if family != "sdxl":
            raise unsupported(node, "clip", family)
        positive = clip.encode_from_tokens_scheduled(clip.tokenize(base_prompt))
        negative = clip.encode_from_tokens_scheduled(clip.tokenize(base_negative))
        require_sdxl(node, "clip", positive[0][0], positive[0][1].get("pooled_output"))
        regions = canvas_regions(node, canvas, lambda text: encode(clip, text)[0], lambda r: region_encoder(clip, r.id))
        return io.NodeOutput(regions, positive, negative)


class PakatiRegionFromConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiRegionFromConditioning",
            display_name="Pakati Region From Conditioning",
            category="Pakati/regional",
            description="Attach any CONDITIONING (from any text-encode node) to any MASK as a region; chain to build a set.",
            inputs=[
                io.Conditioning.Input("conditioning", tooltip="The region's prompt, from CLIPTextEncode or any SDXL text-encode node."),
                io.Mask.Input("mask", tooltip="Where the prompt applies; any resolution with the image's aspect ratio. Soft masks blend."),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=10.0,
                    step=0.05,
                    tooltip="The region prompt's weight against the base prompt inside the mask.",
                ),
                RegionsType.Input("regions", optional=True, tooltip="Regions to chain onto; this region goes on top of them."),
                io.Conditioning.Input(
                    "negative", optional=True, tooltip="Optional negative prompt for this region only (used in the unconditional half)."
                ),
            ],
            outputs=[RegionsType.Output(display_name="regions", tooltip="The chained regions.")],
        )

    @classmethod
    def execute(cls, conditioning, mask: torch.Tensor, strength: float, regions: RegionSet | None = None, negative=None) -> io.NodeOutput:
        node = node_name(cls)
        if not conditioning:
            raise PakatiNodeError(node, "conditioning", "empty conditioning")
        if len(conditioning) > 1:
            log.warning("Pakati: %s uses the first of %d conditioning entries", node, len(conditioning))
        cond, extras = conditioning[0][0], conditioning[0][1]
        require_sdxl(node, "conditioning", cond, extras.get("pooled_output"))
        neg = None
        if negative:
            neg = negative[0][0]
            require_sdxl(node, "negative", neg, negative[0][1].get("pooled_output"))
        m = mask_to_numpy(mask)
        if m.shape[0] > 1:
            log.warning("Pakati: %s uses the first of %d masks", node, m.shape[0])
        m = m[0]
        if not np.isfinite(m).all():
            raise PakatiNodeError(node, "mask", "mask contains NaN or infinite values")
        if float(m.max(initial=0.0)) <= 0.0:
            raise PakatiNodeError(node, "mask", f"the mask is empty (all zero, {m.shape[1]}x{m.shape[0]}): the region would never apply")
        index = len(regions) if regions is not None else 0
        region = RegionPrompt(name=f"mask region {index + 1}", cond=cond, strength=strength, negative=neg, mask=np.clip(m, 0.0, 1.0))
        base = regions if regions is not None else RegionSet()
        out = checked(node, "regions", lambda: base.add(region))
        return io.NodeOutput(out)


class PakatiApplyRegions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiApplyRegions",
            display_name="Pakati Apply Regions",
            category="Pakati/regional",
            description="Patch the model so any sampler (KSampler, KSamplerAdvanced, SamplerCustom) renders each region's "
            "prompt inside its mask, in one UNet pass per step, while the positive input carries the base prompt.",
            inputs=[
                io.Model.Input("model", tooltip="The SDXL model (LoRAs and other patches may already be applied)."),
                RegionsType.Input("regions", tooltip="From Pakati Regional Conditioning or Pakati Region From Conditioning."),
                io.Float.Input(
                    "base_weight",
                    default=0.3,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="The base prompt's share inside regions: 0 = the region prompt alone, 1 = as strong as the region.",
                ),
                io.Float.Input(
                    "auto_negative",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Use each region's prompt as a negative inside the other regions, to stop subjects and colours leaking.",
                ),
                io.Float.Input(
                    "start_percent",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Fraction of the schedule where regions start applying.",
                ),
                io.Float.Input(
                    "end_percent", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="Fraction of the schedule where regions stop applying."
                ),
                io.Float.Input(
                    "depth",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    optional=True,
                    tooltip="Flux only: the fraction of the transformer's blocks, from the first, in which image tokens see "
                    "their region's prompt (the rest see the base prompt alone). 1 = every block; ignored on SDXL.",
                ),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The patched model (a clone; the input is untouched).")],
        )

    @classmethod
    def validate_inputs(cls, start_percent: float | None = None, end_percent: float | None = None) -> bool | str:
        if start_percent is not None and end_percent is not None and start_percent > end_percent:
            return f"PakatiApplyRegions: input 'start_percent': {start_percent} is after end_percent {end_percent}"
        return True

    @classmethod
    def execute(
        cls,
        model,
        regions: RegionSet,
        base_weight: float,
        auto_negative: float,
        start_percent: float,
        end_percent: float,
        depth: float = 1.0,
    ) -> io.NodeOutput:
        node = node_name(cls)
        if start_percent > end_percent:
            raise PakatiNodeError(node, "start_percent", f"{start_percent} is after end_percent {end_percent}")
        if len(regions) == 0:
            log.warning("Pakati: %s got no regions; the model is unchanged", node)
            return io.NodeOutput(model.clone())
        family = model_family(model)
        if family == "flux":
            return io.NodeOutput(apply_flux(node, model, regions, base_weight, auto_negative, start_percent, end_percent, depth))
        if family != "sdxl":
            raise unsupported(node, "model", family)
        if regions.family != "sdxl":
            raise PakatiNodeError(
                node,
                "regions",
                f"the regions were encoded for {regions.family} but the model is SDXL; encode them with the SDXL checkpoint's CLIP",
            )
        patched = model.clone()
        context_dim = getattr(model.model, "model_config", None) and model.model.model_config.unet_config.get("context_dim")
        if context_dim is not None and context_dim != regions.embed_dim:
            raise PakatiNodeError(
                node,
                "model",
                f"the model's cross-attention expects embeddings of size {context_dim} but the regions were encoded with size "
                f"{regions.embed_dim}; Pakati regional prompting needs an SDXL model and SDXL conditioning",
            )
        core = checked(
            node, "regions", lambda: RegionalAttention(regions, RegionalOptions(base_weight=base_weight, auto_negative=auto_negative))
        )
        wrapper = RegionalWrapper(core, start_percent, end_percent)
        for kind, fn in (("apply_model", wrapper), ("outer_sample", RunScope(wrapper.projections))):
            patched.remove_wrappers_with_key(kind, WRAPPER_KEY)
            patched.add_wrapper_with_key(kind, WRAPPER_KEY, fn)
        install_region_cfg(patched, regions)  # the regions' `cfg` fields as a spatial CFG map (nothing when all are null)
        return io.NodeOutput(patched)


NODES = [PakatiRegionalConditioning, PakatiRegionFromConditioning, PakatiApplyRegions]
