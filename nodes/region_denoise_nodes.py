"""PakatiRegionDenoise: the canvas's per-region img2img denoise as a MASK for ComfyUI's DifferentialDiffusion."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.canvas import Canvas
from ..pakati_core.regional.guidance import denoise_map
from .common import CanvasType, checked, node_name


class PakatiRegionDenoise(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiRegionDenoise",
            display_name="Pakati Region Denoise",
            category="Pakati/regions",
            description="Per-pixel img2img denoise strength from the regions' 'denoise' fields (feathered; locked regions 0). "
            "Feed it to SetLatentNoiseMask and sample with a model through DifferentialDiffusion (KSampler denoise 1.0): "
            "a region at 0.2 barely changes, one at 1.0 is redrawn. Pakati Compose Regions pastes locked regions back exactly.",
            inputs=[
                CanvasType.Input("canvas", tooltip="The regions, from Pakati Canvas (each may have its own denoise, 0 to 1; empty = 1.0)."),
                io.Float.Input("default_denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="The denoise where no region is."),
            ],
            outputs=[io.Mask.Output(display_name="mask", tooltip="Denoise strength per pixel at canvas size, for SetLatentNoiseMask.")],
        )

    @classmethod
    def execute(cls, canvas: Canvas, default_denoise: float) -> io.NodeOutput:
        m = checked(node_name(cls), "default_denoise", lambda: denoise_map(canvas, default=default_denoise))
        return io.NodeOutput(torch.from_numpy(np.ascontiguousarray(m))[None])


NODES = [PakatiRegionDenoise]
