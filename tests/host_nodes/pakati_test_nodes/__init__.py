"""Test-only ComfyUI custom node: a checkpoint loader that returns the tiny SDXL-class model.

Lives under tests/ and is linked into a throwaway ComfyUI base directory by the host tests;
it is never part of the Pakati pack's node mappings.
"""

from .tiny_flux import tiny_flux
from .tiny_ipadapter import tiny_clip_vision
from .tiny_sdxl import tiny_controlnet, tiny_sdxl


class PakatiTestTinySDXL:
    CATEGORY = "Pakati/testing"
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    DESCRIPTION = "Tiny random-weight SDXL-class MODEL/CLIP/VAE for tests (stands in for CheckpointLoaderSimple)."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "Weight seed."}),
                "model_channels": ("INT", {"default": 32, "min": 32, "max": 320, "step": 32, "tooltip": "UNet width."}),
            },
            "optional": {
                "nan_vae": (
                    "BOOLEAN",
                    {"default": False, "tooltip": "A VAE whose decoder weights overflow to NaN (as an SDXL VAE in fp16 does)."},
                ),
            },
        }

    def load(self, seed, model_channels, nan_vae=False):
        return tiny_sdxl(seed, model_channels, bool(nan_vae))


class PakatiTestTinyFlux:
    CATEGORY = "Pakati/testing"
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    DESCRIPTION = (
        "Tiny random-weight Flux-class MODEL, CLIP (T5 + CLIP-L) and 16-channel VAE for tests "
        "(stands in for UNETLoader, DualCLIPLoader and VAELoader)."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "Weight seed."}),
                "hidden_size": ("INT", {"default": 64, "min": 32, "max": 1024, "step": 32, "tooltip": "Transformer width."}),
                "depth": ("INT", {"default": 2, "min": 1, "max": 19, "tooltip": "Double-stream blocks."}),
                "depth_single_blocks": ("INT", {"default": 2, "min": 1, "max": 38, "tooltip": "Single-stream blocks."}),
            }
        }

    def load(self, seed, hidden_size, depth, depth_single_blocks):
        return tiny_flux(seed, hidden_size, depth, depth_single_blocks)


class PakatiTestTinyControlNet:
    CATEGORY = "Pakati/testing"
    FUNCTION = "load"
    RETURN_TYPES = ("CONTROL_NET",)
    DESCRIPTION = "Tiny random-weight ControlNet (comfy.cldm) matching the tiny SDXL UNet (stands in for ControlNetLoader)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 21, "min": 0, "max": 2**31 - 1, "tooltip": "Weight seed."})}}

    def load(self, seed):
        return (tiny_controlnet(seed),)


class PakatiTestTinyCLIPVision:
    CATEGORY = "Pakati/testing"
    FUNCTION = "load"
    RETURN_TYPES = ("CLIP_VISION",)
    DESCRIPTION = "Tiny random-weight CLIP vision model (comfy.clip_vision) (stands in for CLIPVisionLoader)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 31, "min": 0, "max": 2**31 - 1, "tooltip": "Weight seed."})}}

    def load(self, seed):
        return (tiny_clip_vision(seed),)


NODE_CLASS_MAPPINGS = {
    "PakatiTestTinySDXL": PakatiTestTinySDXL,
    "PakatiTestTinyControlNet": PakatiTestTinyControlNet,
    "PakatiTestTinyCLIPVision": PakatiTestTinyCLIPVision,
    "PakatiTestTinyFlux": PakatiTestTinyFlux,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PakatiTestTinySDXL": "Pakati test: tiny SDXL",
    "PakatiTestTinyControlNet": "Pakati test: tiny ControlNet",
    "PakatiTestTinyCLIPVision": "Pakati test: tiny CLIP vision",
    "PakatiTestTinyFlux": "Pakati test: tiny Flux",
}
