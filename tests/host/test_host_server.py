"""End to end through the real ComfyUI server: /object_info, /prompt, /history, /view."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.draw import polygon as sk_polygon

from comfy_client import PromptRejected

pytestmark = pytest.mark.host

POINTS = [[40, 30], [200, 60], [230, 220], [60, 180]]
REGIONS = json.dumps(
    {
        "version": 1,
        "width": 256,
        "height": 256,
        "regions": [{"id": "r1", "name": "blob", "shape": "polygon", "points": POINTS, "prompt": "a blob"}],
    }
)


def mask_prompt(regions: str = REGIONS) -> dict:
    return {
        "1": {"class_type": "PakatiCanvas", "inputs": {"width": 256, "height": 256, "regions": regions}},
        "2": {"class_type": "PakatiRegionMask", "inputs": {"canvas": ["1", 0], "region": "blob", "feather": 0.0, "exclusive": False}},
        "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "pakati_mask"}},
    }


def test_pack_loads_without_import_errors(comfy_server):
    log = comfy_server.log()
    timing = [line for line in log.splitlines() if "custom_nodes" in line and line.rstrip().endswith("/pakati")]
    assert timing, "the import-times table lists the pack"
    assert all("IMPORT FAILED" not in line for line in timing), timing
    assert not [line for line in log.splitlines() if "Cannot import" in line and "pakati" in line.lower()]


def test_object_info_lists_the_nodes_with_tooltips(comfy_server):
    info = comfy_server.get_json("/object_info")
    for name in ("PakatiCanvas", "PakatiRegionMask", "PakatiCanvasPreview"):
        node = info[name]
        assert node["category"].startswith("Pakati/")
        for section in ("required", "optional"):
            for input_name, spec in node["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{name}.{input_name}"
    assert info["PakatiCanvas"]["output"] == ["PAKATI_CANVAS"]


def test_region_mask_prompt_returns_the_polygon(comfy_server):
    entry = comfy_server.run(mask_prompt())
    (img,) = comfy_server.images(entry, "4")
    got = img[..., 0].astype(np.float32) / 255.0
    p = np.asarray(POINTS, float)
    rr, cc = sk_polygon(p[:, 1] - 0.5, p[:, 0] - 0.5, (256, 256))
    ref = np.zeros((256, 256), np.float32)
    ref[rr, cc] = 1
    assert ((got > 0.5) != (ref > 0.5)).mean() < 0.01
    interior = np.ones((3, 3))
    from scipy.ndimage import binary_erosion

    core = binary_erosion(ref > 0, interior, iterations=2)
    assert (got[core] == 1.0).all() and (got[binary_erosion(ref == 0, interior, iterations=2)] == 0.0).all()


def test_bad_regions_json_is_rejected_at_queue_time(comfy_server):
    bad = json.dumps(
        {
            "version": 1,
            "width": 256,
            "height": 256,
            "regions": [{"id": "a", "shape": "polygon", "points": [[0, 0], [100, 100], [100, 0], [0, 100]]}],
        }
    )
    with pytest.raises(PromptRejected) as info:
        comfy_server.queue(mask_prompt(bad))
    text = json.dumps(info.value.body)
    assert "PakatiCanvas: input 'regions': regions[0].points: region 'a' is self-intersecting" in text


def test_tiny_model_graph_runs_on_the_server(comfy_server):
    prompt = {
        "1": {"class_type": "PakatiTestTinySDXL", "inputs": {"seed": 0, "model_channels": 32}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red boat"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "seed": 3,
                "steps": 4,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "pakati_tiny"}},
    }
    (img,) = comfy_server.images(comfy_server.run(prompt), "7")
    assert img.shape == (256, 256, 3)
