"""A tiny CLIP-vision model (ComfyUI's own classes) and a random IP-Adapter checkpoint in cubiq's
ComfyUI_IPAdapter_plus format, sized for the tiny SDXL-class UNet. The checkpoint part imports torch only (the server fixture writes it
to a file before any ComfyUI module is imported in the test process).

The checkpoint is an SDXL "standard" IP-Adapter as that pack reads it (``utils.ipadapter_model_loader``,
``IPAdapterPlus.ipadapter_execute``): ``image_proj.proj`` / ``image_proj.norm`` (ImageProjModel, 4 tokens
of 2048) and ``ip_adapter.<n>.to_k_ip.weight`` / ``<n>.to_v_ip.weight`` ([inner_dim, 2048]) for the 70
odd ``n`` the pack numbers SDXL's cross-attention layers with. The tiny UNet's cross-attention layers
are all 64 wide, so every pair is [64, 2048].
"""

from __future__ import annotations

import functools
import json
import os
import tempfile

import torch

CLIP_VISION_CONFIG = {
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "hidden_act": "quick_gelu",
    "hidden_size": 64,
    "image_size": 224,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "layer_norm_eps": 1e-05,
    "model_type": "clip_vision_model",
    "num_attention_heads": 4,
    "num_channels": 3,
    "num_hidden_layers": 3,
    "patch_size": 32,
    "projection_dim": 32,
    "torch_dtype": "float32",
}
SDXL_IP_LAYERS = 70  # cross-attention layers of SDXL as the pack counts them (module keys 1, 3, ..., 139)
TINY_INNER_DIM = 64


@functools.lru_cache(maxsize=4)
def tiny_clip_vision(seed: int = 31):
    """comfy.clip_vision.ClipVisionModel (CLIPVisionModelProjection) with a 3-layer, 64-wide config and seeded weights."""
    import comfy.clip_vision

    from .tiny_sdxl import _init_

    fd, path = tempfile.mkstemp(suffix=".json", prefix="pakati_tiny_clip_vision_")
    with os.fdopen(fd, "w") as f:
        json.dump(CLIP_VISION_CONFIG, f)
    try:
        model = comfy.clip_vision.ClipVisionModel(path)
    finally:
        os.unlink(path)
    _init_(model.model, seed, scale=0.05)
    return model


def tiny_ipadapter_state_dict(seed: int = 41, scale: float = 0.05) -> dict[str, torch.Tensor]:
    """The flat safetensors state dict (``image_proj.*``, ``ip_adapter.*``) of a random SDXL IP-Adapter for the tiny UNet."""
    g = torch.Generator().manual_seed(seed)
    tokens, cross = 4, 2048
    sd = {
        "image_proj.proj.weight": torch.randn(tokens * cross, CLIP_VISION_CONFIG["projection_dim"], generator=g) * scale,
        "image_proj.proj.bias": torch.randn(tokens * cross, generator=g) * scale,
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    for i in range(SDXL_IP_LAYERS):
        n = 2 * i + 1
        for kv in ("k", "v"):
            sd[f"ip_adapter.{n}.to_{kv}_ip.weight"] = torch.randn(TINY_INNER_DIM, cross, generator=g) * scale
    return sd


def tiny_ipadapter(seed: int = 41) -> dict:
    """The same checkpoint as the pack's loader returns it: ``{"image_proj": {...}, "ip_adapter": {...}}``."""
    out: dict = {"image_proj": {}, "ip_adapter": {}}
    for key, value in tiny_ipadapter_state_dict(seed).items():
        part, rest = key.split(".", 1)
        out[part][rest] = value
    return out
