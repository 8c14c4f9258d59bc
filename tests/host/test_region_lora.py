"""PakatiRegionLora inside real ComfyUI: a LoRA (kohya file written by the test) applied only through a region's mask.

Layer level (every hooked layer, every K/V-patched cross-attention), one UNet evaluation (every
transformer block), whole samples (empty mask, full mask against LoraLoaderModelOnly), the
text-encoder part on one region's prompt, composition with Pakati Apply Regions in both orders
and a global LoraLoader, the region K/V cache, errors, and a /prompt run on the real server.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from region_lora_helpers import kohya_lora, write_lora

pytestmark = pytest.mark.host

W = H = 256
LATENT = (32, 32)
LORA = "pakati_region_test.safetensors"
KV_LORA = "pakati_region_kv.safetensors"
OTHER_LORA = "pakati_global_test.safetensors"
LINEAR_LORA = "pakati_region_linear.safetensors"  # kohya's default targets: the transformer blocks' linears only
FOREIGN = "pakati_foreign.safetensors"


def layout():
    return json.dumps(
        {
            "version": 1,
            "width": W,
            "height": H,
            "regions": [
                {"id": "a", "name": "A", "shape": "rect", "points": [[0, 0], [128, 256]], "prompt": "a red apple", "feather": 0},
                {"id": "b", "name": "B", "shape": "rect", "points": [[128, 0], [256, 256]], "prompt": "a blue sea", "feather": 0},
            ],
        }
    )


def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


@pytest.fixture(scope="module")
def loras(comfy, tiny, tmp_path_factory):
    import folder_paths

    model, clip, _ = tiny
    folder = tmp_path_factory.mktemp("loras")
    sd = kohya_lora(model, clip, rank=4, seed=3)
    write_lora(sd, folder, LORA)
    write_lora(kohya_lora(model, None, rank=4, seed=4, convs=False, only=("attn2.to_k", "attn2.to_v")), folder, KV_LORA)
    write_lora(kohya_lora(model, clip, rank=4, seed=5, scale=0.05), folder, OTHER_LORA)
    write_lora(kohya_lora(model, None, rank=4, seed=6, convs=False), folder, LINEAR_LORA)
    write_lora(
        {"lora_unet_no_such_block.lora_down.weight": torch.ones(2, 8), "lora_unet_no_such_block.lora_up.weight": torch.ones(8, 2)},
        folder,
        FOREIGN,
    )
    folder_paths.add_model_folder_path("loras", str(folder))
    return sd


@pytest.fixture(scope="module")
def canvas(comfy):
    return node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=layout()).result[0]


def half_mask(soft=False):
    m = torch.zeros(1, H, W)
    if soft:
        m[0] = torch.linspace(0.0, 1.0, W)[None, :].expand(H, W)
    else:
        m[0, :, : W // 2] = 1.0
    return m


def region_lora(comfy, model, canvas, region="A", name=LORA, strength=1.0, clip=None, mask=None, strength_clip=1.0):
    return (
        node(comfy, "PakatiRegionLora")
        .execute(
            model=model,
            canvas=canvas,
            region=region,
            lora_name=name,
            strength_model=strength,
            clip=clip,
            strength_clip=strength_clip,
            mask=mask,
        )
        .result
    )


def conds(clip, text="a landscape photo", negative=""):
    return (clip.encode_from_tokens_scheduled(clip.tokenize(text)), clip.encode_from_tokens_scheduled(clip.tokenize(negative)))


def sample(comfy, model, pos, neg, seed=5, steps=2, cfg=5.0, sampler="euler"):
    latent = {"samples": torch.zeros(1, 4, H // 8, W // 8)}
    return comfy.common_ksampler(model, seed, steps, cfg, sampler, "normal", pos, neg, latent)[0]["samples"]


class Capture:
    """APPLY_MODEL wrapper (added after the region LoRA, so inside it) recording named modules' input and final
    output at the first model call; with ``pre`` it records a module's input only (for to_out: the attention result)."""

    def __init__(self, modules: dict, pre: dict | None = None):
        self.modules, self.pre = modules, pre or {}
        self.io: dict = {}
        self.inputs: dict = {}

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, *args, **kwargs):
        if self.io or self.inputs:
            return executor(*args, **kwargs)
        handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        handles += [m.register_forward_pre_hook(self._pre(n)) for n, m in self.pre.items()]
        try:
            return executor(*args, **kwargs)
        finally:
            for h in handles:
                h.remove()

    def _hook(self, name):
        def hook(module, args, out):
            self.io[name] = (args[0].detach().clone(), out.detach().clone())

        return hook

    def _pre(self, name):
        def hook(module, args):
            self.inputs[name] = args[0].detach().clone()

        return hook


def captured(comfy, model, modules, pre=None, clip=None):
    cap = Capture(modules, pre)
    m = model.clone()
    m.add_wrapper_with_key("apply_model", "pakati_test_capture", cap)
    pos, neg = conds(clip)
    sample(comfy, m, pos, neg, steps=1)
    return cap


def full_lora_weights(comfy, model, name):
    """The weights LoraLoaderModelOnly gives, by ComfyUI's own calculate_weight: {parameter key: tensor}."""
    import comfy.lora as comfy_lora

    patched = comfy.NODE_CLASS_MAPPINGS["LoraLoaderModelOnly"]().load_lora_model_only(model, name, 1.0)[0]
    sd = model.model.state_dict()
    return {k: comfy_lora.calculate_weight(p, sd[k].float().clone(), k) for k, p in patched.patches.items()}


def grid_mask(mask, hw):
    return F.adaptive_avg_pool2d(mask[None].float(), hw)[0, 0]


def base_modules(model):
    unet = model.model.diffusion_model
    return {n: m for n, m in unet.named_modules()}


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_every_hooked_layer_is_base_outside_and_lora_inside(comfy, tiny, loras, canvas, soft):
    model, clip, _ = tiny
    mask = half_mask(soft)
    patched, _ = region_lora(comfy, model, canvas, mask=mask)
    wrapper = patched.get_wrappers("apply_model", "pakati_region_lora")[0]
    (bound,) = wrapper.loras
    named = base_modules(model)
    hooked = {p.removeprefix("diffusion_model."): named[p.removeprefix("diffusion_model.")] for p in bound.hooks}
    assert len(hooked) >= 20 and any(isinstance(m, torch.nn.Conv2d) for m in hooked.values())
    cap = captured(comfy, patched, hooked, clip=clip)
    assert set(cap.io) == set(hooked)
    full = full_lora_weights(comfy, model, LORA)
    checked_inside = 0
    with torch.no_grad():
        for name, module in hooked.items():
            x, out = cap.io[name]
            base = module(x)
            w = full[f"diffusion_model.{name}.weight"]
            b = module.bias
            lora_out = F.linear(x, w, b) if isinstance(module, torch.nn.Linear) else F.conv2d(x, w, b, module.stride, module.padding)
            if out.ndim == 3:
                from conftest import loaded_pack

                hw = loaded_pack().pakati_core.regional.attention.grid_shape(LATENT, x.shape[1])
                m = grid_mask(mask, hw).reshape(1, -1, 1)
            else:
                m = grid_mask(mask, out.shape[2:])[None, None]
            outside, inside = (m == 0).expand_as(out), (m == 1).expand_as(out)
            assert torch.equal(out[outside], base[outside]), name
            scale = float(lora_out.abs().max())
            if soft:
                assert torch.allclose(out, base + m * (lora_out - base), atol=1e-5 * scale + 1e-6), name
            elif inside.any():
                assert torch.allclose(out[inside], lora_out[inside], atol=1e-5 * scale + 1e-6), name
                assert not torch.allclose(out[inside], base[inside], atol=1e-5 * scale), name
                checked_inside += 1
    assert soft or checked_inside == len(hooked)


def test_cross_attention_keys_values_blend_by_mask(comfy, tiny, loras, canvas):
    """A LoRA on attn2's to_k/to_v: attention inside = attention with the LoRA'd K/V; outside = ComfyUI's own, exactly."""
    import comfy.ldm.modules.attention as comfy_attention

    model, clip, _ = tiny
    mask = half_mask()
    patched, _ = region_lora(comfy, model, canvas, name=KV_LORA, mask=mask)
    (bound,) = patched.get_wrappers("apply_model", "pakati_region_lora")[0].loras
    assert not bound.hooks and len(bound.kv) >= 3
    named = base_modules(model)
    attns = {p.removeprefix("diffusion_model."): named[p.removeprefix("diffusion_model.")] for p in bound.kv}
    modules = {f"{n}.to_{w}": getattr(a, f"to_{w}") for n, a in attns.items() for w in "qkv"}
    pre = {f"{n}.to_out": a.to_out[0] for n, a in attns.items()}
    cap = captured(comfy, patched, modules, pre, clip=clip)
    full = full_lora_weights(comfy, model, KV_LORA)
    from conftest import loaded_pack

    sdpa = loaded_pack().pakati_core.regional.gather.sdpa
    with torch.no_grad():
        for n, a in attns.items():
            ctx, k = cap.io[f"{n}.to_k"]
            v = cap.io[f"{n}.to_v"][1]
            q = cap.io[f"{n}.to_q"][1]
            got = cap.inputs[f"{n}.to_out"]
            k2 = F.linear(ctx, full[f"diffusion_model.{n}.to_k.weight"])
            v2 = F.linear(ctx, full[f"diffusion_model.{n}.to_v.weight"])
            want_in = sdpa(q, k2, v2, a.heads)
            want_out = comfy_attention.optimized_attention(q, k, v, a.heads)
            hw = loaded_pack().pakati_core.regional.attention.grid_shape(LATENT, q.shape[1])
            m = grid_mask(mask, hw).reshape(-1)
            inside, outside = m == 1, m == 0
            assert torch.equal(got[:, outside], want_out[:, outside]), n
            assert torch.allclose(got[:, inside], want_in[:, inside], atol=1e-5 * float(want_in.abs().max())), n
            assert not torch.allclose(got[:, inside], want_out[:, inside], atol=1e-4 * float(want_in.abs().max())), n


class BlockCapture(Capture):
    """Records every BasicTransformerBlock's call (input, keyword arguments, output) at the first model call."""

    def _hook(self, name):
        def hook(module, args, kwargs, out):
            self.io[name] = (args[0].detach().clone(), dict(kwargs), out.detach().clone())

        return hook

    def __call__(self, executor, *args, **kwargs):
        if self.io:
            return executor(*args, **kwargs)
        handles = [m.register_forward_hook(self._hook(n), with_kwargs=True) for n, m in self.modules.items()]
        try:
            return executor(*args, **kwargs)
        finally:
            for h in handles:
                h.remove()


def block_calls(comfy, model, clip):
    unet = model.model.diffusion_model
    blocks = {n: m for n, m in unet.named_modules() if type(m).__name__ == "BasicTransformerBlock"}
    cap = BlockCapture(blocks)
    m = model.clone()
    m.add_wrapper_with_key("apply_model", "pakati_test_capture", cap)
    pos, neg = conds(clip)
    sample(comfy, m, pos, neg, steps=1)
    return blocks, cap.io


def without_region_lora(options: dict) -> dict:
    """transformer_options of a call with the region LoRA's attn2 replaces taken out (their inner ones kept)."""
    from conftest import loaded_pack

    lora_attn2 = loaded_pack().nodes.region_lora_patch.RegionLoraAttn2
    out = {k: v for k, v in options.items() if k != "pakati_region_lora"}
    replace = dict(out.get("patches_replace", {}))
    attn2 = {}
    for key, fn in replace.get("attn2", {}).items():
        while isinstance(fn, lora_attn2):
            fn = fn.inner
        if fn is not None:
            attn2[key] = fn
    replace["attn2"] = attn2
    out["patches_replace"] = replace
    return out


def halves(d, hw):
    inside, outside = d[:, : hw[1] // 2].mean(), d[:, hw[1] // 2 :].mean()
    return float(inside / outside.clamp(min=1e-12))


def test_change_is_local_at_every_transformer_block_and_empty_mask_is_bit_identical(comfy, tiny, loras, canvas):
    """In one UNet evaluation, at every transformer block: the block's output minus the same block without the region
    LoRA on the same input is >= 5x larger inside region A than outside (self-attention lets outside queries read the
    LoRA'd keys/values of inside positions, nothing else). What accumulates from block to block (ResBlock convolutions,
    GroupNorm statistics and self-attention spread any local change in a random-weight model) is reported, not gated."""
    model, clip, vae = tiny
    patched, _ = region_lora(comfy, model, canvas, name=LINEAR_LORA)  # region A: the left half
    from conftest import loaded_pack

    grid_shape = loaded_pack().pakati_core.regional.attention.grid_shape
    blocks, calls = block_calls(comfy, patched, clip)
    _, base_calls = block_calls(comfy, model, clip)
    own, accumulated = {}, {}
    with torch.no_grad():
        for name, (x, kwargs, out) in calls.items():
            hw = grid_shape(LATENT, x.shape[1])
            kw = dict(kwargs, transformer_options=without_region_lora(kwargs.get("transformer_options", {})))
            base_same_input = blocks[name](x, **kw)
            own[name] = halves((out - base_same_input).abs().mean(dim=(0, 2)).reshape(hw), hw)
            accumulated[name] = halves((out - base_calls[name][2]).abs().mean(dim=(0, 2)).reshape(hw), hw)
    assert len(own) >= 5
    assert all(r >= 5.0 for r in own.values()), own
    pos, neg = conds(clip)
    plain = sample(comfy, model, pos, neg)
    img_b, img_r = vae.decode(plain), vae.decode(sample(comfy, patched, pos, neg))
    diff = (img_r - img_b).detach().abs().mean(dim=(0, 3))
    image_ratio = float(diff[:, : W // 2].mean() / diff[:, W // 2 :].mean())
    print(
        f"region LoRA inside/outside change: each block's own, min {min(own.values()):.1f}x; accumulated through the "
        f"network, min {min(accumulated.values()):.1f}x; decoded image {image_ratio:.2f}x"
    )
    print("own:", {k: round(v, 1) for k, v in own.items()})
    print("accumulated:", {k: round(v, 1) for k, v in accumulated.items()})
    empty, _ = region_lora(comfy, model, canvas, mask=torch.zeros(1, H, W))
    assert torch.equal(sample(comfy, empty, pos, neg), plain)


def test_full_mask_equals_lora_loader_model_only(comfy, tiny, loras, canvas):
    model, clip, _ = tiny
    patched, _ = region_lora(comfy, model, canvas, mask=torch.ones(1, H, W))
    full = comfy.NODE_CLASS_MAPPINGS["LoraLoaderModelOnly"]().load_lora_model_only(model, LORA, 1.0)[0]
    pos, neg = conds(clip)
    a, b = sample(comfy, patched, pos, neg), sample(comfy, full, pos, neg)
    plain = sample(comfy, model, pos, neg)
    assert torch.isfinite(a).all()
    assert (a - b).abs().max() < 1e-3 * (b - plain).abs().max()


def test_text_encoder_part_reaches_only_its_regions_prompt(comfy, tiny, loras, canvas):
    import comfy.sd as comfy_sd  # not `import comfy.sd`: that would rebind the `comfy` fixture

    model, clip, _ = tiny
    _, rclip = region_lora(comfy, model, canvas, clip=clip)
    regions, pos, _ = (
        node(comfy, "PakatiRegionalConditioning")
        .execute(clip=rclip, canvas=canvas, base_prompt="a landscape photo", base_negative="")
        .result
    )
    _, lora_clip = comfy_sd.load_lora_for_models(None, clip, loras, 0.0, 1.0)

    def enc(c, t):
        return c.encode_from_tokens(c.tokenize(t), return_pooled=True)[0]

    ra, rb = regions.regions
    assert torch.equal(ra.cond, enc(lora_clip, "a red apple"))
    assert not torch.allclose(ra.cond, enc(clip, "a red apple"), atol=1e-4)
    assert torch.equal(rb.cond, enc(clip, "a blue sea"))
    plain_pos, _ = conds(clip)
    assert torch.equal(pos[0][0], plain_pos[0][0])
    # chained: region B's LoRA binds to B, A keeps its own
    _, both = region_lora(comfy, model, canvas, region="B", name=OTHER_LORA, clip=rclip)
    regions2 = node(comfy, "PakatiRegionalConditioning").execute(clip=both, canvas=canvas, base_prompt="x", base_negative="").result[0]
    assert torch.equal(regions2.regions[0].cond, ra.cond)
    assert not torch.equal(regions2.regions[1].cond, rb.cond)


def test_with_apply_regions_in_either_order_a_global_lora_and_the_kv_cache(comfy, tiny, loras, canvas):
    model, clip, _ = tiny
    glob, gclip = comfy.NODE_CLASS_MAPPINGS["LoraLoader"]().load_lora(model, clip, OTHER_LORA, 0.7, 0.7)
    _, rclip = region_lora(comfy, glob, canvas, clip=gclip)
    regions, pos, neg = (
        node(comfy, "PakatiRegionalConditioning")
        .execute(clip=rclip, canvas=canvas, base_prompt="a landscape photo", base_negative="")
        .result
    )
    apply = node(comfy, "PakatiApplyRegions")
    opts = {"base_weight": 0.3, "auto_negative": 0.0, "start_percent": 0.0, "end_percent": 1.0}
    regional = apply.execute(model=glob, regions=regions, **opts).result[0]
    lora_then_regions = apply.execute(model=region_lora(comfy, glob, canvas)[0], regions=regions, **opts).result[0]
    regions_then_lora = region_lora(comfy, regional, canvas)[0]
    a = sample(comfy, lora_then_regions, pos, neg)
    b = sample(comfy, regions_then_lora, pos, neg)
    only_regions = sample(comfy, regional, pos, neg)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    assert (a - b).abs().max() < 1e-3 * (a - only_regions).abs().max()
    # the regional wrapper is shared by `regional` and `regions_then_lora`: its K/V cache must tell them apart
    cache = regional.get_wrappers("apply_model", "pakati_regional")[0].projections
    again = sample(comfy, regional, pos, neg)
    assert torch.equal(again, only_regions)
    hits = cache.hits
    assert torch.equal(sample(comfy, regions_then_lora, pos, neg), b)
    assert torch.equal(sample(comfy, regions_then_lora, pos, neg), b) and cache.hits > hits
    # the kv-only LoRA bound to region A changes A's own prompt tokens' K/V (key of the cache) as well as the base tokens'
    kv_model = region_lora(comfy, regional, canvas, name=KV_LORA)[0]
    kv_masked_only = region_lora(comfy, regional, canvas, name=KV_LORA, mask=half_mask())[0]  # bound to A as well
    assert not torch.equal(sample(comfy, kv_model, pos, neg), only_regions)
    assert torch.equal(sample(comfy, kv_masked_only, pos, neg), sample(comfy, kv_model, pos, neg))


def test_errors_name_the_node_and_the_file(comfy, tiny, loras, canvas):
    model, clip, _ = tiny
    with pytest.raises(ValueError, match=r"PakatiRegionLora: input 'lora_name': 'pakati_foreign.safetensors' changes no layer"):
        region_lora(comfy, model, canvas, name=FOREIGN)
    with pytest.raises(ValueError, match=r"PakatiRegionLora: input 'region': .*no region named 'C'"):
        region_lora(comfy, model, canvas, region="C")
    with pytest.raises(ValueError, match=r"PakatiRegionLora: input 'mask': a batch of 2 masks"):
        region_lora(comfy, model, canvas, mask=torch.ones(2, H, W))
    wide, _ = region_lora(comfy, model, canvas, mask=torch.ones(1, 64, 128))
    pos, neg = conds(clip)
    with pytest.raises(Exception, match=r"PakatiRegionLora: input 'mask': the mask of .* is 128x64"):
        sample(comfy, wide, pos, neg)


def region_lora_prompt(lora_a: str, lora_b: str) -> dict:
    return {
        "1": {"class_type": "PakatiTestTinySDXL", "inputs": {"seed": 0, "model_channels": 32}},
        "2": {"class_type": "PakatiCanvas", "inputs": {"width": W, "height": H, "regions": layout()}},
        "3": {
            "class_type": "PakatiRegionLora",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "canvas": ["2", 0],
                "region": "A",
                "lora_name": lora_a,
                "strength_model": 1.0,
                "strength_clip": 1.0,
            },
        },
        "4": {
            "class_type": "PakatiRegionLora",
            "inputs": {
                "model": ["3", 0],
                "clip": ["3", 1],
                "canvas": ["2", 0],
                "region": "b",
                "lora_name": lora_b,
                "strength_model": 0.8,
                "strength_clip": 1.0,
            },
        },
        "5": {
            "class_type": "PakatiRegionalConditioning",
            "inputs": {"clip": ["4", 1], "canvas": ["2", 0], "base_prompt": "a landscape", "base_negative": ""},
        },
        "6": {
            "class_type": "PakatiApplyRegions",
            "inputs": {
                "model": ["4", 0],
                "regions": ["5", 0],
                "base_weight": 0.3,
                "auto_negative": 0.0,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        },
        "7": {"class_type": "EmptyLatentImage", "inputs": {"width": W, "height": H, "batch_size": 1}},
        "8": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["6", 0],
                "positive": ["5", 1],
                "negative": ["5", 2],
                "latent_image": ["7", 0],
                "seed": 1,
                "steps": 2,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    }


def test_region_loras_run_through_prompt_on_the_real_server(comfy_server, tiny):
    from comfy_client import ExecutionFailed

    model, clip, _ = tiny
    folder = comfy_server.base / "models" / "loras"
    write_lora(kohya_lora(model, clip, rank=4, seed=3), folder, LORA)
    write_lora(kohya_lora(model, clip, rank=4, seed=5), folder, OTHER_LORA)
    write_lora(
        {"lora_unet_no_such_block.lora_down.weight": torch.ones(2, 8), "lora_unet_no_such_block.lora_up.weight": torch.ones(8, 2)},
        folder,
        FOREIGN,
    )
    entry = comfy_server.run(region_lora_prompt(LORA, OTHER_LORA), timeout=900)
    (img,) = comfy_server.images(entry, "10")
    assert img.shape == (H, W, 3) and img.std() > 0
    with pytest.raises(ExecutionFailed) as info:
        comfy_server.run(region_lora_prompt(LORA, FOREIGN), timeout=900)
    assert "PakatiRegionLora: input 'lora_name': 'pakati_foreign.safetensors' changes no layer" in json.dumps(info.value.args[0])
