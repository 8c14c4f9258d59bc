"""Regional prompting inside real ComfyUI: locality, identity, determinism, composability, errors."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.host

W = H = 256  # canvas / image size; latent 32x32, first transformer grid 16x16 in the tiny UNet


def layout(prompt_a="a red apple", prompt_b="a blue sea", **extra_b):
    return json.dumps(
        {
            "version": 1,
            "width": W,
            "height": H,
            "regions": [
                {"id": "a", "name": "A", "shape": "rect", "points": [[0, 0], [128, 256]], "prompt": prompt_a},
                {"id": "b", "name": "B", "shape": "rect", "points": [[128, 0], [256, 256]], "prompt": prompt_b, **extra_b},
            ],
        }
    )


def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


def regional(comfy, tiny, regions_json, base="a landscape photo", negative="", **apply):
    model, clip, _ = tiny
    canvas = node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=regions_json).result[0]
    regions, pos, neg = (
        node(comfy, "PakatiRegionalConditioning").execute(clip=clip, canvas=canvas, base_prompt=base, base_negative=negative).result
    )
    opts = dict(base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0) | apply
    patched = node(comfy, "PakatiApplyRegions").execute(model=model, regions=regions, **opts).result[0]
    return patched, pos, neg


def sample(comfy, model, pos, neg, seed=5, steps=2, cfg=5.0, batch=1):
    latent = {"samples": torch.zeros(batch, 4, H // 8, W // 8)}
    return comfy.common_ksampler(model, seed, steps, cfg, "euler", "normal", pos, neg, latent)[0]["samples"]


class FirstBlockProbe:
    """Records the first cross-attention transformer block's output per call, split by cond/uncond."""

    def __init__(self, model):
        unet = model.model.diffusion_model
        self.block = next(m for m in unet.modules() if type(m).__name__ == "BasicTransformerBlock")
        self.calls: list[dict] = []

    def __enter__(self):
        def hook(module, args, kwargs, output):
            chunks = kwargs["transformer_options"]["cond_or_uncond"]
            per = output.shape[0] // len(chunks)
            self.calls.append({c: output[i * per : (i + 1) * per].detach().clone() for i, c in enumerate(chunks)})

        self.handle = self.block.register_forward_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def first_block(comfy, model, pos, neg):
    with FirstBlockProbe(model) as probe:
        sample(comfy, model, pos, neg, steps=1)
    return probe.calls[0]


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_locality_only_region_b_changes_when_its_prompt_changes(comfy, tiny):
    m1, pos, neg = regional(comfy, tiny, layout(prompt_b="a blue sea"), base_weight=0.3)
    m2, _, _ = regional(comfy, tiny, layout(prompt_b="a burning volcano at night"), base_weight=0.3)
    out1 = first_block(comfy, m1, pos, neg)[0]
    out1 = out1.view(out1.shape[0], 16, 16, out1.shape[-1])
    out2 = first_block(comfy, m2, pos, neg)[0].view_as(out1)
    inside_a, inside_b = out1[:, :, :8], out1[:, :, 8:]
    assert rel(out2[:, :, :8], inside_a) <= 1e-4, "region A must not see region B's prompt"
    assert rel(out2[:, :, 8:], inside_b) > 1e-3, "region B follows its own prompt"


def test_identity_one_full_canvas_region_with_the_base_prompt(comfy, tiny):
    model, clip, _ = tiny
    base = "a lighthouse on a cliff at dawn"
    full = json.dumps(
        {"version": 1, "width": W, "height": H, "regions": [{"id": "all", "shape": "rect", "points": [[0, 0], [W, H]], "prompt": base}]}
    )
    patched, pos, neg = regional(comfy, tiny, full, base=base, base_weight=0.3)
    plain = sample(comfy, model, pos, neg, steps=3)
    ours = sample(comfy, patched, pos, neg, steps=3)
    assert rel(ours, plain) <= 1e-3


def test_same_seed_same_latent_and_uncond_untouched(comfy, tiny):
    model = tiny[0]
    patched, pos, neg = regional(comfy, tiny, layout())
    a, b = sample(comfy, patched, pos, neg), sample(comfy, patched, pos, neg)
    assert torch.equal(a, b)
    plain_calls = first_block(comfy, model, pos, neg)
    ours_calls = first_block(comfy, patched, pos, neg)
    assert rel(ours_calls[1], plain_calls[1]) <= 1e-6, "the unconditional half keeps the negative prompt"
    assert rel(ours_calls[0], plain_calls[0]) > 1e-4, "the conditional half is regionalised"


def test_batch_of_two(comfy, tiny):
    patched, pos, neg = regional(comfy, tiny, layout())
    out = sample(comfy, patched, pos, neg, batch=2)
    assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_region_negative_and_auto_negative_regionalise_the_uncond_half(comfy, tiny):
    model = tiny[0]
    _, pos, neg = regional(comfy, tiny, layout())
    plain = first_block(comfy, model, pos, neg)[1]
    with_neg, _, _ = regional(comfy, tiny, layout(negative="rocks, sand"))
    auto, _, _ = regional(comfy, tiny, layout(), auto_negative=0.8)
    assert rel(first_block(comfy, with_neg, pos, neg)[1], plain) > 1e-4
    assert rel(first_block(comfy, auto, pos, neg)[1], plain) > 1e-4


def test_start_end_percent_limits_the_schedule(comfy, tiny):
    model = tiny[0]
    patched, pos, neg = regional(comfy, tiny, layout(), start_percent=0.5, end_percent=1.0)
    with FirstBlockProbe(patched) as probe:
        sample(comfy, patched, pos, neg, steps=4)
    with FirstBlockProbe(model) as ref:
        sample(comfy, model, pos, neg, steps=4)
    # the first step lies before 50 %: identical to the plain model there, regional afterwards
    assert torch.equal(probe.calls[0][0], ref.calls[0][0])
    assert not torch.equal(probe.calls[-1][0], ref.calls[-1][0])


def test_standard_samplers_all_render_regions(comfy, tiny):
    model, clip, _ = tiny
    patched, pos, neg = regional(comfy, tiny, layout())
    latent = {"samples": torch.zeros(1, 4, H // 8, W // 8)}
    adv = node(comfy, "KSamplerAdvanced")()
    args = dict(
        add_noise="enable",
        noise_seed=3,
        steps=2,
        cfg=5.0,
        sampler_name="euler",
        scheduler="normal",
        positive=pos,
        negative=neg,
        latent_image=latent,
        start_at_step=0,
        end_at_step=10000,
        return_with_leftover_noise="disable",
    )
    a_plain = adv.sample(model=model, **args)[0]["samples"]
    a_ours = adv.sample(model=patched, **args)[0]["samples"]
    assert not torch.equal(a_plain, a_ours) and torch.isfinite(a_ours).all()

    from comfy_extras.nodes_custom_sampler import BasicScheduler, KSamplerSelect, SamplerCustom

    sampler = KSamplerSelect().get_sampler(sampler_name="euler")[0]
    sigmas = BasicScheduler().get_sigmas(model=model, scheduler="normal", steps=2, denoise=1.0)[0]

    def run(m):
        return SamplerCustom().sample(
            model=m,
            add_noise=True,
            noise_seed=3,
            cfg=5.0,
            positive=pos,
            negative=neg,
            sampler=sampler,
            sigmas=sigmas,
            latent_image=latent,
        )[0]["samples"]

    assert not torch.equal(run(model), run(patched))


# -- composability -------------------------------------------------------------------------------


class OffsetAttn2Replace:
    """Another pack's attn2 replace (IP-Adapter-like: base attention plus an added term).

    ModelPatcher.clone() deep-copies patch objects, so calls are counted on the class.
    """

    calls = 0

    def __call__(self, q, k, v, extra_options):
        import comfy.ldm.modules.attention as attention

        type(self).calls += 1
        assert k.shape[1] == 77, "a wrapped replace sees only the base prompt's tokens"
        return attention.optimized_attention(q, k, v, extra_options["n_heads"]) + 0.05


def with_offset_replace(model, patch):
    from regional_helpers import attn2_keys

    m = model.clone()
    for block, idx, t in attn2_keys(m):
        m.set_model_attn2_replace(patch, block, idx, t)
    return m


def test_stacks_with_another_attn2_replace_in_either_order(comfy, tiny):
    model, clip, _ = tiny
    canvas = node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=layout()).result[0]
    regions, pos, neg = (
        node(comfy, "PakatiRegionalConditioning").execute(clip=clip, canvas=canvas, base_prompt="x", base_negative="").result
    )

    def apply(m):
        return (
            node(comfy, "PakatiApplyRegions")
            .execute(model=m, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
            .result[0]
        )

    other = OffsetAttn2Replace()
    before = apply(with_offset_replace(model, other))
    after = with_offset_replace(apply(model), other)
    pakati_only = first_block(comfy, apply(model), pos, neg)
    for m in (before, after):
        OffsetAttn2Replace.calls = 0
        out = first_block(comfy, m, pos, neg)
        assert OffsetAttn2Replace.calls > 0, "the other pack's replace still runs"
        assert rel(out[0], pakati_only[0]) > 1e-3, "its added term is present"
    assert torch.allclose(first_block(comfy, before, pos, neg)[0], first_block(comfy, after, pos, neg)[0], atol=1e-6)


def test_locality_holds_with_a_lora_patched_model(comfy, tiny):
    model = tiny[0]
    lora = model.clone()
    sd = lora.model_state_dict()
    keys = [k for k in sd if k.endswith("attn2.to_k.weight")][:2] + [k for k in sd if k.endswith("attn1.to_q.weight")][:2]
    g = torch.Generator().manual_seed(9)
    # LoRA-style low-rank updates through ComfyUI's own weight-patch mechanism
    patches = {k: (torch.randn(sd[k].shape[0], 4, generator=g) @ torch.randn(4, sd[k].shape[1], generator=g) * 0.05,) for k in keys}
    assert len(lora.add_patches(patches, 1.0)) == len(keys)
    _, clip, vae = tiny
    m1, pos, neg = regional(comfy, (lora, clip, vae), layout(prompt_b="a blue sea"))
    m2, _, _ = regional(comfy, (lora, clip, vae), layout(prompt_b="a burning volcano"))
    o1, o2 = first_block(comfy, m1, pos, neg)[0], first_block(comfy, m2, pos, neg)[0]
    plain = first_block(comfy, regional(comfy, tiny, layout(prompt_b="a blue sea"))[0], pos, neg)[0]
    assert rel(o1, plain) > 1e-4, "the LoRA changes the result"
    o1, o2 = o1.view(1, 16, 16, -1), o2.view(1, 16, 16, -1)
    assert rel(o2[:, :, :8], o1[:, :, :8]) <= 1e-4 and rel(o2[:, :, 8:], o1[:, :, 8:]) > 1e-3


def test_works_with_a_controlnet_on_the_positive_conditioning(comfy, tiny):
    from regional_helpers import tiny_controlnet

    patched, pos, neg = regional(comfy, tiny, layout())
    hint = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(4))
    cn_pos, cn_neg = comfy.NODE_CLASS_MAPPINGS["ControlNetApplyAdvanced"]().apply_controlnet(
        pos, neg, tiny_controlnet(), hint, 1.0, 0.0, 1.0
    )
    with_cn = sample(comfy, patched, cn_pos, cn_neg)
    without = sample(comfy, patched, pos, neg)
    assert torch.isfinite(with_cn).all()
    assert not torch.equal(with_cn, without), "the ControlNet still steers the regional model"


# -- errors ----------------------------------------------------------------------------------------


def test_mask_aspect_mismatch_is_a_clear_error(comfy, tiny):
    model, clip, _ = tiny
    pos = clip.encode_from_tokens_scheduled(clip.tokenize("x"))
    regions = node(comfy, "PakatiRegionFromConditioning").execute(conditioning=pos, mask=torch.ones(1, 128, 256), strength=1.0).result[0]
    patched = (
        node(comfy, "PakatiApplyRegions")
        .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )
    with pytest.raises(
        ValueError,
        match=r"PakatiApplyRegions: input 'regions': mask: region 'mask region 1' is defined on a 256x128 mask .* latent is 256x256",
    ):
        sample(comfy, patched, pos, pos)


def test_empty_mask_non_sdxl_conditioning_and_too_many_regions(comfy, tiny):
    _, clip, _ = tiny
    pos = clip.encode_from_tokens_scheduled(clip.tokenize("x"))
    rfc = node(comfy, "PakatiRegionFromConditioning")
    with pytest.raises(ValueError, match=r"PakatiRegionFromConditioning: input 'mask': the mask is empty"):
        rfc.execute(conditioning=pos, mask=torch.zeros(1, 64, 64), strength=1.0)
    sd15 = [[torch.zeros(1, 77, 768), {"pooled_output": torch.zeros(1, 768)}]]
    with pytest.raises(
        ValueError, match=r"PakatiRegionFromConditioning: input 'conditioning': conditioning is not from an SDXL text encoder"
    ):
        rfc.execute(conditioning=sd15, mask=torch.ones(1, 64, 64), strength=1.0)
    regions = None
    for i in range(32):
        regions = rfc.execute(conditioning=pos, mask=torch.ones(1, 64, 64), strength=1.0, regions=regions).result[0]
    with pytest.raises(ValueError, match=r"PakatiRegionFromConditioning: input 'regions': regions: 33 regions; at most 32"):
        rfc.execute(conditioning=pos, mask=torch.ones(1, 64, 64), strength=1.0, regions=regions)


def test_empty_region_prompt_names_the_region(comfy, tiny):
    with pytest.raises(ValueError, match=r"PakatiRegionalConditioning: input 'canvas': region 'B' \(regions\[1\]\) has an empty prompt"):
        regional(comfy, tiny, layout(prompt_b="  "))


# -- through the real server --------------------------------------------------------------------


def test_regional_workflow_twin_runs_and_bad_percent_is_refused_at_queue_time(comfy_server):
    from pathlib import Path

    from comfy_client import PromptRejected

    prompt = json.loads((Path(__file__).parents[2] / "workflows" / "api" / "regional_sdxl.json").read_text())
    prompt["1"] = {"class_type": "PakatiTestTinySDXL", "inputs": {"seed": 0, "model_channels": 32}}
    prompt["5"]["inputs"].update(width=256, height=256)
    prompt["6"]["inputs"]["steps"] = 2
    entry = comfy_server.run(prompt)
    (img,) = comfy_server.images(entry, "8")
    assert img.shape == (256, 256, 3)
    (overlay,) = comfy_server.images(entry, "9")
    assert overlay.shape == (256, 256, 3)
    prompt["4"]["inputs"].update(start_percent=0.8, end_percent=0.2)
    with pytest.raises(PromptRejected) as info:
        comfy_server.queue(prompt)
    assert "PakatiApplyRegions: input 'start_percent': 0.8 is after end_percent 0.2" in json.dumps(info.value.body)


def test_regional_attention_inside_a_cropped_region(comfy, tiny):
    """Crop a region with its canvas, render the canvas's regions inside the crop, stitch it back."""
    import numpy as np
    from skimage import data

    model, clip, vae = tiny
    photo = torch.from_numpy(data.astronaut()[::2, ::2].astype(np.float32) / 255.0)[None]  # 256x256
    doc = json.dumps(
        {
            "version": 1,
            "width": 256,
            "height": 256,
            "regions": [
                {"id": "target", "shape": "rect", "points": [[64, 64], [192, 192]], "prompt": "a garden"},
                {"id": "flower", "shape": "rect", "points": [[64, 64], [128, 192]], "prompt": "a red flower"},
            ],
        }
    )
    canvas = node(comfy, "PakatiCanvas").execute(width=256, height=256, regions=doc).result[0]
    crop, mask, stitch, sub, seed = (
        node(comfy, "PakatiCropRegion")
        .execute(
            image=photo, context=32, target="keep", width=1024, height=1024, grow=0, feather=8.0, canvas=canvas, region="target", seed=0
        )
        .result
    )
    assert [r.id for r in sub.regions] == ["target", "flower"]
    regions, pos, neg = (
        node(comfy, "PakatiRegionalConditioning").execute(clip=clip, canvas=sub, base_prompt="a photo", base_negative="").result
    )
    patched = (
        node(comfy, "PakatiApplyRegions")
        .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )
    latent = {"samples": vae.encode(crop[..., :3]), "noise_mask": mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1])}
    with FirstBlockProbe(patched) as probe:
        (out,) = comfy.common_ksampler(patched, seed, 2, 5.0, "euler", "normal", pos, neg, latent, denoise=1.0)
    assert probe.calls, "the regional model ran inside the crop"
    regenerated = vae.decode(out["samples"])
    (result,) = node(comfy, "PakatiStitchRegion").execute(stitch=stitch, image=regenerated, colour_match=True).result
    from pakati_core.regenerate import band_radius

    r = band_radius(0, 8.0)
    outside = torch.ones(256, 256, dtype=torch.bool)
    outside[64 - r : 192 + r, 64 - r : 192 + r] = False  # mask plus its blend band
    assert torch.equal(result[0][outside], photo[0][outside])
    assert not torch.equal(result[0][100:150, 100:150], photo[0][100:150, 100:150])


# -- cost: region K/V projections once per layer and run, masks once per grid ------------------------


def test_region_projections_are_computed_once_per_layer_and_run(comfy, tiny):
    from regional_helpers import attn2_keys

    patched, pos, neg = regional(comfy, tiny, layout())
    wrapper = patched.get_wrappers("apply_model", "pakati_regional")[0]
    cache = wrapper.projections
    cache.hits = cache.misses = 0
    first = sample(comfy, patched, pos, neg, steps=3)
    layers = len(attn2_keys(patched))
    assert cache.misses == layers, "each layer projects the region tokens once"
    assert cache.hits == layers * 2, "and reuses them at the later steps"
    assert len(cache) == layers, "projections in host memory are kept for the next run"
    again = sample(comfy, patched, pos, neg, steps=3, seed=6)  # a re-queue with another seed
    assert (cache.misses, cache.hits) == (layers, layers * 5), "the next run with the same weights projects nothing"
    cache.clear()
    assert torch.equal(sample(comfy, patched, pos, neg, steps=3, seed=6), again) and not torch.equal(again, first)


def test_projections_of_cast_layers_are_cached_and_match(comfy, tiny):
    """fp16 weights computed in fp32 (ComfyUI's manual-cast layers, as for fp8/fp16 checkpoints and
    lowvram offload) are cast at every call but give the same values: their region K/V are
    projected once per run, and the image equals the one from projections made at every call."""
    from pakati_test_nodes.tiny_sdxl import build_model
    from regional_helpers import attn2_keys

    cast_model = build_model(0, weight_dtype=torch.float16, compute_dtype=torch.float32)
    layer = next(m for m in cast_model.model.diffusion_model.modules() if type(m).__name__ == "BasicTransformerBlock").attn2
    assert layer.to_k.comfy_cast_weights and layer.to_k.weight.dtype == torch.float16, "the model under test casts its weights per call"
    patched, pos, neg = regional(comfy, (cast_model, tiny[1], tiny[2]), layout())
    cache = patched.get_wrappers("apply_model", "pakati_regional")[0].projections
    cache.hits = cache.misses = 0
    cached = sample(comfy, patched, pos, neg, steps=3)
    layers = len(attn2_keys(patched))
    assert (cache.misses, cache.hits) == (layers, 2 * layers)
    get = cache.get
    cache.get = lambda *a, **k: get(*a, **dict(k, volatile=True))  # project at every call, as before the cache
    try:
        uncached = sample(comfy, patched, pos, neg, steps=3)
    finally:
        del cache.get
    assert torch.isfinite(cached).all() and torch.equal(cached, uncached)


@pytest.mark.parametrize("in_place", [False, True], ids=["new-tensors", "in-place-inference-tensors"])
def test_weights_patched_between_runs_are_not_served_stale_projections(comfy, tiny, in_place):
    """A LoRA between runs of one regional model. ComfyUI swaps in patched weight tensors by
    default; with ``weight_inplace_update`` it copies into the same tensors, which, made under
    inference mode as the server loads checkpoints, keep no version counter: there only the
    patch uuid tells the weights apart."""
    with torch.inference_mode(in_place):
        if in_place:
            import importlib

            from pakati_test_nodes.tiny_sdxl import build_model

            base = build_model(0)
            model = importlib.import_module("comfy.model_patcher").ModelPatcher(
                base.model, base.load_device, base.offload_device, weight_inplace_update=True
            )
            assert next(model.model.parameters()).is_inference()
        else:
            model = tiny[0]
        _weights_patched_between_runs(comfy, (model, tiny[1], tiny[2]))


def _weights_patched_between_runs(comfy, tiny):
    model = tiny[0]
    patched, pos, neg = regional(comfy, tiny, layout())
    before = sample(comfy, patched, pos, neg)  # fills the cache of this wrapper
    sd = model.model_state_dict()
    keys = [k for k in sd if k.endswith("attn2.to_k.weight") or k.endswith("attn2.to_v.weight")]
    g = torch.Generator().manual_seed(11)
    patches = {k: (torch.randn(sd[k].shape, generator=g) * 0.05,) for k in keys}

    def lora(m):
        m = m.clone()
        m.add_patches(patches, 1.0)
        return m

    after = lora(patched)  # shares the wrapper (and its cache) with `patched`
    fresh, _, _ = regional(comfy, (lora(model), tiny[1], tiny[2]), layout())
    assert torch.equal(sample(comfy, after, pos, neg), sample(comfy, fresh, pos, neg))
    assert not torch.equal(sample(comfy, after, pos, neg), sample(comfy, patched, pos, neg))
    # ComfyUI merged the LoRA into the same weight tensors in place and took it out again: the
    # projections kept from before the LoRA are right again, and never the LoRA's
    assert torch.equal(sample(comfy, patched, pos, neg), before)
    assert torch.equal(sample(comfy, after, pos, neg), sample(comfy, fresh, pos, neg))
