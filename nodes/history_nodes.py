"""Pakati Save Image: ComfyUI's own Save Image, plus one history run per saved image.

The saving is ComfyUI's ``SaveImage`` itself (same file names, counter, subfolders, preview,
PNG metadata). Afterwards, best effort, each image becomes a run in the user's history: the
canvas (wired in, else the PakatiCanvas the image depends on), region and text prompts, seeds
and sampler settings, the checkpoint name, the hash of the saved pixels, a thumbnail, the
seconds since the prompt was queued, and the run it was started from when the sidebar loaded
the canvas. A database that cannot be written is logged; the images are saved regardless.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.canvas import Canvas
from ..pakati_core.store import StoreError
from ..pakati_core.store.from_prompt import generation_fields
from .common import CanvasType, PakatiNodeError, node_name
from .persistence import executing_prompt_id, pakati_store, prompt_queued_at, user_fingerprint

log = logging.getLogger("pakati")


def saved_pixels(image: torch.Tensor) -> np.ndarray:
    """The frame as SaveImage writes it (8-bit, truncated), back in [0, 1]: its hash is the PNG's pixel hash."""
    i = 255.0 * image.detach().float().cpu().numpy()[..., :3]
    return np.clip(i, 0, 255).astype(np.uint8).astype(np.float32) / 255.0


class PakatiSaveImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiSaveImage",
            display_name="Pakati Save Image",
            category="Pakati",
            description="Saves the images to the ComfyUI output folder exactly like Save Image, and keeps each one as a run in the "
            "Pakati history (the sidebar's Pakati tab): canvas, prompts, seed, sampler settings, model, image hash and thumbnail.",
            is_output_node=True,
            inputs=[
                io.Image.Input("images", tooltip="The images to save."),
                io.String.Input(
                    "filename_prefix",
                    default="pakati",
                    tooltip="The prefix for the file to save. This may include formatting information such as "
                    "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.",
                ),
                CanvasType.Input(
                    "canvas",
                    optional=True,
                    tooltip="The canvas the images were made with (kept in the history). "
                    "Without it, the PakatiCanvas the images depend on is read from the workflow.",
                ),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    def fingerprint_inputs(cls, **_) -> str:
        """The runs belong to whoever queued the graph: another user queueing the same graph gets their own."""
        return user_fingerprint()

    @classmethod
    def execute(cls, images: torch.Tensor, filename_prefix: str, canvas: Canvas | None = None) -> io.NodeOutput:
        import nodes as comfy_nodes  # ComfyUI's nodes.py: its SaveImage does the saving

        node = node_name(cls)
        if images.ndim != 4 or images.shape[0] == 0:
            raise PakatiNodeError(node, "images", f"expected an IMAGE batch [B, H, W, C], got shape {tuple(images.shape)}")
        hidden = cls.hidden
        prompt = hidden.prompt if hidden is not None else None
        extra = hidden.extra_pnginfo if hidden is not None else None
        saved = comfy_nodes.SaveImage().save_images(images, filename_prefix, prompt=prompt, extra_pnginfo=extra)
        results = saved["ui"]["images"]
        cls._record(images, results, prompt, extra, hidden.unique_id if hidden is not None else None, canvas)
        return io.NodeOutput(ui={"images": results})

    @classmethod
    def _record(
        cls, images: torch.Tensor, results: list[dict], prompt: dict | None, extra: dict | None, node_id: str | None, canvas: Canvas | None
    ) -> None:
        """One history run per saved image, best effort: a failure is logged and the saved files stand."""
        node = node_name(cls)
        try:
            fields = generation_fields(
                prompt,
                node_id,
                (extra or {}).get("workflow") if isinstance(extra, dict) else None,
                canvas.to_dict() if canvas is not None else None,
            )
            store = pakati_store()
            hint = fields.pop("parent_hint")
            parent = hint if hint is not None and store.runs.get(hint, thumbnails=False) is not None else None
            prompt_id = executing_prompt_id()
            queued = prompt_queued_at(prompt_id)
            timings = {"since_queued_s": round(time.time() - queued, 3)} if queued else {}
            for i, (image, saved) in enumerate(zip(images, results)):
                if not torch.isfinite(image).all():
                    log.error(
                        "Pakati: image %d of this %s batch holds NaN or infinite values: saved as Save Image does, "
                        "not kept in the history (check the VAE and the sampler settings)",
                        i,
                        node,
                    )
                    continue
                params = dict(fields["params"], saved={k: saved.get(k) for k in ("filename", "subfolder", "type")})
                if len(results) > 1:
                    params["batch_index"] = i
                store.runs.add(
                    node,
                    image=saved_pixels(image),
                    canvas=fields["canvas"],
                    prompts=fields["prompts"],
                    seeds=fields["seeds"],
                    params=params,
                    model_name=fields["model_name"],
                    timings=timings,
                    prompt_id=prompt_id,
                    parent_id=parent,
                )
        except (StoreError, OSError, ValueError, TypeError) as e:  # StoreError covers a read-only, full or unreachable database
            log.error("Pakati: the history of this %s run was not recorded (the images are saved): %s", node, e)


NODES = [PakatiSaveImage]
