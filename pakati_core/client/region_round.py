"""A region-only repair prompt built from the user's own workflow (their loader, LoRAs, ControlNets, sampler settings).

The user's workflow renders the whole canvas: ``PakatiCanvas`` → ``PakatiRegionalConditioning`` → … → ``KSampler``
(on an empty latent) → ``VAEDecode`` → a save node. :func:`region_workflow` turns a copy of it into a prompt
that redraws one region of an uploaded image:

    LoadImage → PakatiCropRegion (canvas + region; its cut canvas replaces the canvas everywhere it was used)
              → VAEEncode (the user's VAE) → SetLatentNoiseMask → the user's KSampler (its model, conditioning,
              steps, cfg, sampler and scheduler; denoise at most the repair's) → the user's VAEDecode
              → PakatiStitchRegion → SaveImage

so the region is sampled at its own resolution with the user's model chain and the regional prompts cut to
the crop, and every pixel outside the region's grown, feathered blend band comes back unchanged. The
nodes that saved or previewed the whole render are left out.
"""

from __future__ import annotations

from typing import Any

from ..store.from_prompt import is_link
from .errors import WorkflowError
from .workflow import CANVAS_NODE, Workflow

SAMPLER_NODE = "KSampler"
DECODE_NODE = "VAEDecode"
LOAD, CROP, ENCODE, NOISE_MASK, STITCH, SAVE = (
    "pakati_repair_load",
    "pakati_repair_crop",
    "pakati_repair_encode",
    "pakati_repair_mask",
    "pakati_repair_stitch",
    "pakati_repair_save",
)


def _consumers(prompt: dict, node_id: str, output: int | None = None) -> list[tuple[str, str]]:
    """(node id, input name) of every input linked to ``node_id`` (to its ``output`` when given)."""
    return [
        (nid, name)
        for nid, n in prompt.items()
        for name, v in n["inputs"].items()
        if is_link(v) and str(v[0]) == str(node_id) and (output is None or v[1] == output)
    ]


def region_workflow(
    wf: Workflow,
    *,
    canvas: Any,
    region: str,
    prompt: str | None,
    negative: str | None,
    seed: int,
    denoise: float,
    grow: int,
    feather: float,
    context: int,
    crop_mode: str,
    colour_match: bool = True,
) -> dict:
    """The API prompt that redraws ``region`` of the image uploaded to :data:`LOAD`; the result is saved by :data:`SAVE`.

    ``canvas`` (the replanned Region JSON, whose region prompt carries the repair's reweighting), ``prompt`` and
    ``negative`` (the base prompts) and ``seed`` go in as :meth:`Workflow.render` puts them in a whole render."""
    out = wf.render(canvas=canvas, prompt=prompt, negative=negative, seed=int(seed))
    samplers = wf.nodes_of(SAMPLER_NODE)
    if len(samplers) != 1 or not is_link(out[samplers[0]]["inputs"].get("latent_image")):
        raise WorkflowError(
            f"{wf.name}: a region-only repair needs exactly one {SAMPLER_NODE} with a linked latent_image "
            f"(found {len(samplers)}); use --repair whole for this workflow",
            "workflow",
        )
    sampler = samplers[0]
    decodes = [nid for nid, _ in _consumers(out, sampler, 0) if out[nid]["class_type"] == DECODE_NODE]
    if len(decodes) != 1 or not is_link(out[decodes[0]]["inputs"].get("vae")):
        raise WorkflowError(f"{wf.name}: the {SAMPLER_NODE}'s latent must go to one {DECODE_NODE} with a linked VAE", "workflow")
    decode = decodes[0]
    canvases = wf.canvas_nodes
    if len(canvases) != 1:
        raise WorkflowError(f"{wf.name}: a region-only repair needs exactly one {CANVAS_NODE} (found {len(canvases)})", "workflow")
    canvas_id = canvases[0]
    for nid, name in _consumers(out, canvas_id, 0):  # the regions, cut to the crop and scaled to its size
        out[nid]["inputs"][name] = [CROP, 3]
    for nid, _ in _consumers(out, decode, 0):  # the whole render's savers and previews
        if not _consumers(out, nid):
            del out[nid]
    ks = out[sampler]["inputs"]
    user_denoise = ks.get("denoise", 1.0)
    ks["latent_image"] = [NOISE_MASK, 0]
    ks["denoise"] = float(min(float(user_denoise) if not is_link(user_denoise) else 1.0, denoise))
    out[LOAD] = {"class_type": "LoadImage", "inputs": {"image": ""}, "_meta": {"title": "Pakati repair: image so far"}}
    out[CROP] = {
        "class_type": "PakatiCropRegion",
        "inputs": {
            "image": [LOAD, 0],
            "canvas": [canvas_id, 0],
            "region": region,
            "context": int(context),
            "target": crop_mode,
            "width": 1024,
            "height": 1024,
            "grow": int(grow),
            "feather": float(feather),
            "seed": int(seed),
        },
    }
    out[ENCODE] = {"class_type": "VAEEncode", "inputs": {"pixels": [CROP, 0], "vae": out[decode]["inputs"]["vae"]}}
    out[NOISE_MASK] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": [ENCODE, 0], "mask": [CROP, 1]}}
    out[STITCH] = {
        "class_type": "PakatiStitchRegion",
        "inputs": {"stitch": [CROP, 2], "image": [decode, 0], "colour_match": bool(colour_match)},
    }
    out[SAVE] = {"class_type": "SaveImage", "inputs": {"images": [STITCH, 0], "filename_prefix": "pakati_repair"}}
    return out
