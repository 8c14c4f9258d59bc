"""Per-region CFG (a spatial map in ComfyUI's sampler_cfg_function) and per-region denoise
(PakatiRegionDenoise driving ComfyUI's DifferentialDiffusion + SetLatentNoiseMask), through the real samplers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.host

W = H = 256


def layout(cfg_a=None, cfg_b=None, denoise_a=None, denoise_b=None, lock_c=False):
    regions = [
        {"id": "a", "name": "A", "shape": "rect", "points": [[0, 0], [128, 256]], "prompt": "a red apple", "feather": 0},
        {"id": "b", "name": "B", "shape": "rect", "points": [[128, 0], [256, 128]], "prompt": "a blue sea", "feather": 0},
    ]
    for r, cfg, dn in ((regions[0], cfg_a, denoise_a), (regions[1], cfg_b, denoise_b)):
        if cfg is not None:
            r["cfg"] = cfg
        if dn is not None:
            r["denoise"] = dn
    if lock_c:
        regions.append({"id": "c", "name": "C", "shape": "rect", "points": [[128, 128], [256, 256]], "prompt": "a rock", "locked": True})
    return json.dumps({"version": 1, "width": W, "height": H, "regions": regions})


def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


def regional(comfy, tiny, regions_json, model=None):
    base_model, clip, _ = tiny
    canvas = node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=regions_json).result[0]
    regions, pos, neg = (
        node(comfy, "PakatiRegionalConditioning")
        .execute(clip=clip, canvas=canvas, base_prompt="a landscape photo", base_negative="")
        .result
    )
    patched = (
        node(comfy, "PakatiApplyRegions")
        .execute(model=model or base_model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )
    return patched, pos, neg, canvas


def sample(comfy, model, pos, neg, seed=5, steps=2, cfg=5.0, sampler="euler", latent=None, denoise=1.0):
    latent = latent or {"samples": torch.zeros(1, 4, H // 8, W // 8)}
    return comfy.common_ksampler(model, seed, steps, cfg, sampler, "normal", pos, neg, latent, denoise=denoise)[0]["samples"]


class PostCfgProbe:
    """sampler_post_cfg_function recording (denoised, cond_denoised, uncond_denoised) of every step."""

    def __init__(self):
        self.calls = []

    def __call__(self, args):
        self.calls.append((args["denoised"].clone(), args["cond_denoised"].clone(), args["uncond_denoised"].clone()))
        return args["denoised"]


def test_all_null_cfg_installs_nothing_and_is_plain_cfg_bit_for_bit(comfy, tiny):
    patched, pos, neg, _ = regional(comfy, tiny, layout())
    assert "sampler_cfg_function" not in patched.model_options
    nulls = json.loads(layout())
    for r in nulls["regions"]:
        r.update(cfg=None, denoise=None)
    patched_nulls, *_ = regional(comfy, tiny, json.dumps(nulls))
    assert "sampler_cfg_function" not in patched_nulls.model_options
    assert torch.equal(sample(comfy, patched, pos, neg), sample(comfy, patched_nulls, pos, neg))


def test_a_region_at_cfg_1_is_the_conditional_prediction_and_others_keep_the_samplers(comfy, tiny):
    patched, pos, neg, _ = regional(comfy, tiny, layout(cfg_a=1.0, cfg_b=9.0))
    probe = PostCfgProbe()
    patched.set_model_sampler_post_cfg_function(probe)
    sample(comfy, patched, pos, neg, cfg=5.0)
    assert probe.calls
    for denoised, cond, uncond in probe.calls:
        a = (slice(None), slice(None), slice(None), slice(0, 16))  # A: the left half of the 32x32 latent
        b = (slice(None), slice(None), slice(0, 16), slice(16, 32))  # B: the top right quarter
        rest = (slice(None), slice(None), slice(16, 32), slice(16, 32))
        plain = uncond + 5.0 * (cond - uncond)
        for where, want, scale in ((a, cond, 1.0), (b, uncond + 9.0 * (cond - uncond), 9.0), (rest, plain, 5.0)):
            err = float((denoised[where] - want[where]).abs().max())
            # against how far each other scale would be: the random tiny model's cond - uncond is small
            gap = float(((cond - uncond)[where]).abs().max()) * min(abs(scale - s) for s in (1.0, 5.0, 9.0) if s != scale)
            assert gap > 0 and err < 0.05 * gap, (scale, err, gap)


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_sde", "dpmpp_2m_sde"])
def test_region_cfg_with_ancestral_and_sde_samplers(comfy, tiny, sampler):
    patched, pos, neg, _ = regional(comfy, tiny, layout(cfg_a=2.0))
    plain, *_ = regional(comfy, tiny, layout())
    a = sample(comfy, patched, pos, neg, sampler=sampler)
    assert torch.isfinite(a).all()
    assert torch.equal(a, sample(comfy, patched, pos, neg, sampler=sampler))
    b = sample(comfy, plain, pos, neg, sampler=sampler)
    assert not torch.equal(a, b)


def test_cfg_1_at_the_sampler_still_guides_regions_and_an_existing_cfg_function_is_chained(comfy, tiny):
    model, _, _ = tiny
    patched, pos, neg, _ = regional(comfy, tiny, layout(cfg_b=6.0))
    assert patched.model_options.get("disable_cfg1_optimization")
    plain, *_ = regional(comfy, tiny, layout())
    assert not torch.equal(sample(comfy, patched, pos, neg, cfg=1.0), sample(comfy, plain, pos, neg, cfg=1.0))
    from comfy_extras.nodes_model_advanced import RescaleCFG

    rescaled = RescaleCFG().patch(model, 0.7)[0]
    inner = rescaled.model_options["sampler_cfg_function"]
    chained, *_ = regional(comfy, tiny, layout(cfg_b=6.0), model=rescaled)
    fn = chained.model_options["sampler_cfg_function"]
    assert fn is not inner and fn.inner is inner
    out = sample(comfy, chained, pos, neg)
    assert torch.isfinite(out).all() and not torch.equal(out, sample(comfy, patched, pos, neg))
    again, *_ = regional(comfy, tiny, layout(), model=chained)  # applying regions again: the new set's (none) replaces the old
    assert again.model_options["sampler_cfg_function"] is inner


def test_region_denoise_map_and_differential_diffusion(comfy, tiny):
    _, _, vae = tiny
    patched, pos, neg, canvas = regional(comfy, tiny, layout(denoise_a=0.2, denoise_b=1.0, lock_c=True))
    (mask,) = node(comfy, "PakatiRegionDenoise").execute(canvas=canvas, default_denoise=1.0).result
    assert mask.shape == (1, H, W)
    assert float(mask[0, 10, 10]) == pytest.approx(0.2) and float(mask[0, 10, 200]) == 1.0 and float(mask[0, 200, 200]) == 0.0
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, H, W, 3, generator=g)
    latent = {"samples": vae.encode(image)}
    latent = comfy.NODE_CLASS_MAPPINGS["SetLatentNoiseMask"]().set_mask(latent, mask)[0]
    from comfy_extras.nodes_differential_diffusion import DifferentialDiffusion

    dd = DifferentialDiffusion.execute(patched)
    dd = dd.result[0] if hasattr(dd, "result") else dd[0]
    out = sample(comfy, dd, pos, neg, steps=6, latent=latent)
    assert torch.isfinite(out).all()
    change = (out - latent["samples"]).detach().abs().mean(dim=(0, 1))
    low, high, locked = change[:, :16].mean(), change[:16, 16:].mean(), change[16:, 16:].mean()
    assert float(high) > 5 * float(low), (float(low), float(high))
    # denoise 0 (locked): DifferentialDiffusion still touches every pixel at the last step, so in the latent it
    # changes about as little as the 0.2 region; Pakati Compose Regions makes it bit-identical below
    assert float(high) > 5 * float(locked), (float(locked), float(high))
    # locked regions are pasted back bit-identical, as before
    decoded = vae.decode(out)
    composed = node(comfy, "PakatiComposeRegions").execute(canvas=canvas, previous=image, regenerated=decoded, regions="").result[0]
    assert torch.equal(composed[:, 128:, 128:], image[:, 128:, 128:])
    with pytest.raises(ValueError, match=r"PakatiRegionDenoise: input 'default_denoise': .*from 0 to 1"):
        node(comfy, "PakatiRegionDenoise").execute(canvas=canvas, default_denoise=1.5)


def cfg_denoise_prompt() -> dict:
    return {
        "1": {"class_type": "PakatiTestTinySDXL", "inputs": {"seed": 0, "model_channels": 32}},
        "2": {"class_type": "PakatiCanvas", "inputs": {"width": W, "height": H, "regions": layout(cfg_a=2.0, denoise_a=0.3, lock_c=True)}},
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
        "5": {"class_type": "DifferentialDiffusion", "inputs": {"model": ["4", 0]}},
        "6": {"class_type": "EmptyImage", "inputs": {"width": W, "height": H, "batch_size": 1, "color": 0x336699}},
        "7": {"class_type": "VAEEncode", "inputs": {"pixels": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "PakatiRegionDenoise", "inputs": {"canvas": ["2", 0], "default_denoise": 1.0}},
        "9": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["7", 0], "mask": ["8", 0]}},
        "10": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["5", 0],
                "positive": ["3", 1],
                "negative": ["3", 2],
                "latent_image": ["9", 0],
                "seed": 1,
                "steps": 3,
                "cfg": 5.0,
                "sampler_name": "euler_ancestral",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 2]}},
        "12": {
            "class_type": "PakatiComposeRegions",
            "inputs": {"canvas": ["2", 0], "previous": ["6", 0], "regenerated": ["11", 0], "regions": ""},
        },
        "13": {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}},
        "14": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    }


def test_region_cfg_and_denoise_through_prompt_on_the_real_server(comfy_server):
    prompt = cfg_denoise_prompt()
    prompt["14"] = {"class_type": "MaskToImage", "inputs": {"mask": ["8", 0]}}
    prompt["15"] = {"class_type": "PreviewImage", "inputs": {"images": ["14", 0]}}
    entry = comfy_server.run(prompt, timeout=900)
    (img,) = comfy_server.images(entry, "13")
    (dmap,) = comfy_server.images(entry, "15")
    assert img.shape == (H, W, 3)
    assert (img[128:, 128:] == np.array([0x33, 0x66, 0x99], np.uint8)).all()  # the locked region: the input's pixels exactly
    assert abs(int(dmap[10, 10, 0]) - round(0.3 * 255)) <= 1 and dmap[200, 200, 0] == 0 and dmap[10, 200, 0] == 255
