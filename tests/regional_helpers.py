"""Host-test helpers for regional prompting: attn2 block keys and a tiny ControlNet from ComfyUI's classes."""
from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=1)
def tiny_controlnet():
    """A real comfy.controlnet.ControlNet over a tiny cldm.ControlNet with seeded random weights."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.model_management
    from pakati_test_nodes.tiny_sdxl import UNET_CONFIG, _init_

    cfg = {k: v for k, v in UNET_CONFIG.items() if k not in ("out_channels", "transformer_depth_output")}
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, dtype=torch.float32, **cfg)
    _init_(net, seed=21, scale=0.05)
    device = comfy.model_management.get_torch_device()
    return comfy.controlnet.ControlNet(net, load_device=device, manual_cast_dtype=None)
