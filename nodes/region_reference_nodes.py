"""PakatiReferenceImageMask: one of Pakati's references as the image + attention mask the IP-Adapter nodes take.

A PakatiReference made with a canvas region carries that region as its mask; an IP-Adapter node
(cubiq's IPAdapterAdvanced ``image`` and ``attn_mask``) given this pair applies the reference inside
the region only. The IP-Adapter resizes the mask to each attention layer's grid itself.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.canvas import Canvas
from .common import CanvasType, PakatiNodeError, checked, node_name
from .refine_nodes import ReferencesType

log = logging.getLogger("pakati")


class PakatiReferenceImageMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiReferenceImageMask",
            display_name="Pakati Reference Image + Mask",
            category="Pakati/regions",
            description="One reference from Pakati Reference as an IMAGE and a MASK for an IP-Adapter node (e.g. IPAdapterAdvanced's "
            "image and attn_mask): the reference acts inside the region it was attached to. "
            "With a canvas, the region is taken from it instead.",
            inputs=[
                ReferencesType.Input("references", tooltip="References from Pakati Reference (made with a canvas and region, or a mask)."),
                io.Int.Input("index", default=0, min=0, max=4096, tooltip="Which reference of the chain (0 = the first added)."),
                CanvasType.Input(
                    "canvas",
                    optional=True,
                    tooltip="Optional: take the mask from this canvas's region instead of the reference's own mask.",
                ),
                io.String.Input("region", default="", optional=True, tooltip="With a canvas: the region's name, id or index."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The reference image (for the IP-Adapter's image input)."),
                io.Mask.Output(
                    display_name="attn_mask",
                    tooltip="Where the reference applies (for the IP-Adapter's attn_mask); all white when the reference has no region.",
                ),
            ],
        )

    @classmethod
    def execute(cls, references: tuple, index: int, canvas: Canvas | None = None, region: str = "") -> io.NodeOutput:
        node = node_name(cls)
        refs = tuple(references or ())
        if not refs:
            raise PakatiNodeError(node, "references", "no references given")
        if not 0 <= index < len(refs):
            raise PakatiNodeError(
                node, "index", f"{index} is out of range: the chain holds {len(refs)} reference(s) (0 to {len(refs) - 1})"
            )
        ref = refs[index]
        image = torch.from_numpy(np.array(ref.image, dtype=np.float32))[None]  # a copy: references are read-only
        if canvas is not None and region.strip():
            i = checked(node, "region", lambda: canvas.index_of(region.strip()))
            mask = canvas.rasterize(i)
        elif canvas is not None:
            raise PakatiNodeError(node, "region", "a canvas is connected but no region is named")
        elif ref.mask is not None:
            mask = ref.mask
        else:
            log.info("Pakati: %s: reference %d has no region; its mask covers the whole image", node, index)
            mask = np.ones(ref.image.shape[:2], np.float32)
        if not (np.asarray(mask) > 0).any():
            raise PakatiNodeError(node, "region", "the region covers nothing: the reference would never apply")
        return io.NodeOutput(image, torch.from_numpy(np.array(mask, dtype=np.float32))[None])


NODES = [PakatiReferenceImageMask]
