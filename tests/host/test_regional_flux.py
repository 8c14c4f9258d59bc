"""Flux regions inside real ComfyUI: the same nodes on a tiny Flux built from ComfyUI's own classes.

Attention-level locality at every masked block, identity with plain sampling, image-level
locality, depth 0, FluxGuidance / ModelSamplingFlux / a global LoRA, the mask-less attention
fallback and the family errors. The template's /prompt run and front-end load are in
tests/test_workflows.py (parametrised over every template).
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

pytestmark = pytest.mark.host

W = H = 256  # latent 32x32, Flux token grid 16x16
GRID = 16
BASE = "a landscape photo"


def layout(prompt_a="a red apple", prompt_b="a blue sea"):
    return json.dumps(
        {
            "version": 1,
            "width": W,
            "height": H,
            "regions": [
                {"id": "a", "name": "A", "shape": "rect", "points": [[0, 0], [128, 256]], "prompt": prompt_a},
                {"id": "b", "name": "B", "shape": "rect", "points": [[128, 0], [256, 256]], "prompt": prompt_b},
            ],
        }
    )


def full_canvas(prompt):
    return json.dumps(
        {
            "version": 1,
            "width": W,
            "height": H,
            "regions": [{"id": "f", "name": "F", "shape": "rect", "points": [[0, 0], [256, 256]], "prompt": prompt}],
        }
    )


@pytest.fixture(scope="module")
def flux(comfy):
    from pakati_test_nodes.tiny_flux import tiny_flux

    return tiny_flux()


def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


def encode(comfy, clip, regions_json, base=BASE):
    canvas = node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=regions_json).result[0]
    return node(comfy, "PakatiRegionalConditioning").execute(clip=clip, canvas=canvas, base_prompt=base, base_negative="").result


def regional(comfy, flux, regions_json, base=BASE, model=None, **apply):
    model = model if model is not None else flux[0]
    regions, pos, neg = encode(comfy, flux[1], regions_json, base)
    opts = {"base_weight": 0.3, "auto_negative": 0.0, "start_percent": 0.0, "end_percent": 1.0} | apply
    return node(comfy, "PakatiApplyRegions").execute(model=model, regions=regions, **opts).result[0], pos, neg, regions


def sample(comfy, model, pos, neg, seed=5, steps=3, cfg=1.0):
    latent = {"samples": torch.zeros(1, 16, H // 8, W // 8)}
    out = comfy.common_ksampler(model, seed, steps, cfg, "euler", "simple", pos, neg, latent)[0]["samples"]
    assert torch.isfinite(out).all()
    return out


class AttentionProbe:
    """A ComfyUI ``optimized_attention_override`` that records every joint attention's probabilities."""

    def __init__(self):
        self.calls: list[torch.Tensor] = []

    def __call__(self, func, q, k, v, heads, *args, mask=None, **kwargs):
        scores = q.float() @ k.float().transpose(-1, -2) * q.shape[-1] ** -0.5
        if mask is not None:
            scores = scores + mask.float().reshape(mask.shape[0], 1, *mask.shape[-2:]) if mask.ndim == 3 else scores + mask.float()
        self.calls.append(torch.softmax(scores, dim=-1).mean(1))  # [B, L, L], averaged over heads (each head is >= 0)
        return func(q, k, v, heads, *args, mask=mask, **kwargs)


def probed(model, probe):
    m = model.clone()
    m.model_options["transformer_options"] = dict(m.model_options.get("transformer_options", {}), optimized_attention_override=probe)
    return m


def test_plain_tiny_flux_samples_and_decodes_finite(comfy, flux):
    model, clip, vae = flux
    pos = clip.encode_from_tokens_scheduled(clip.tokenize(BASE))
    assert pos[0][0].shape == (1, 256, 64) and pos[0][1]["pooled_output"].shape == (1, 64)
    out = sample(comfy, model, pos, pos)
    assert float(out.std()) > 0
    image = vae.decode(out)
    assert image.shape == (1, H, W, 3) and torch.isfinite(image).all()


def test_region_tokens_are_trimmed_to_their_real_length(comfy, flux):
    regions, pos, _ = encode(comfy, flux[1], layout())
    clip = flux[1]
    for r, text in zip(regions.regions, ("a red apple", "a blue sea")):
        ids = [t[0] for t in clip.tokenize(text)["t5xxl"][0]]
        real = ids.index(0)  # T5's first padding token
        assert r.cond.shape[1] == real < 256
        full = clip.encode_from_tokens(clip.tokenize(text))
        assert torch.equal(r.cond, full[:, :real]), "a region's tokens are exactly its prompt's encoding, cut before the padding"
    assert regions.family == "flux" and regions.base_real_tokens == [t[0] for t in clip.tokenize(BASE)["t5xxl"][0]].index(0)
    assert pos[0][0].shape[1] == 256, "the base prompt keeps Flux's padded 256 tokens"


def test_attention_locality_at_every_masked_block(comfy, flux):
    """Image tokens outside a region get exactly zero attention to and from its text tokens, at every block."""
    model, pos, neg, regions = regional(comfy, flux, layout())
    probe = AttentionProbe()
    sample(comfy, probed(model, probe), pos, neg, steps=2)
    net = flux[0].model.diffusion_model
    blocks = len(net.double_blocks) + len(net.single_blocks)
    assert len(probe.calls) == 2 * blocks, "one masked joint attention per block and step"
    t = pos[0][0].shape[1]
    spans, start = [], t
    for r in regions.regions:
        spans.append((start, start + r.cond.shape[1]))
        start += r.cond.shape[1]
    img = start
    cols = torch.arange(GRID * GRID) % GRID
    inside = [cols < GRID // 2, cols >= GRID // 2]  # A: left half, B: right half
    for p in probe.calls:
        p = p[0]
        assert p.shape == (img + GRID * GRID,) * 2
        image_rows = p[img:]
        for (a, z), own in zip(spans, inside):
            assert torch.count_nonzero(image_rows[~own, a:z]) == 0, "an image token outside a region attends to its text"
            assert torch.count_nonzero(p[a:z, img:][:, ~own]) == 0, "a region's text attends to image tokens outside it"
            assert float(image_rows[own, a:z].sum(-1).min()) > 0, "image tokens inside a region attend to its text"
            assert torch.count_nonzero(p[:t, a:z]) == 0, "the base prompt's tokens never see region tokens"
        assert float(image_rows[:, :t].sum(-1).min()) > 0, "every image token still sees the base prompt"


def test_one_full_canvas_region_with_the_base_prompt_reproduces_plain_sampling(comfy, flux):
    plain_model = flux[0]
    model, pos, neg, regions = regional(comfy, flux, full_canvas(BASE), base_weight=0.3)
    assert len(regions) == 1
    plain = sample(comfy, plain_model, pos, neg)
    out = sample(comfy, model, pos, neg)
    assert not torch.equal(out, plain), "the regional path really ran (float order differs)"
    assert torch.allclose(out, plain, rtol=1e-4, atol=1e-4 * float(plain.abs().max()))


def test_no_regions_is_bit_identical_to_plain(comfy, flux):
    empty = json.dumps({"version": 1, "width": W, "height": H, "regions": []})
    model, pos, neg, regions = regional(comfy, flux, empty)
    assert len(regions) == 0
    assert torch.equal(sample(comfy, model, pos, neg), sample(comfy, flux[0], pos, neg))


def test_depth_zero_hides_every_region_from_the_image(comfy, flux):
    model, pos, neg, _ = regional(comfy, flux, layout(), depth=0.0)
    plain = sample(comfy, flux[0], pos, neg)
    assert torch.allclose(sample(comfy, model, pos, neg), plain, rtol=1e-4, atol=1e-4 * float(plain.abs().max()))


def test_changing_one_region_prompt_changes_the_image_mostly_inside_it(comfy, flux):
    """Measured on the sampled latent: the tiny model's VAE is a random TAESD whose receptive field
    (about 16 latent pixels) and direction-dependent gain blur a half-image change across the seam,
    so the decoded image says more about that decoder than about the regions (docs/regional.md)."""
    m1, pos, neg, _ = regional(comfy, flux, layout(prompt_b="a blue sea"))
    m2, _, _, _ = regional(comfy, flux, layout(prompt_b="a burning volcano at night, red lava"))
    d = (sample(comfy, m2, pos, neg) - sample(comfy, m1, pos, neg)).abs()
    inside, outside = float(d[..., W // 16 :].mean()), float(d[..., : W // 16].mean())
    assert inside > 0 and inside >= 5 * outside, (inside, outside)


def test_flux_guidance_model_sampling_flux_and_a_global_lora(comfy, flux):
    from comfy import sd as comfy_sd
    from comfy_extras import nodes_flux
    from comfy_extras import nodes_model_advanced as nodes_adv

    model, clip, _ = flux
    g = torch.Generator().manual_seed(3)
    hidden = model.model.diffusion_model.hidden_size
    lora = {}
    for name in ("double_blocks.0.img_attn.qkv", "single_blocks.0.linear1"):
        out_features = model.model.diffusion_model.get_submodule(name).weight.shape[0]
        lora[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(out_features, 4, generator=g) * 0.5
        lora[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(4, hidden, generator=g) * 0.5
    lora_model, _ = comfy_sd.load_lora_for_models(model, clip, lora, 1.0, 0.0)
    assert len(lora_model.patches) == 2
    shifted = nodes_adv.ModelSamplingFlux().patch(lora_model, 1.15, 0.5, W, H)[0]
    canvas = node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=layout()).result[0]
    regions, pos, neg = (
        node(comfy, "PakatiRegionalConditioning").execute(clip=clip, canvas=canvas, base_prompt=BASE, base_negative="").result
    )
    pos = nodes_flux.FluxGuidance.execute(pos, 2.5).result[0]
    apply = node(comfy, "PakatiApplyRegions")
    opts = {"base_weight": 0.3, "auto_negative": 0.0, "start_percent": 0.0, "end_percent": 1.0}
    patched = apply.execute(model=shifted, regions=regions, **opts).result[0]
    plain = sample(comfy, shifted, pos, neg)
    out = sample(comfy, patched, pos, neg)
    assert not torch.allclose(out, plain), "the regions apply over the LoRA and the shifted schedule"
    assert not torch.allclose(plain, sample(comfy, nodes_adv.ModelSamplingFlux().patch(model, 1.15, 0.5, W, H)[0], pos, neg)), (
        "the LoRA changes the model"
    )
    # identity still holds with the LoRA, the shift and the guidance
    full, _, _ = (
        node(comfy, "PakatiRegionalConditioning")
        .execute(
            clip=clip,
            canvas=node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=full_canvas(BASE)).result[0],
            base_prompt=BASE,
            base_negative="",
        )
        .result
    )
    same = sample(comfy, apply.execute(model=shifted, regions=full, **opts).result[0], pos, neg)
    assert torch.allclose(same, plain, rtol=1e-4, atol=1e-4 * float(plain.abs().max()))
    # and region B's prompt stays in region B
    other, _, _ = (
        node(comfy, "PakatiRegionalConditioning")
        .execute(
            clip=clip,
            canvas=node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=layout(prompt_b="a burning volcano")).result[0],
            base_prompt=BASE,
            base_negative="",
        )
        .result
    )
    d = (sample(comfy, apply.execute(model=shifted, regions=other, **opts).result[0], pos, neg) - out).abs()
    assert float(d[..., W // 16 :].mean()) >= 5 * float(d[..., : W // 16].mean())


def test_cfg_batches_cond_and_uncond_rows_and_region_negatives(comfy, flux):
    """With CFG > 1 the batch holds the base negative too; only the cond rows see regions, unless a
    region has its own negative, which then applies inside that region in the uncond rows."""
    model, pos, neg, _ = regional(comfy, flux, layout())
    out = sample(comfy, model, pos, neg, cfg=3.0)
    assert not torch.allclose(out, sample(comfy, flux[0], pos, neg, cfg=3.0))
    doc = json.loads(layout())
    doc["regions"][1]["negative"] = "fog, haze, grey"
    with_negative, _, _, regions = regional(comfy, flux, json.dumps(doc))
    assert regions.regions[1].negative is not None and regions.regions[1].negative.shape[1] < 256
    d = (sample(comfy, with_negative, pos, neg, cfg=3.0) - out).abs()
    inside, outside = float(d[..., W // 16 :].mean()), float(d[..., : W // 16].mean())
    assert inside > 0 and inside >= 5 * outside, (inside, outside)


def test_maskless_attention_backends_fall_back_to_sdpa_once(comfy, caplog):
    from comfy.ldm.modules import attention

    from conftest import loaded_pack

    flux_module = loaded_pack().nodes.regional_flux
    flux_module._fallback_logged.discard("attention_flash")
    override = flux_module.attention_override(None)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 10, 8, generator=g) for _ in range(3))
    mask = torch.zeros(1, 10, 10)
    mask[:, :5, 5:] = float("-inf")
    want = attention.attention_pytorch(q, k, v, 2, mask=mask, skip_reshape=True)
    with caplog.at_level(logging.INFO, logger="pakati"):
        for _ in range(3):
            got = override(attention.attention_flash.__wrapped__, q, k, v, 2, mask=mask, skip_reshape=True)
            assert torch.equal(got, want)
    lines = [r for r in caplog.records if "attention_flash cannot take the regional attention mask" in r.getMessage()]
    assert len(lines) == 1


def test_unsupported_families_and_mismatches_are_named(comfy, flux, tiny):
    from comfy import sd as comfy_sd
    from comfy import sd1_clip, supported_models_base

    target = supported_models_base.ClipTarget(sd1_clip.SD1Tokenizer, sd1_clip.SD1ClipModel)
    sd1 = comfy_sd.CLIP(target, model_options={"clip_l_model_config": {"num_hidden_layers": 1, "intermediate_size": 64}})
    canvas = node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=layout()).result[0]
    with pytest.raises(ValueError, match=r"PakatiRegionalConditioning: input 'clip': the SD 1\.x/2\.x model family is not supported"):
        node(comfy, "PakatiRegionalConditioning").execute(clip=sd1, canvas=canvas, base_prompt=BASE, base_negative="")
    flux_regions = encode(comfy, flux[1], layout())[0]
    sdxl_regions = (
        node(comfy, "PakatiRegionalConditioning").execute(clip=tiny[1], canvas=canvas, base_prompt=BASE, base_negative="").result[0]
    )
    opts = {"base_weight": 0.3, "auto_negative": 0.0, "start_percent": 0.0, "end_percent": 1.0}
    with pytest.raises(ValueError, match=r"PakatiApplyRegions: input 'regions': the regions were encoded for flux but the model is SDXL"):
        node(comfy, "PakatiApplyRegions").execute(model=tiny[0], regions=flux_regions, **opts)
    with pytest.raises(
        ValueError, match=r"PakatiApplyRegions: input 'regions': the regions were encoded for sdxl .* but the model is Flux"
    ):
        node(comfy, "PakatiApplyRegions").execute(model=flux[0], regions=sdxl_regions, **opts)
