"""PakatiRegionControlNet: a ComfyUI ControlNet that acts inside one region only.

ComfyUI keeps ControlNets on the conditioning (``cond['control']``), chained through
``previous_controlnet``; the sampler asks the last one for ``get_control(...)`` once per
batch and adds the residual lists to the UNet's middle block and skip connections.
``RegionControl`` is a ``ControlBase`` in that chain: it holds a copy of the ControlNet the
loader gave (its model, caching and hint handling untouched: ComfyUI's own
``ControlNet.get_control`` computes the residuals), multiplies them by the region's mask at
each residual's grid (``pakati_core.regional.control``), and adds whatever the ControlNets
before it in the chain gave. So region ControlNets chain with each other and with ComfyUI's
ControlNetApplyAdvanced in either order, as Advanced-ControlNet's ``mask_optional`` does.
"""

from __future__ import annotations

import logging

import comfy.controlnet
import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.canvas import Canvas
from ..pakati_core.regional.control import ControlMask, mask_residuals, merge_residuals
from .common import CanvasType, PakatiNodeError, checked, mask_to_numpy, node_name

log = logging.getLogger("pakati")

NODE = "PakatiRegionControlNet"


class RegionControl(comfy.controlnet.ControlBase):
    """A ControlNet (any ``ControlBase``, hint already set) whose residuals are multiplied by a region's mask."""

    def __init__(self, inner: comfy.controlnet.ControlBase, mask: ControlMask):
        super().__init__()
        inner.set_previous_controlnet(None)
        self.inner, self.mask = inner, mask
        self.empty = mask.is_empty()
        # mirrored for ComfyUI code that reads these attributes along the chain (sampler_helpers walks extra_hooks)
        self.extra_hooks = inner.extra_hooks
        self.strength, self.timestep_percent_range = inner.strength, inner.timestep_percent_range
        self.cond_hint_original = inner.cond_hint_original
        self._checked_sizes: set[tuple[int, int]] = set()

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        previous = None
        if self.previous_controlnet is not None:
            previous = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options)
        if self.empty:
            return previous
        size = (int(x_noisy.shape[-1]), int(x_noisy.shape[-2]))
        if size not in self._checked_sizes:
            checked(NODE, "mask", lambda: self.mask.check_aspect(*size), ("mask", "canvas"))
            self._checked_sizes.add(size)
        mine = self.inner.get_control(x_noisy, t, cond, batched_number, transformer_options)
        if mine is None:  # outside its start/end percent
            return previous
        return merge_residuals(mask_residuals(mine, self.mask), previous)

    def pre_run(self, model, percent_to_timestep_function):
        super().pre_run(model, percent_to_timestep_function)
        self.inner.pre_run(model, percent_to_timestep_function)

    def cleanup(self):
        self.inner.cleanup()
        super().cleanup()

    def get_models(self):
        return super().get_models() + self.inner.get_models()

    def get_extra_hooks(self):
        return self.inner.get_extra_hooks() + (self.previous_controlnet.get_extra_hooks() if self.previous_controlnet is not None else [])

    def inference_memory_requirements(self, dtype):
        return super().inference_memory_requirements(dtype) + self.inner.inference_memory_requirements(dtype)

    def copy(self):
        c = RegionControl(self.inner.copy(), self.mask)
        c.previous_controlnet = self.previous_controlnet
        return c


def region_mask(node: str, canvas: Canvas | None, region: str, mask: torch.Tensor | None, exclusive: bool = False) -> ControlMask:
    """The region's ControlMask from a MASK (wins when given) or from a canvas region."""
    if mask is not None:
        m = mask_to_numpy(mask)
        if m.shape[0] > 1:
            log.warning("Pakati: %s uses the first of %d masks", node, m.shape[0])
        if not np.isfinite(m[0]).all():
            raise PakatiNodeError(node, "mask", "mask contains NaN or infinite values")
        return checked(node, "mask", lambda: ControlMask(mask=m[0], name="the mask"))
    if canvas is None:
        raise PakatiNodeError(
            node, "canvas", "connect a canvas (with a region name, id or index) or a mask: the ControlNet needs a region to act in"
        )
    index = checked(node, "region", lambda: canvas.index_of(region))
    return checked(
        node, "region", lambda: ControlMask(canvas=canvas, index=index, name=f"region '{canvas.regions[index].label}'", exclusive=exclusive)
    )


def apply_region_controlnet(
    positive,
    negative,
    control_net,
    image: torch.Tensor,
    mask: ControlMask,
    strength: float,
    start_percent: float,
    end_percent: float,
    vae=None,
):
    """ComfyUI's ControlNetApplyAdvanced with the ControlNet wrapped in a RegionControl (one per previous chain)."""
    hint = image.movedim(-1, 1)
    made: dict = {}
    out = []
    for conditioning in (positive, negative):
        entries = []
        for cond, extras in conditioning:
            d = extras.copy()
            previous = d.get("control", None)
            if previous not in made:
                inner = control_net.copy().set_cond_hint(hint, strength, (start_percent, end_percent), vae=vae)
                made[previous] = RegionControl(inner, mask).set_previous_controlnet(previous)
            d["control"] = made[previous]
            d["control_apply_to_uncond"] = False
            entries.append([cond, d])
        out.append(entries)
    return out[0], out[1]


class PakatiRegionControlNet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Pakati Region ControlNet",
            category="Pakati/regions",
            description="Apply a ControlNet inside one region only: its residuals are multiplied by the region's mask at every "
            "resolution they enter the UNet (feathered edges stay soft). Chain several (different models or hints) and ComfyUI's "
            "Apply ControlNet on the same conditioning; one sampler run, any sampler.",
            inputs=[
                io.Conditioning.Input(
                    "positive", tooltip="The positive conditioning (e.g. the base prompt from Pakati Regional Conditioning)."
                ),
                io.Conditioning.Input("negative", tooltip="The negative conditioning."),
                io.ControlNet.Input("control_net", tooltip="A ControlNet from Load ControlNet Model (any ControlNet ComfyUI loads)."),
                io.Image.Input(
                    "image",
                    tooltip="The control hint (pose, depth, edges...) for the whole image; "
                    "it is resized to the latent like ComfyUI's Apply ControlNet does.",
                ),
                io.Float.Input(
                    "strength", default=1.0, min=0.0, max=10.0, step=0.01, tooltip="The ControlNet's strength inside the region (0 = off)."
                ),
                io.Float.Input(
                    "start_percent",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.001,
                    tooltip="Fraction of the schedule where the ControlNet starts acting.",
                ),
                io.Float.Input(
                    "end_percent",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.001,
                    tooltip="Fraction of the schedule where the ControlNet stops acting.",
                ),
                CanvasType.Input(
                    "canvas", optional=True, tooltip="A canvas from Pakati Canvas; 'region' picks the region the ControlNet acts in."
                ),
                io.String.Input(
                    "region", default="0", optional=True, tooltip="With a canvas: the region's name, id, or 0-based index in z-order."
                ),
                io.Boolean.Input(
                    "exclusive",
                    default=False,
                    optional=True,
                    tooltip="With a canvas: leave out the regions stacked above this one "
                    "(e.g. a background ControlNet that must not act on the figure in front of it).",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Instead of a canvas region: where the ControlNet acts (white = full strength, soft edges blend). "
                    "Wins over the canvas.",
                ),
                io.Vae.Input("vae", optional=True, tooltip="For ControlNets that need a VAE (as in ComfyUI's Apply ControlNet)."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="The positive conditioning with the region ControlNet chained on."),
                io.Conditioning.Output(display_name="negative", tooltip="The negative conditioning with the region ControlNet chained on."),
            ],
        )

    @classmethod
    def validate_inputs(cls, start_percent: float | None = None, end_percent: float | None = None) -> bool | str:
        if start_percent is not None and end_percent is not None and start_percent > end_percent:
            return f"{NODE}: input 'start_percent': {start_percent} is after end_percent {end_percent}"
        return True

    @classmethod
    def execute(
        cls,
        positive,
        negative,
        control_net,
        image: torch.Tensor,
        strength: float,
        start_percent: float,
        end_percent: float,
        canvas: Canvas | None = None,
        region: str = "0",
        exclusive: bool = False,
        mask: torch.Tensor | None = None,
        vae=None,
    ) -> io.NodeOutput:
        node = node_name(cls)
        if control_net is None:
            raise PakatiNodeError(node, "control_net", "no ControlNet given")
        if start_percent > end_percent:
            raise PakatiNodeError(node, "start_percent", f"{start_percent} is after end_percent {end_percent}")
        if image.ndim != 4 or image.shape[-1] < 1:
            raise PakatiNodeError(node, "image", f"expected an IMAGE [batch, height, width, channels], got shape {tuple(image.shape)}")
        if not bool(torch.isfinite(image).all()):
            raise PakatiNodeError(node, "image", "the control hint contains NaN or infinite values")
        where = region_mask(node, canvas, region, mask, exclusive)
        if strength == 0:
            return io.NodeOutput(positive, negative)
        if where.is_empty():
            log.warning("Pakati: %s: %s covers nothing; the ControlNet will not act", node, where.name)
        pos, neg = apply_region_controlnet(positive, negative, control_net, image, where, strength, start_percent, end_percent, vae)
        return io.NodeOutput(pos, neg)


NODES = [PakatiRegionControlNet]
