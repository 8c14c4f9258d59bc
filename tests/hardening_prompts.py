"""API prompts shared by the hardening server tests (NaN VAE, caching, soak).

Everything is tiny on purpose: 64-px photographs from ``skimage.data``, the tiny SDXL-class model
node, one or two sampler steps, so the server tests stay fast on a 2-core CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image

SIDE = 64
START, REF = "pakati_hardening_start.png", "pakati_hardening_reference.png"
POINTS = [[8, 6], [52, 12], [58, 54], [14, 46]]


def photo(name: str = "astronaut", side: int = SIDE) -> np.ndarray:
    a = getattr(skimage.data, name)()
    a = a if a.ndim == 3 else np.stack([a] * 3, -1)
    return cv2.resize(a[..., :3], (side, side), interpolation=cv2.INTER_AREA)


def provide_photos(input_dir: Path) -> None:
    """The reference (astronaut) and a softer, cooler start image, as the LoadImage files."""
    input_dir.mkdir(parents=True, exist_ok=True)
    ref = photo("astronaut")
    start = cv2.GaussianBlur(ref, (0, 0), 1.5).astype(np.float32)
    start[..., 2] *= 0.7
    Image.fromarray(ref).save(input_dir / REF)
    Image.fromarray(start.round().astype(np.uint8)).save(input_dir / START)


def tiny(nan_vae: bool = False) -> dict:
    return {"class_type": "PakatiTestTinySDXL", "inputs": {"seed": 0, "model_channels": 32, "nan_vae": nan_vae}}


def canvas_json(points=POINTS, side: int = SIDE) -> str:
    return json.dumps(
        {
            "version": 1,
            "width": side,
            "height": side,
            "regions": [{"id": "r1", "name": "blob", "shape": "polygon", "points": points, "prompt": "a blob", "feather": 0}],
        }
    )


BAD_LAYOUT = json.dumps(
    {
        "version": 1,
        "width": SIDE,
        "height": SIDE,
        "regions": [{"id": "a", "shape": "polygon", "points": [[0, 0], [40, 40], [40, 0], [0, 40]]}],
    }
)


def mask_prompt(regions: str | None = None, prefix: str = "pakati_h_mask") -> dict:
    """Canvas -> region mask -> SaveImage (no model)."""
    return {
        "1": {"class_type": "PakatiCanvas", "inputs": {"width": SIDE, "height": SIDE, "regions": regions or canvas_json()}},
        "2": {"class_type": "PakatiRegionMask", "inputs": {"canvas": ["1", 0], "region": "0", "feather": 0.0, "exclusive": False}},
        "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def regional_prompt(seed: int, regions: str | None = None, steps: int = 1, prefix: str = "pakati_h_regional") -> dict:
    """Canvas -> regional conditioning -> apply regions -> KSampler -> VAEDecode -> SaveImage."""
    return {
        "1": tiny(),
        "2": {"class_type": "PakatiCanvas", "inputs": {"width": SIDE, "height": SIDE, "regions": regions or canvas_json()}},
        "3": {
            "class_type": "PakatiRegionalConditioning",
            "inputs": {"clip": ["1", 1], "canvas": ["2", 0], "base_prompt": "a landscape", "base_negative": ""},
        },
        "4": {
            "class_type": "PakatiApplyRegions",
            "inputs": {
                "model": ["1", 0],
                "regions": ["3", 0],
                "base_weight": 0.3,
                "auto_negative": 0.0,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        },
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIDE, "height": SIDE, "batch_size": 1}},
        "6": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["4", 0],
                "positive": ["3", 1],
                "negative": ["3", 2],
                "latent_image": ["5", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 4.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": prefix}},
    }


def learn_prompt(nan_vae: bool = False, seed: int = 0, steps: int = 1, strategies: str = "center_out", attempts: int = 2) -> dict:
    """LoadImage -> PakatiLearnReference (the understanding store under the user directory)."""
    return {
        "1": tiny(nan_vae),
        "2": {"class_type": "LoadImage", "inputs": {"image": REF}},
        "3": {
            "class_type": "PakatiLearnReference",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "vae": ["1", 2],
                "image": ["2", 0],
                "description": "an astronaut",
                "strategies": strategies,
                "levels": 1,
                "attempts": attempts,
                "seed": seed,
                "steps": steps,
                "cfg": 4.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "negative": "",
                "max_side": SIDE,
                "force": False,
            },
        },
    }


def refine_prompt(
    nan_vae: bool = False,
    seed: int = 0,
    steps: int = 1,
    max_passes: int = 1,
    learn: bool = False,
    target: float = 1.0,
    prefix: str = "pakati_h_refined",
) -> dict:
    """LoadImage x2 -> PakatiReference -> PakatiRefine (mask from a canvas rect) -> SaveImage."""
    rect = json.dumps(
        {
            "version": 1,
            "width": SIDE,
            "height": SIDE,
            "regions": [{"id": "r1", "name": "subject", "shape": "rect", "points": [[16, 16], [48, 48]], "prompt": "", "feather": 0}],
        }
    )
    return {
        "1": tiny(nan_vae),
        "2": {"class_type": "LoadImage", "inputs": {"image": START}},
        "3": {"class_type": "LoadImage", "inputs": {"image": REF}},
        "4": {
            "class_type": "PakatiReference",
            "inputs": {"image": ["3", 0], "aspect": "general", "description": "the look", "weight": 1.0},
        },
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "an astronaut"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "7": {"class_type": "PakatiCanvas", "inputs": {"width": SIDE, "height": SIDE, "regions": rect}},
        "8": {
            "class_type": "PakatiRefine",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "vae": ["1", 2],
                "image": ["2", 0],
                "positive": ["5", 0],
                "negative": ["6", 0],
                "references": ["4", 0],
                "max_passes": max_passes,
                "target": target,
                "strategy": "adaptive",
                "seed": seed,
                "steps": steps,
                "cfg": 4.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "canvas": ["7", 0],
                "region": "subject",
                "learn": learn,
            },
        },
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


def delta_of_decoded_prompt(nan_vae: bool = True) -> dict:
    """A photo through VAE encode/decode, then PakatiDeltaAnalysis against the reference."""
    return {
        "1": tiny(nan_vae),
        "2": {"class_type": "LoadImage", "inputs": {"image": START}},
        "3": {"class_type": "LoadImage", "inputs": {"image": REF}},
        "4": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "PakatiReference", "inputs": {"image": ["3", 0], "aspect": "general", "description": "", "weight": 1.0}},
        "7": {"class_type": "PakatiDeltaAnalysis", "inputs": {"image": ["5", 0], "references": ["6", 0]}},
    }


def error_text(status: dict) -> str:
    """The exception message of a failed prompt, from its /history status messages."""
    for kind, body in status.get("messages", []):
        if kind == "execution_error":
            return f"{body.get('node_type')}: {body.get('exception_message')}"
    return json.dumps(status)
