"""Host-test helpers for regional prompting: attn2 block keys and a tiny ControlNet from ComfyUI's classes."""

from __future__ import annotations

import torch


def attn2_keys(model) -> list[tuple[str, int, int]]:
    """(block, id, index) of every cross-attention transformer block of a ModelPatcher's UNet."""
    from conftest import loaded_pack

    return loaded_pack().nodes.unet.attn2_block_keys(model.model.diffusion_model)


def attn2_modules(model) -> dict[tuple, torch.nn.Module]:
    """(block, id, index) -> BasicTransformerBlock, walking the UNet independently of the pack."""
    unet = model.model.diffusion_model
    out = {}
    for name, blocks in (("input", unet.input_blocks), ("middle", [unet.middle_block]), ("output", unet.output_blocks)):
        for i, block in enumerate(blocks):
            for module in block:
                for j, tb in enumerate(getattr(module, "transformer_blocks", [])):
                    out[(name, i, j)] = tb
    return out


def tiny_controlnet(seed: int = 21):
    """A real comfy.controlnet.ControlNet over a tiny cldm.ControlNet with seeded random weights (pakati_test_nodes builds it)."""
    from pakati_test_nodes.tiny_sdxl import tiny_controlnet as build

    return build(seed)
