"""The pack inside real ComfyUI, in-process: its own loader, node schemas, node execution."""

from __future__ import annotations

import json
import logging

import pytest
import torch

pytestmark = pytest.mark.host

PAKATI_NODES = {"PakatiCanvas", "PakatiRegionMask", "PakatiCanvasPreview", "PakatiRegionLora", "PakatiRegionDenoise"}

TWO_REGIONS = json.dumps(
    {
        "version": 1,
        "width": 512,
        "height": 256,
        "regions": [
            {"id": "r1", "name": "sky", "shape": "polygon", "points": [[0, 0], [512, 0], [512, 100], [0, 120]], "prompt": "sky"},
            {"id": "r2", "name": "sun", "shape": "rect", "points": [[300, 20], [380, 100]], "prompt": "sun"},
        ],
    }
)


def test_pack_loads_through_comfyui_loader(comfy):
    assert PAKATI_NODES <= set(comfy.NODE_CLASS_MAPPINGS)
    assert "PakatiTestTinySDXL" in comfy.NODE_CLASS_MAPPINGS  # the test-only pack is separate
    for name in PAKATI_NODES:
        info = comfy.NODE_CLASS_MAPPINGS[name].GET_NODE_INFO_V1()
        assert info["category"].startswith("Pakati/")
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"


def run(comfy, name, **inputs):
    """Execute a V3 node the way ComfyUI's executor calls it; returns the NodeOutput."""
    return comfy.NODE_CLASS_MAPPINGS[name].execute(**inputs)


def make_canvas(comfy, regions=TWO_REGIONS, width=512, height=256):
    return run(comfy, "PakatiCanvas", width=width, height=height, regions=regions).result[0]


def test_region_mask_node_matches_core(comfy):
    canvas = make_canvas(comfy)
    (mask,) = run(comfy, "PakatiRegionMask", canvas=canvas, region="sun", feather=-1.0, exclusive=False).result
    assert mask.shape == (1, 256, 512)
    assert float(mask.sum()) == pytest.approx(80 * 80)
    (sky,) = run(comfy, "PakatiRegionMask", canvas=canvas, region="sky", feather=-1.0, exclusive=True).result
    assert float(sky[0, 50, 340]) == 0.0 and float(sky[0, 50, 100]) == 1.0


def test_canvas_preview_draws_every_region(comfy):
    canvas = make_canvas(comfy)
    image = torch.full((2, 128, 256, 3), 0.5)
    out = run(comfy, "PakatiCanvasPreview", canvas=canvas, image=image, fill_opacity=0.35)
    assert out.ui and out.ui.as_dict()["images"], "the overlay is shown on the node"
    (img,) = out.result
    assert img.shape == (2, 128, 256, 3)
    assert not torch.allclose(img[0, 10, 10], image[0, 10, 10])  # sky filled
    assert torch.allclose(img[0, 120, 10], image[0, 120, 10], atol=1 / 255)  # outside every region


def test_validate_inputs_names_the_field(comfy):
    cls = comfy.NODE_CLASS_MAPPINGS["PakatiCanvas"]
    bad = json.dumps({"version": 1, "width": 512, "height": 256, "regions": [{"id": "a", "shape": "polygon", "points": [[0, 0], [1, 1]]}]})
    msg = cls.validate_inputs(width=512, height=256, regions=bad)
    assert msg.startswith("PakatiCanvas: input 'regions': regions[0].points: a polygon needs at least 3 points")
    assert cls.validate_inputs(width=512, height=256, regions=TWO_REGIONS) is True


def test_region_mask_unknown_region_is_a_clear_error(comfy):
    canvas = make_canvas(comfy)
    with pytest.raises(ValueError, match=r"PakatiRegionMask: input 'region': region: no region named 'moon'"):
        run(comfy, "PakatiRegionMask", canvas=canvas, region="moon", feather=-1.0, exclusive=False)


def test_missing_optional_package_only_drops_its_nodes(comfy, caplog):
    from conftest import loaded_pack

    pack = loaded_pack().nodes
    with caplog.at_level(logging.WARNING, logger="pakati"):
        classes = pack.load_node_classes([(".canvas_nodes", {}), ("pakati_missing_dep_probe", {"openai_probe_absent": "openai"})])
    assert {c.__name__ for c in classes} == {"PakatiCanvas", "PakatiRegionMask", "PakatiRegionFromMask", "PakatiCanvasPreview"}
    assert "optional package 'openai_probe_absent' is missing; install it with: pip install openai" in caplog.text


def test_tiny_model_samples_on_cpu(comfy, tiny):
    model, clip, vae = tiny
    cond = clip.encode_from_tokens_scheduled(clip.tokenize("a lighthouse on a cliff"))
    assert cond[0][0].shape == (1, 77, 2048) and torch.isfinite(cond[0][0]).all()
    latent = {"samples": torch.zeros(1, 4, 32, 32)}
    (out,) = comfy.common_ksampler(model, 7, 4, 5.0, "euler", "normal", cond, cond, latent)
    (again,) = comfy.common_ksampler(model, 7, 4, 5.0, "euler", "normal", cond, cond, latent)
    assert torch.isfinite(out["samples"]).all()
    assert torch.equal(out["samples"], again["samples"])  # same seed, same latent
    image = vae.decode(out["samples"])
    assert image.shape == (1, 256, 256, 3) and torch.isfinite(image).all()
