"""Walking and patching ComfyUI's UNet: the one place that knows its block layout.

Cross-attention layers are keyed ``(block, id, index)`` as ComfyUI's ``patches_replace['attn2']``
keys them (``block`` is 'input', 'middle' or 'output'). The regional, capture and excite patches
find their layers, their grid levels and each call's token grid here, and install their
per-call ``attn2`` replaces through :func:`with_attn2_replaced`, which keeps whatever replace
another pack put there for them to wrap.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample

from ..pakati_core.regional import grid_shape

AttnKey = tuple[str, int, int]


def attn2_blocks(unet: torch.nn.Module) -> list[tuple[AttnKey, torch.nn.Module]]:
    """((block, id, index), attn2 module) of every cross-attention transformer, as ComfyUI's UNet names them."""
    found: list[tuple[AttnKey, torch.nn.Module]] = []
    groups = [("input", list(unet.input_blocks)), ("middle", [unet.middle_block]), ("output", list(unet.output_blocks))]
    for name, blocks in groups:
        for i, block in enumerate(blocks):
            for module in block:
                tblocks = getattr(module, "transformer_blocks", None)
                if tblocks is not None:
                    found += [((name, i, j), tb.attn2) for j, tb in enumerate(tblocks) if getattr(tb, "attn2", None) is not None]
    return found


def attn2_block_keys(unet: torch.nn.Module) -> list[AttnKey]:
    """(block, id, index) of every cross-attention transformer, as ComfyUI's UNet names them."""
    return [key for key, _ in attn2_blocks(unet)]


def block_levels(unet: torch.nn.Module) -> dict[tuple[str, int, int], int]:
    """How many times the UNet has halved the grid at each cross-attention block (found from its Down/Upsample modules)."""
    levels: dict[str, list[int]] = {"input": [], "output": []}
    level = 0
    for block in unet.input_blocks:
        levels["input"].append(level)
        if any(isinstance(m, Downsample) for m in block.modules()):
            level += 1
    middle = level
    for block in unet.output_blocks:
        levels["output"].append(level)
        if any(isinstance(m, Upsample) for m in block.modules()):
            level -= 1
    return {key: (middle if key[0] == "middle" else levels[key[0]][key[1]]) for key, _ in attn2_blocks(unet)}


def call_grid(extra_options: dict, tokens: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) token grid of an attn2 call: ComfyUI's activations shape, else derived from the latent size."""
    shape = extra_options.get("activations_shape")
    if shape is not None and len(shape) == 4 and shape[2] * shape[3] == tokens:
        return int(shape[2]), int(shape[3])
    return grid_shape(latent_hw, tokens)


def in_schedule_range(model, sigma: torch.Tensor, start_percent: float, end_percent: float) -> bool:
    """Whether this model call's sigma lies in the start/end percent of the schedule (both patches use it)."""
    if start_percent <= 0.0 and end_percent >= 1.0:
        return True
    ms = model.model_sampling
    hi, lo = ms.percent_to_sigma(start_percent), ms.percent_to_sigma(end_percent)
    return lo <= float(sigma.flatten()[0]) <= hi


def with_replaced(transformer_options: dict, patch: str, keys, make: Callable[[tuple, object], object]) -> dict:
    """A copy of ``transformer_options`` whose ``patches_replace[patch]`` entry at each key is ``make(key, inner)``,
    where ``inner`` is the replace already there for that key (or its first two parts, ComfyUI's ``(block, id)``
    form of an ``attn2`` key), None where there is none. The caller's options and the model's own patch dicts are
    left untouched (per-call patching). The UNet's ``attn2`` and Flux's ``dit`` blocks are both patched here."""
    options = dict(transformer_options)
    replace = dict(options.get("patches_replace", {}))
    table = dict(replace.get(patch, {}))
    for key in keys:
        table[key] = make(key, table.get(key, table.get(key[:2])))
    replace[patch] = table
    options["patches_replace"] = replace
    return options


def with_attn2_replaced(transformer_options: dict, keys, make: Callable[[AttnKey, object], object]) -> dict:
    """:func:`with_replaced` for the UNet's cross-attention (``attn2``) layers."""
    return with_replaced(transformer_options, "attn2", keys, make)
