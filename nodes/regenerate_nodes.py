"""Region-only regeneration nodes: crop a region at its own resolution, stitch it back, compose persistent regions."""

from __future__ import annotations

import comfy.model_management
import comfy.utils
import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.canvas import Canvas, mask_region
from ..pakati_core.regenerate import (
    TARGET_MODES,
    RegionStitch,
    compose_regions,
    crop_canvas,
    crop_region,
    locked_mask,
    regeneration_mask,
    region_seed,
    stitch_region,
)
from .common import CanvasType, PakatiNodeError, checked, mask_to_numpy, node_name, require_finite_tensor

StitchType = io.Custom("PAKATI_STITCH")


def _images(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _interrupt() -> None:
    comfy.model_management.throw_exception_if_processing_interrupted()


class PakatiCropRegion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiCropRegion",
            display_name="Pakati Crop Region",
            category="Pakati/regenerate",
            description="Cut one region (plus context) out of an image and resize it to a sampling resolution (multiples of 8), "
            "so only that region is regenerated. Feed the crop to VAE Encode and the mask to Set Latent Noise Mask / "
            "InpaintModelConditioning, then put the result back with Pakati Stitch Region.",
            inputs=[
                io.Image.Input("image", tooltip="The image (or batch) to regenerate a region of."),
                io.Int.Input(
                    "context",
                    default=64,
                    min=0,
                    max=4096,
                    step=8,
                    tooltip="Pixels of surrounding image kept around the region so the model sees what it must blend with.",
                ),
                io.Combo.Input(
                    "target",
                    options=list(TARGET_MODES),
                    default="sdxl native",
                    tooltip="Sampling size: 'sdxl native' scales the crop to about 1024x1024 pixels keeping its "
                    "aspect; 'keep' samples at the crop's own size; 'explicit' uses width x height.",
                ),
                io.Int.Input(
                    "width", default=1024, min=64, max=8192, step=8, tooltip="Crop width for target 'explicit' (a multiple of 8)."
                ),
                io.Int.Input(
                    "height", default=1024, min=64, max=8192, step=8, tooltip="Crop height for target 'explicit' (a multiple of 8)."
                ),
                io.Int.Input(
                    "grow",
                    default=8,
                    min=0,
                    max=512,
                    tooltip="Grow the region by this many pixels before feathering, so the regenerated area covers its edge.",
                ),
                io.Float.Input(
                    "feather",
                    default=16.0,
                    min=0.0,
                    max=512.0,
                    step=0.5,
                    tooltip="Width (pixels) of the soft band in which regenerated and original pixels blend; nothing beyond it changes.",
                ),
                io.Mask.Input(
                    "mask", optional=True, tooltip="The region as a mask (one, or one per image). Takes precedence over canvas + region."
                ),
                CanvasType.Input(
                    "canvas",
                    optional=True,
                    tooltip="A canvas laid over the image: gives the region by name, keeps locked regions untouched, "
                    "and is cropped with the image for regional prompts inside the crop.",
                ),
                io.String.Input(
                    "region", default="0", optional=True, tooltip="With a canvas and no mask: the region's name, id or 0-based index."
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFF,
                    optional=True,
                    tooltip="Seed output when the region has none of its own (a region's own seed always wins).",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The crop at sampling resolution."),
                io.Mask.Output(display_name="mask", tooltip="The feathered region in the crop: the noise mask."),
                StitchType.Output(display_name="stitch", tooltip="What Pakati Stitch Region needs to put the crop back."),
                CanvasType.Output(
                    display_name="canvas",
                    tooltip="The canvas cut and scaled to the crop (or the mask as a one-region canvas), for regional "
                    "prompts inside the crop.",
                ),
                io.Int.Output(
                    display_name="seed",
                    tooltip="The region's seed (its own, or derived from its id and the seed input): the same region "
                    "regenerates the same way.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        context: int,
        target: str,
        width: int,
        height: int,
        grow: int,
        feather: float,
        mask: torch.Tensor | None = None,
        canvas: Canvas | None = None,
        region: str = "0",
        seed: int = 0,
    ) -> io.NodeOutput:
        name = node_name(cls)
        require_finite_tensor(name, "image", image, "the image")
        frames = _images(image)
        h, w = frames.shape[1:3]
        inputs = {"image", "mask", "canvas", "region", "context", "target", "width", "height", "grow", "feather"}
        out_seed = seed
        keep = None
        if mask is not None:
            masks = mask_to_numpy(mask)
            if canvas is not None:
                keep = locked_mask(canvas, w, h)
        elif canvas is not None:
            region_mask, keep = checked(name, "region", lambda: regeneration_mask(canvas, region, w, h), inputs)
            masks = region_mask[None]
            out_seed = region_seed(canvas.region(region), seed)
        else:
            raise PakatiNodeError(name, "mask", "connect a mask, or a canvas and a region name, to say which region to regenerate")
        bar = comfy.utils.ProgressBar(2)
        result = checked(
            name,
            "mask",
            lambda: crop_region(
                frames,
                masks,
                context=context,
                mode=target,
                explicit=(width, height),
                grow=grow,
                feather=feather,
                keep_out=keep,
                check_interrupt=_interrupt,
            ),
            inputs,
        )
        bar.update(1)
        tw, th = result.stitch.target
        if canvas is not None:
            sub = checked(name, "canvas", lambda: crop_canvas(canvas, (w, h), result.stitch.boxes[0], (tw, th)), inputs)
        else:
            sub = Canvas(tw, th, [mask_region("region", result.masks[0], name="region")])
        bar.update(1)
        return io.NodeOutput(_tensor(result.images), _tensor(result.masks), result.stitch, sub, int(out_seed))


class PakatiStitchRegion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiStitchRegion",
            display_name="Pakati Stitch Region",
            category="Pakati/regenerate",
            description="Put a regenerated crop back: resize to the region's box, optionally match its colour to the surrounding "
            "ring (CIE Lab), blend with the feathered mask. Pixels outside the mask and its blend band are copied unchanged.",
            inputs=[
                StitchType.Input("stitch", tooltip="From Pakati Crop Region."),
                io.Image.Input("image", tooltip="The regenerated crop (VAE Decode of the sampled crop)."),
                io.Boolean.Input(
                    "colour_match",
                    default=True,
                    tooltip="Match the crop's Lab mean and spread to the original in a ring just outside the blend "
                    "band (removes the VAE/sampler colour drift that shows as a seam).",
                ),
                io.Image.Input(
                    "original", optional=True, tooltip="Paste onto this image instead of the one the crop came from (same size)."
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The image with the region regenerated and every other pixel unchanged.")
            ],
        )

    @classmethod
    def execute(cls, stitch: RegionStitch, image: torch.Tensor, colour_match: bool, original: torch.Tensor | None = None) -> io.NodeOutput:
        require_finite_tensor(node_name(cls), "image", image, "the regenerated crop (VAE Decode of the sampled crop)")
        if original is not None:
            require_finite_tensor(node_name(cls), "original", original, "the original image")
        base = None if original is None else _images(original)
        bar = comfy.utils.ProgressBar(1)
        out = checked(
            node_name(cls),
            "image",
            lambda: stitch_region(stitch, _images(image), base, colour_match=colour_match, check_interrupt=_interrupt),
            {"image", "original", "stitch"},
        )
        bar.update(1)
        return io.NodeOutput(_tensor(out))


class PakatiComposeRegions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiComposeRegions",
            display_name="Pakati Compose Regions",
            category="Pakati/regenerate",
            description="Persistent regions: take the canvas's regenerated regions from a new image and lay them over the previous "
            "image with their feathered masks. Locked regions, and everything outside the chosen "
            "regions, keep the previous pixels exactly.",
            inputs=[
                CanvasType.Input("canvas", tooltip="The canvas whose regions are composed (its layout is scaled to the image)."),
                io.Image.Input("previous", tooltip="The image so far: locked regions and untouched areas come from here."),
                io.Image.Input("regenerated", tooltip="The new render the regenerated regions are taken from (same size)."),
                io.String.Input(
                    "regions",
                    default="",
                    tooltip="Comma-separated region names, ids or indices to take from the new render; empty = every unlocked region.",
                ),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The composed image.")],
        )

    @classmethod
    def execute(cls, canvas: Canvas, previous: torch.Tensor, regenerated: torch.Tensor, regions: str) -> io.NodeOutput:
        name = node_name(cls)
        require_finite_tensor(name, "previous", previous, "the previous image")
        require_finite_tensor(name, "regenerated", regenerated, "the regenerated render")
        prev, new = _images(previous), _images(regenerated)
        n = max(len(prev), len(new))
        if len(prev) not in (1, n) or len(new) not in (1, n):
            raise PakatiNodeError(
                name, "regenerated", f"{len(new)} regenerated frames for {len(prev)} previous frames; give one or the same number"
            )
        keys = [k.strip() for k in regions.split(",") if k.strip()] or None
        bar = comfy.utils.ProgressBar(n)
        out = []
        for i in range(n):
            _interrupt()
            p, r = prev[i if len(prev) > 1 else 0], new[i if len(new) > 1 else 0]
            out.append(checked(name, "regions", lambda: compose_regions(p, r, canvas, keys), {"regions", "regenerated"}))
            bar.update(1)
        return io.NodeOutput(_tensor(np.stack(out)))


NODES = [PakatiCropRegion, PakatiStitchRegion, PakatiComposeRegions]
