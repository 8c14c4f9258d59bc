"""Tiny SDXL-class MODEL, CLIP and VAE built from ComfyUI's own classes with seeded random weights.

Test-only: no pretrained weights can be downloaded here, so the real ComfyUI code paths
(BaseModel, ModelPatcher, SDXL text encoders and tokenizers, VAE, samplers) run on a model
small enough to sample in seconds on a CPU.
"""

from __future__ import annotations

import functools

import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.sdxl_clip
import comfy.supported_models
import comfy.supported_models_base
import comfy.taesd.taesd
import torch

UNET_CONFIG = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "adm_in_channels": 2816,
    "in_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1, 1],
    "transformer_depth": [0, 1, 1],
    "transformer_depth_output": [0, 0, 1, 1, 1, 1],
    "channel_mult": [1, 2, 2],
    "transformer_depth_middle": 1,
    "use_linear_in_transformer": True,
    "context_dim": 2048,
    "num_head_channels": 16,
}

CLIP_OPTIONS = {
    "clip_l_model_config": {"num_hidden_layers": 3, "intermediate_size": 256},
    "clip_g_model_config": {"num_hidden_layers": 3, "intermediate_size": 256},
}


def _init_(module: torch.nn.Module, seed: int, scale: float = 0.02) -> None:
    """Set every parameter: norms to 1/0, everything else small seeded noise.

    ComfyUI creates text-encoder weights uninitialised, and large random UNet weights
    overflow the latents, so every tensor is set explicitly.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.device.type == "meta":
                continue
            lname = name.lower()
            if ("norm" in lname or "ln_" in lname or "layer_norm" in lname) and p.ndim == 1:
                p.fill_(1.0 if lname.endswith("weight") else 0.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype) * scale)


def build_model(
    seed: int = 0, model_channels: int = 32, weight_dtype: torch.dtype = torch.float32, compute_dtype: torch.dtype | None = None
) -> comfy.model_patcher.ModelPatcher:
    """A random-weight SDXL-class model; ``weight_dtype`` fp16 with ``compute_dtype`` fp32 gives
    ComfyUI's manual-cast layers (weights cast at every call), as for fp8/fp16 checkpoints."""
    config = dict(UNET_CONFIG, model_channels=model_channels)
    sdxl = comfy.supported_models.SDXL(config)
    sdxl.set_inference_dtype(weight_dtype, compute_dtype)
    model = sdxl.get_model({})
    _init_(model.diffusion_model, seed)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=comfy.model_management.unet_offload_device())


def build_clip(seed: int = 1) -> comfy.sd.CLIP:
    target = comfy.supported_models_base.ClipTarget(comfy.sdxl_clip.SDXLTokenizer, comfy.sdxl_clip.SDXLClipModel)
    clip = comfy.sd.CLIP(target, model_options=dict(CLIP_OPTIONS))
    _init_(clip.cond_stage_model, seed)
    return clip


NAN_VAE_SCALE = 1e30  # decoder weights this large overflow float32 to inf, and inf - inf is NaN


def build_vae(seed: int = 2, nan_decoder: bool = False) -> comfy.sd.VAE:
    """The TAESD-shaped VAE; ``nan_decoder`` scales the decoder's convolutions until they overflow,
    so decoding gives NaN the way an SDXL VAE run in fp16 does (encoding stays finite)."""
    taesd = comfy.taesd.taesd.TAESD()
    _init_(taesd, seed, scale=0.05)
    if nan_decoder:
        with torch.no_grad():
            for name, p in taesd.taesd_decoder.named_parameters():
                if name.endswith("weight") and p.ndim == 4:
                    p.mul_(NAN_VAE_SCALE)
    return comfy.sd.VAE(sd=taesd.state_dict())


@functools.lru_cache(maxsize=8)
def tiny_sdxl(seed: int = 0, model_channels: int = 32, nan_vae: bool = False):
    """(MODEL, CLIP, VAE), cached per process so repeated loads cost nothing."""
    return build_model(seed, model_channels), build_clip(seed + 1), build_vae(seed + 2, nan_decoder=nan_vae)


@functools.lru_cache(maxsize=4)
def tiny_controlnet(seed: int = 21):
    """A real comfy.controlnet.ControlNet over a tiny cldm.ControlNet (the tiny UNet's shape) with seeded random weights."""
    import comfy.cldm.cldm
    import comfy.controlnet

    cfg = {k: v for k, v in UNET_CONFIG.items() if k not in ("out_channels", "transformer_depth_output")}
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, dtype=torch.float32, **cfg)
    _init_(net, seed=seed, scale=0.05)
    device = comfy.model_management.get_torch_device()
    return comfy.controlnet.ControlNet(net, load_device=device, manual_cast_dtype=None)
