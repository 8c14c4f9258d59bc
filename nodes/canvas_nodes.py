"""Canvas nodes: the Region JSON widget, masks from regions, and an overlay preview."""
from __future__ import annotations

import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..pakati_core.canvas import Canvas, exclusive_masks
from ..pakati_core.preview import draw_overlay
from .common import CanvasType, canvas_validation_error, checked, node_name, parse_canvas

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
                io.Int.Input("width", default=1024, min=64, max=16384, step=8, tooltip="Canvas width in pixels (a multiple of 8). Regions drawn at another size are rescaled."),
                io.Int.Input("height", default=1024, min=64, max=16384, step=8, tooltip="Canvas height in pixels (a multiple of 8)."),
                io.String.Input("regions", default=EMPTY_REGIONS, multiline=True, tooltip="Region JSON v1: {version, width, height, regions:[{id, name, shape: polygon|rect, points, prompt, negative, strength, feather, seed, locked}]}. Drawn by the canvas editor."),
                io.Image.Input("background", optional=True, tooltip="Optional image shown behind the regions in the editor, so you can draw over what you have."),
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
                io.Float.Input("feather", default=-1.0, min=-1.0, max=512.0, step=0.5, tooltip="Edge softness in canvas pixels; -1 uses the region's own feather."),
                io.Boolean.Input("exclusive", default=False, tooltip="Subtract the regions stacked above this one (what the sampler uses where regions overlap)."),
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


NODES = [PakatiCanvas, PakatiRegionMask, PakatiCanvasPreview]
