"""PakatiRegionLora: a LoRA that applies only inside one region, in the same single regional pass."""

from __future__ import annotations

import logging
import uuid

import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io

from ..pakati_core.canvas import Canvas
from ..pakati_core.regional.lora import RegionMask
from .common import CanvasType, PakatiNodeError, checked, mask_to_numpy, node_name, require_finite_tensor
from .region_lora_patch import CLIP_BINDINGS, WRAPPER_KEY, BoundLora, RegionLoraWrapper, clip_for_region, model_deltas, read_lora

log = logging.getLogger("pakati")


class PakatiRegionLora(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiRegionLora",
            display_name="Pakati Region LoRA",
            category="Pakati/regions",
            description="Apply a LoRA only inside one region, in the same UNet pass as everything else: at every layer the LoRA "
            "touches, the output becomes base + strength · mask · LoRA change at that layer's resolution. With a CLIP, the "
            "LoRA's text-encoder part (trigger words) applies to that region's prompt only: wire the CLIP output into "
            "Pakati Regional Conditioning. Chain several for several regions or several LoRAs on one region.",
            inputs=[
                io.Model.Input("model", tooltip="The model (a global LoraLoader and Pakati Apply Regions may come before or after)."),
                CanvasType.Input("canvas", tooltip="The regions, from Pakati Canvas."),
                io.String.Input(
                    "region", default="0", tooltip="The region's name, id, or 0-based index in z-order (as Pakati Region Mask takes it)."
                ),
                io.Combo.Input(
                    "lora_name", options=folder_paths.get_filename_list("loras"), tooltip="The LoRA file, from ComfyUI's loras folder."
                ),
                io.Float.Input(
                    "strength_model",
                    default=1.0,
                    min=-100.0,
                    max=100.0,
                    step=0.01,
                    tooltip="How strongly the LoRA changes the model inside the region.",
                ),
                io.Clip.Input(
                    "clip",
                    optional=True,
                    tooltip="The CLIP for Pakati Regional Conditioning: the LoRA's text-encoder part then applies to this region's "
                    "prompt only.",
                ),
                io.Float.Input(
                    "strength_clip",
                    default=1.0,
                    min=-100.0,
                    max=100.0,
                    step=0.01,
                    optional=True,
                    tooltip="How strongly the LoRA changes the CLIP for this region's prompt.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Used instead of the region's own mask for the model part (the CLIP part stays bound to the region).",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The model with the region LoRA (a clone; the input is untouched)."),
                io.Clip.Output(
                    display_name="clip",
                    tooltip="The CLIP to wire into Pakati Regional Conditioning (the base prompt is encoded "
                    "without the LoRA; this region's prompt with it). Unchanged when no CLIP was given.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, model, canvas: Canvas, region: str, lora_name: str, strength_model: float, clip=None, strength_clip: float = 1.0, mask=None
    ) -> io.NodeOutput:
        node = node_name(cls)
        index = checked(node, "region", lambda: canvas.index_of(region))
        region_id = canvas.regions[index].id
        if mask is not None:
            require_finite_tensor(node, "mask", mask, "the mask")
            m = mask_to_numpy(mask)
            if m.shape[0] != 1:
                raise PakatiNodeError(node, "mask", f"a batch of {m.shape[0]} masks: one region LoRA takes one mask")
            m = m[0]
        else:
            m = canvas.masks(exclusive=True)[index]
        region_mask = checked(node, "mask", lambda: RegionMask(m, f"region '{canvas.regions[index].label}'"))
        path = folder_paths.get_full_path("loras", lora_name)
        if path is None:
            raise PakatiNodeError(node, "lora_name", f"no file '{lora_name}' in ComfyUI's loras folder")
        try:
            state = comfy.utils.load_torch_file(path, safe_load=True)
        except Exception as e:  # a truncated or foreign file: say which
            raise PakatiNodeError(node, "lora_name", f"'{lora_name}' could not be read as a LoRA: {e}") from e
        loaded = read_lora(state, model, clip)
        hooks, kv, touched, skipped = model_deltas(model, loaded, strength_model)
        out_clip = clip
        clip_keys = 0
        if clip is not None:
            region_clip = clip_for_region(clip, region_id).clone()
            clip_keys = len(region_clip.add_patches(loaded, strength_clip))
            out_clip = clip.clone()
            setattr(out_clip, CLIP_BINDINGS, {**getattr(clip, CLIP_BINDINGS, {}), region_id: region_clip})
        if touched == 0 and clip_keys == 0:
            raise PakatiNodeError(
                node,
                "lora_name",
                f"'{lora_name}' changes no layer of this model{' or its CLIP' if clip is not None else ''} "
                "(a LoRA for another model family, or not a LoRA)",
            )
        if touched and not hooks and not kv:
            raise PakatiNodeError(
                node,
                "lora_name",
                f"'{lora_name}' only changes layers that have no positions to mask "
                "(timestep/size embeddings, norms): it cannot apply to one region",
            )
        if skipped:
            log.warning(
                "Pakati: %s: '%s' changes %d layer(s) that have no positions to mask (embeddings, norms); "
                "those changes are left out inside and outside the region",
                node,
                lora_name,
                skipped,
            )
        patched = model.clone()
        if hooks or kv:
            bound = BoundLora(lora_name, region_id, region_mask, hooks, kv, uuid.uuid4().hex)
            existing = patched.get_wrappers("apply_model", WRAPPER_KEY)
            wrapper = existing[0].with_lora(bound) if existing else RegionLoraWrapper((bound,))
            patched.remove_wrappers_with_key("apply_model", WRAPPER_KEY)
            patched.add_wrapper_with_key("apply_model", WRAPPER_KEY, wrapper)
        return io.NodeOutput(patched, out_clip)


NODES = [PakatiRegionLora]
