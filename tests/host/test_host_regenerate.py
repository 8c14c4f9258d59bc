"""Region-only regeneration through ComfyUI: the nodes with real samplers, and the workflow on the real server."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from pakati_core.canvas import Canvas
from pakati_core.regenerate import crop_region, regeneration_mask

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
SIZE = 128


def astronaut(size: int = SIZE) -> np.ndarray:
    return cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def as_image(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255.0)[None]


def ellipse(cx: int, cy: int, ax: int, ay: int, size: int = SIZE) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    cv2.ellipse(m, (cx, cy), (ax, ay), 0, 0, 360, 1.0, -1)
    return m


def run(comfy, name: str, **inputs):
    return comfy.NODE_CLASS_MAPPINGS[name].execute(**inputs).result


CROP_DEFAULTS = dict(context=16, target="keep", width=1024, height=1024, grow=4, feather=6.0)


def encode_text(clip, text):
    tokens = clip.tokenize(text)
    return clip.encode_from_tokens_scheduled(tokens)


def sample(comfy, model, positive, negative, latent, seed=3, steps=2):
    return comfy.common_ksampler(model, seed, steps, 5.0, "euler", "normal", positive, negative, latent, denoise=1.0)[0]


def test_crop_noise_mask_ksampler_stitch_keeps_outside_pixels(comfy, tiny):
    model, clip, vae = tiny
    image = as_image(astronaut())
    mask = torch.from_numpy(ellipse(64, 50, 22, 16))[None]
    crop_img, crop_mask, stitch, sub_canvas, seed = run(comfy, "PakatiCropRegion", image=image, mask=mask, **CROP_DEFAULTS)
    assert crop_img.shape[1] % 8 == 0 and crop_img.shape[2] % 8 == 0 and crop_mask.shape == crop_img.shape[:3]
    assert type(sub_canvas).__name__ == "Canvas" and (sub_canvas.width, sub_canvas.height) == (crop_img.shape[2], crop_img.shape[1])
    latent = comfy.VAEEncode().encode(vae, crop_img)[0]
    latent = comfy.SetLatentNoiseMask().set_mask(latent, crop_mask)[0]
    pos, neg = encode_text(clip, "a red helmet"), encode_text(clip, "")
    decoded = comfy.VAEDecode().decode(vae, sample(comfy, model, pos, neg, latent))[0]
    (out,) = run(comfy, "PakatiStitchRegion", stitch=stitch, image=decoded, colour_match=True)
    blend = stitch.blends[0]
    src = image[0].numpy()
    got = out[0].numpy()
    assert np.array_equal(got[blend == 0], src[blend == 0])
    assert np.abs(got - src).max(-1)[mask[0].numpy() >= 1].mean() > 0.01


def test_inpaint_conditioning_and_differential_diffusion_with_a_batch(comfy, tiny):
    from comfy_extras.nodes_differential_diffusion import DifferentialDiffusion

    model, clip, vae = tiny
    frames = astronaut()
    image = torch.cat([as_image(frames), as_image(frames[:, ::-1].copy())])
    masks = torch.from_numpy(np.stack([ellipse(40, 40, 14, 12), ellipse(90, 95, 18, 14)]))
    crop_img, crop_mask, stitch, _, _ = run(comfy, "PakatiCropRegion", image=image, mask=masks, **CROP_DEFAULTS)
    assert crop_img.shape[0] == 2 and stitch.boxes[0] != stitch.boxes[1]
    pos, neg = encode_text(clip, "a golden visor"), encode_text(clip, "")
    pos, neg, latent = comfy.InpaintModelConditioning().encode(pos, neg, crop_img, vae, crop_mask, True)
    dd_model = DifferentialDiffusion.execute(model).result[0]
    decoded = comfy.VAEDecode().decode(vae, sample(comfy, dd_model, pos, neg, latent, seed=5))[0]
    (out,) = run(comfy, "PakatiStitchRegion", stitch=stitch, image=decoded, colour_match=False)
    assert out.shape == image.shape
    for i in range(2):
        outside = stitch.blends[i] == 0
        assert np.array_equal(out[i].numpy()[outside], image[i].numpy()[outside])
        assert np.abs(out[i].numpy() - image[i].numpy()).max(-1)[masks[i].numpy() >= 1].mean() > 0.01


def test_canvas_region_seed_is_reproducible_and_locked_region_is_refused(comfy, tiny):
    model, clip, vae = tiny
    canvas = Canvas.from_json(
        json.dumps(
            {
                "version": 1,
                "width": 256,
                "height": 256,
                "regions": [
                    {"id": "a", "name": "hat", "shape": "rect", "points": [[80, 20], [180, 110]], "seed": 42},
                    {"id": "b", "name": "face", "shape": "rect", "points": [[90, 100], [170, 170]], "locked": True},
                ],
            }
        )
    )
    image = as_image(astronaut())
    outs = []
    for _ in range(2):
        crop_img, crop_mask, stitch, sub, seed = run(comfy, "PakatiCropRegion", image=image, canvas=canvas, region="hat", **CROP_DEFAULTS)
        assert seed == 42 and [r.id for r in sub.regions] == ["a", "b"]
        latent = comfy.SetLatentNoiseMask().set_mask(comfy.VAEEncode().encode(vae, crop_img)[0], crop_mask)[0]
        decoded = comfy.VAEDecode().decode(vae, sample(comfy, model, encode_text(clip, "a hat"), encode_text(clip, ""), latent, seed=seed))[
            0
        ]
        outs.append(run(comfy, "PakatiStitchRegion", stitch=stitch, image=decoded, colour_match=True)[0])
    assert torch.equal(outs[0], outs[1])
    face = slice(100 // 2, 170 // 2), slice(90 // 2, 170 // 2)  # the locked region at image scale
    assert torch.equal(outs[0][0][face], image[0][face])
    with pytest.raises(ValueError, match="PakatiCropRegion: input 'region': .*'face' is locked"):
        run(comfy, "PakatiCropRegion", image=image, canvas=canvas, region="face", **CROP_DEFAULTS)
    with pytest.raises(ValueError, match="PakatiCropRegion: input 'mask': .*mask is empty"):
        run(comfy, "PakatiCropRegion", image=image, mask=torch.zeros(1, SIZE, SIZE), **CROP_DEFAULTS)
    (composed,) = run(comfy, "PakatiComposeRegions", canvas=canvas, previous=image, regenerated=outs[0] * 0.0, regions="")
    assert torch.equal(composed[0][face], image[0][face]) and float(composed[0][20:40, 50:80].abs().max()) == 0.0


def workflow_for_tests(image_name: str) -> dict:
    prompt = json.loads((REPO / "workflows" / "api" / "region_regenerate.json").read_text())
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["class_type"], node["inputs"] = "PakatiTestTinySDXL", {"seed": 0, "model_channels": 32}
        if node["class_type"] == "LoadImage":
            node["inputs"]["image"] = image_name
        if node["class_type"] == "PakatiCropRegion":
            node["inputs"]["target"] = "keep"  # CPU speed; the workflow itself samples at SDXL native area
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = 3
    return prompt


def test_workflow_on_the_server_keeps_every_pixel_outside_the_band_after_png_round_trip(comfy_server):
    src = astronaut(256)
    (comfy_server.base / "input").mkdir(parents=True, exist_ok=True)
    Image.fromarray(src).save(comfy_server.base / "input" / "pakati_astronaut.png")
    prompt = workflow_for_tests("pakati_astronaut.png")
    save_id = next(k for k, v in prompt.items() if v["class_type"] == "PakatiSaveImage")
    entry = comfy_server.run(prompt)
    (got,) = comfy_server.images(entry, save_id)
    assert got.shape == src.shape and got.dtype == np.uint8
    crop_node = next(v for v in prompt.values() if v["class_type"] == "PakatiCropRegion")["inputs"]
    canvas_node = next(v for v in prompt.values() if v["class_type"] == "PakatiCanvas")["inputs"]
    canvas = Canvas.from_json(canvas_node["regions"])
    mask, keep = regeneration_mask(canvas, crop_node["region"], 256, 256)
    blend = crop_region(
        src.astype(np.float32) / 255.0,
        mask,
        context=crop_node["context"],
        mode="keep",
        grow=crop_node["grow"],
        feather=crop_node["feather"],
        keep_out=keep,
    ).stitch.blends[0]
    outside, inside = blend == 0, mask >= 1
    assert outside.mean() > 0.4 and inside.mean() > 0.1
    assert np.array_equal(got[outside], src[outside])  # exact uint8 equality outside mask + band
    assert (np.abs(got.astype(int) - src.astype(int)).max(-1)[inside] > 2).mean() > 0.5


def test_object_info_lists_the_region_nodes_with_tooltips(comfy_server):
    info = comfy_server.get_json("/object_info")
    for name in ("PakatiCropRegion", "PakatiStitchRegion", "PakatiComposeRegions"):
        node = info[name]
        assert node["category"] == "Pakati/regenerate"
        for section in ("required", "optional"):
            for input_name, spec in node["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{name}.{input_name}"
    assert info["PakatiCropRegion"]["output"] == ["IMAGE", "MASK", "PAKATI_STITCH", "PAKATI_CANVAS", "INT"]
    assert info["PakatiStitchRegion"]["input"]["required"]["stitch"][0] == "PAKATI_STITCH"
