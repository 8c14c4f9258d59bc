"""Canvas nodes: the Region JSON widget, masks from regions, regions from masks, and an overlay preview."""

from __future__ import annotations

import json

import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..pakati_core.canvas import Canvas
from ..pakati_core.mask_region import add_mask_region
from ..pakati_core.masks import exclusive_masks
from ..pakati_core.preview import draw_overlay
from .common import CanvasType, PakatiNodeError, canvas_validation_error, checked, node_name, parse_canvas

EMPTY_REGIONS = '{"version": 1, "width": 1024, "height": 1024, "regions": []}'


class PakatiCanvas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiCanvas",
            display_name="Pakati Canvas",
            category="Pakati/canvas",
            description="A canvas of regions, each with its own prompt, negative, strength, feather, seed and lock. "
            "The regions live as Region JSON v1 in the 'regions' widget, so they travel with the workflow and the API prompt.",
            inputs=[
                io.Int.Input(
                    "width",
                    default=1024,
                    min=64,
                    max=16384,
                    step=8,
                    tooltip="Canvas width in pixels (a multiple of 8). Regions drawn at another size are rescaled.",
                ),
                io.Int.Input("height", default=1024, min=64, max=16384, step=8, tooltip="Canvas height in pixels (a multiple of 8)."),
                io.String.Input(
                    "regions",
                    default=EMPTY_REGIONS,
                    multiline=True,
                    tooltip="Region JSON v1: {version, width, height, regions:[{id, name, shape: polygon|rect, points, "
                    "prompt, negative, strength, feather, seed, locked}]}. Drawn by the canvas editor.",
                ),
                io.Image.Input(
                    "background",
                    optional=True,
                    tooltip="Optional image shown behind the regions in the editor, so you can draw over what you have.",
                ),
            ],
            outputs=[CanvasType.Output(display_name="canvas", tooltip="The parsed canvas.")],
        )

    @classmethod
    def validate_inputs(cls, width: int | None = None, height: int | None = None, regions: str | None = None) -> bool | str:
        if width is None or height is None or regions is None:
            return True  # linked inputs arrive at run time and are checked in execute
        return canvas_validation_error(regions, width, height)

    @classmethod
    def execute(cls, width: int, height: int, regions: str, background: torch.Tensor | None = None) -> io.NodeOutput:
        canvas = parse_canvas("PakatiCanvas", regions, width, height)
        if background is not None:
            # Sent under its own key: the editor draws it behind the regions (web/js/pakati_canvas.js)
            # instead of the front end showing it as a second preview under the node.
            images = ui.PreviewImage(background[:1], cls=cls).as_dict()["images"]
            return io.NodeOutput(canvas, ui={"pakati_background": images})
        return io.NodeOutput(canvas)


class PakatiRegionMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiRegionMask",
            display_name="Pakati Region Mask",
            category="Pakati/canvas",
            description="One region of a canvas as an anti-aliased MASK at canvas size.",
            inputs=[
                CanvasType.Input("canvas", tooltip="A canvas from Pakati Canvas."),
                io.String.Input("region", default="0", tooltip="The region's name, id, or 0-based index in z-order."),
                io.Float.Input(
                    "feather",
                    default=-1.0,
                    min=-1.0,
                    max=512.0,
                    step=0.5,
                    tooltip="Edge softness in canvas pixels; -1 uses the region's own feather.",
                ),
                io.Boolean.Input(
                    "exclusive",
                    default=False,
                    tooltip="Subtract the regions stacked above this one (what the sampler uses where regions overlap).",
                ),
            ],
            outputs=[io.Mask.Output(display_name="mask", tooltip="The region's coverage, 1 inside, 0 outside, soft at the edge.")],
        )

    @classmethod
    def execute(cls, canvas: Canvas, region: str, feather: float, exclusive: bool) -> io.NodeOutput:
        index = checked(node_name(cls), "region", lambda: canvas.index_of(region))
        f = None if feather < 0 else feather
        mask = canvas.rasterize(index, feather=f)
        if exclusive:
            above = [canvas.rasterize(j) for j in range(index + 1, len(canvas.regions))]
            mask = exclusive_masks(np.stack([mask, *above]))[0]
        return io.NodeOutput(torch.from_numpy(np.ascontiguousarray(mask))[None])


class PakatiRegionFromMask(io.ComfyNode):
    """A MASK (from attention, a segmenter, a painted mask) as a polygon region on top of a canvas."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiRegionFromMask",
            display_name="Pakati Region From Mask",
            category="Pakati/canvas",
            description="Outline a MASK as a polygon region (the largest blob above the threshold, simplified) and add it on top of "
            "a canvas, with its own prompt. The region is ordinary Region JSON: it renders, edits and saves like a drawn one. After a run, "
            "'Add to the Pakati Canvas' puts it into the canvas editor upstream and bypasses this node.",
            inputs=[
                CanvasType.Input("canvas", tooltip="The canvas to add the region to (its other regions are kept)."),
                io.Mask.Input("mask", tooltip="One mask with the canvas's aspect ratio, e.g. from Pakati Attention Mask."),
                io.String.Input(
                    "name", default="from mask", tooltip="The new region's name (its id is made from it, unique on the canvas)."
                ),
                io.String.Input("prompt", multiline=True, default="", tooltip="The new region's prompt."),
                io.String.Input("negative", multiline=True, default="", tooltip="The new region's negative prompt (may be empty)."),
                io.Float.Input(
                    "strength", default=1.0, min=0.0, max=10.0, step=0.05, tooltip="The new region's weight against the base prompt."
                ),
                io.Float.Input(
                    "feather", default=16.0, min=0.0, max=512.0, step=0.5, tooltip="The new region's edge softness in canvas pixels."
                ),
                io.Float.Input(
                    "threshold", default=0.5, min=0.0, max=1.0, step=0.01, tooltip="Mask values at or above this are inside the region."
                ),
                io.Int.Input(
                    "max_points",
                    default=32,
                    min=3,
                    max=256,
                    tooltip="At most this many polygon vertices (the outline is simplified until it fits).",
                ),
            ],
            outputs=[
                CanvasType.Output(display_name="canvas", tooltip="The canvas with the new region on top."),
                io.String.Output(
                    display_name="region_json", tooltip="The new region as Region JSON (paste it into a canvas to edit it there)."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        canvas: Canvas,
        mask: torch.Tensor,
        name: str,
        prompt: str,
        negative: str,
        strength: float,
        feather: float,
        threshold: float,
        max_points: int,
    ) -> io.NodeOutput:
        node = node_name(cls)
        if mask.ndim == 3 and mask.shape[0] != 1:
            raise PakatiNodeError(node, "mask", f"a batch of {mask.shape[0]} masks: one region comes from one mask")
        m = mask.reshape(mask.shape[-2], mask.shape[-1]).detach().float().cpu().numpy()
        out, region = checked(
            node,
            "mask",
            lambda: add_mask_region(
                canvas,
                m,
                name=name,
                prompt=prompt,
                negative=negative,
                strength=strength,
                feather=feather,
                threshold=threshold,
                max_points=max_points,
            ),
            ("mask", "threshold", "max_points", "name", "prompt", "strength", "feather"),
        )
        # the front end's "Add to the Pakati Canvas" button puts the region into the editor upstream (web/js/pakati_canvas.js)
        return io.NodeOutput(out, json.dumps(region), ui={"pakati_region": [{"region": region, "width": out.width, "height": out.height}]})


class PakatiCanvasPreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiCanvasPreview",
            display_name="Pakati Canvas Preview",
            category="Pakati/canvas",
            description="Every region outlined, filled translucently and labelled, over an image or a grey board.",
            is_output_node=True,
            inputs=[
                CanvasType.Input("canvas", tooltip="A canvas from Pakati Canvas."),
                io.Image.Input("image", optional=True, tooltip="Optional image to draw on; the layout is scaled to it."),
                io.Float.Input("fill_opacity", default=0.35, min=0.0, max=1.0, step=0.05, tooltip="Opacity of each region's fill."),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The overlay.")],
        )

    @classmethod
    def execute(cls, canvas: Canvas, fill_opacity: float, image: torch.Tensor | None = None) -> io.NodeOutput:
        frames = [None] if image is None else [f.cpu().numpy() for f in image]
        out = torch.from_numpy(np.stack([draw_overlay(f, canvas, fill_opacity) for f in frames]))
        return io.NodeOutput(out, ui=ui.PreviewImage(out, cls=cls))


NODES = [PakatiCanvas, PakatiRegionMask, PakatiRegionFromMask, PakatiCanvasPreview]
