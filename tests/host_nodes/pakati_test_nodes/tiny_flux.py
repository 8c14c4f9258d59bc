"""Tiny Flux-class MODEL, CLIP (T5-XXL-shaped + CLIP-L) and 16-channel VAE from ComfyUI's own classes.

Test-only, like ``tiny_sdxl``: ``comfy.supported_models.Flux`` with a small unet config
(few double and single blocks, small hidden size, RoPE axes consistent with the heads), the
real ``FluxTokenizer``/``FluxClipModel`` with shrunken T5 and CLIP-L configs, and ComfyUI's
TAESD with 16 latent channels (what ``comfy.sd.VAE`` builds for Flux's TAEF1). Every weight is
set from a seed (ComfyUI creates some uninitialised).
"""

from __future__ import annotations

import functools

import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models
import comfy.supported_models_base
import comfy.taesd.taesd
import comfy.text_encoders.flux
import torch

from .tiny_sdxl import _init_

TEXT_DIM = 64  # T5 d_model: Flux's context_in_dim
POOLED_DIM = 64  # CLIP-L hidden size: Flux's vec_in_dim


def unet_config(hidden_size: int = 64, depth: int = 2, depth_single_blocks: int = 2, num_heads: int = 4) -> dict:
    head = hidden_size // num_heads
    axes = [head - 2 * (head * 3 // 8), head * 3 // 8, head * 3 // 8]  # Flux: [16, 56, 56] for 128-wide heads
    return {
        "image_model": "flux",
        "in_channels": 16,
        "out_channels": 16,
        "vec_in_dim": POOLED_DIM,
        "context_in_dim": TEXT_DIM,
        "hidden_size": hidden_size,
        "mlp_ratio": 4.0,
        "num_heads": num_heads,
        "depth": depth,
        "depth_single_blocks": depth_single_blocks,
        "axes_dim": axes,
        "theta": 10000,
        "patch_size": 2,
        "qkv_bias": True,
        "guidance_embed": True,
    }


CLIP_OPTIONS = {
    "t5xxl_model_config": {"d_model": TEXT_DIM, "d_ff": 128, "d_kv": 16, "num_heads": 4, "num_layers": 2},
    "clip_l_model_config": {
        "hidden_size": POOLED_DIM,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "projection_dim": POOLED_DIM,
    },
}


def build_model(
    seed: int = 0, hidden_size: int = 64, depth: int = 2, depth_single_blocks: int = 2, num_heads: int = 4, scale: float = 0.05
) -> comfy.model_patcher.ModelPatcher:
    flux = comfy.supported_models.Flux(unet_config(hidden_size, depth, depth_single_blocks, num_heads))
    flux.set_inference_dtype(torch.float32, None)
    model = flux.get_model({})
    _init_(model.diffusion_model, seed, scale=scale)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=comfy.model_management.unet_offload_device())


def build_clip(seed: int = 1) -> comfy.sd.CLIP:
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.flux.FluxTokenizer, comfy.text_encoders.flux.flux_clip())
    clip = comfy.sd.CLIP(target, model_options=dict(CLIP_OPTIONS))
    _init_(clip.cond_stage_model, seed, scale=0.05)
    return clip


def build_vae(seed: int = 2) -> comfy.sd.VAE:
    taesd = comfy.taesd.taesd.TAESD(latent_channels=16)
    _init_(taesd, seed, scale=0.05)
    return comfy.sd.VAE(sd=taesd.state_dict())


@functools.lru_cache(maxsize=4)
def tiny_flux(seed: int = 0, hidden_size: int = 64, depth: int = 2, depth_single_blocks: int = 2):
    """(MODEL, CLIP, VAE), cached per process so repeated loads cost nothing."""
    return build_model(seed, hidden_size, depth, depth_single_blocks), build_clip(seed + 1), build_vae(seed + 2)
