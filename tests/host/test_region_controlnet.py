"""PakatiRegionControlNet in real ComfyUI: residuals masked at every grid, locality inside one UNet
evaluation, chaining with ComfyUI's own ControlNetApplyAdvanced, start/end percent, and /prompt.

Tiny SDXL-class model and tiny random ControlNets built from ComfyUI's own classes (comfy.cldm).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.host

W = H = 256  # image; latent 32x32; ControlNet residual grids 32, 16 and 8


def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


def hint(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, H, W, 3, generator=g)


def left_half() -> torch.Tensor:
    m = torch.zeros(1, H, W)
    m[:, :, : W // 2] = 1.0
    return m


def right_half() -> torch.Tensor:
    return 1.0 - left_half()


def soft_ramp() -> torch.Tensor:
    """0 left of x=64, 1 right of x=192, linear between: soft at every residual grid."""
    x = torch.linspace(0.0, 1.0, W)
    return ((x * W - 64.0) / 128.0).clamp(0.0, 1.0).expand(1, H, W).contiguous()


def conditioning(tiny, text="a photo"):
    _, clip, _ = tiny
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def region_cn(comfy, pos, neg, cn, image, mask=None, strength=1.0, start=0.0, end=1.0, **kw):
    return (
        node(comfy, "PakatiRegionControlNet")
        .execute(
            positive=pos,
            negative=neg,
            control_net=cn,
            image=image,
            strength=strength,
            start_percent=start,
            end_percent=end,
            mask=mask,
            **kw,
        )
        .result
    )


def global_cn(comfy, pos, neg, cn, image, strength=1.0, start=0.0, end=1.0):
    return comfy.NODE_CLASS_MAPPINGS["ControlNetApplyAdvanced"]().apply_controlnet(pos, neg, cn, image, strength, start, end)


class Call:
    """One sampler batch's arguments, as ComfyUI's calc_cond_batch gives them to get_control."""

    def __init__(self, model, pos, sigma_percent=0.3, seed=3):
        inner = model.model
        g = torch.Generator().manual_seed(seed)
        self.model = inner
        self.x = torch.randn(2, 4, H // 8, W // 8, generator=g)
        self.sigma = inner.model_sampling.percent_to_sigma(sigma_percent)
        self.t = torch.full((2,), float(self.sigma))
        cond = pos[0][0]
        self.cond = {"c_crossattn": torch.cat([cond, cond]), "y": torch.randn(2, 2816, generator=g) * 0.1}

    def control(self, ctrl):
        """``ctrl``'s residuals for this call (pre_run/cleanup around it, as the sampler does)."""
        ctrl.pre_run(self.model, lambda p: self.model.model_sampling.percent_to_sigma(p))
        try:
            return ctrl.get_control(self.x, self.t, dict(self.cond), 2, {"cond_or_uncond": [0, 1]})
        finally:
            ctrl.cleanup()


def plain(cn, image, strength=1.0, start=0.0, end=1.0):
    return cn.copy().set_cond_hint(image.movedim(-1, 1), strength, (start, end))


def grid_mask(mask: torch.Tensor, shape) -> torch.Tensor:
    """The mask averaged over each residual cell (independent of the pack's resizing)."""
    return F.adaptive_avg_pool2d(mask[None], tuple(shape[-2:]))[0, 0]


def residuals(control):
    return [(key, i, x) for key in ("input", "middle", "output") for i, x in enumerate(control.get(key, []))]


def test_every_residual_is_masked_at_its_own_grid(comfy, tiny):
    from regional_helpers import tiny_controlnet

    model = tiny[0]
    cn, image = tiny_controlnet(), hint(1)
    pos, neg = conditioning(tiny), conditioning(tiny, "")
    call = Call(model, pos)
    reference = call.control(plain(cn, image))
    ref = residuals(reference)
    assert len(ref) >= 7 and {k for k, _, _ in ref} == {"middle", "output"}
    grids = {tuple(x.shape[-2:]) for _, _, x in ref}
    assert grids == {(32, 32), (16, 16), (8, 8)}, grids

    hard_pos, _ = region_cn(comfy, pos, neg, cn, image, mask=left_half())
    hard = residuals(call.control(hard_pos[0][1]["control"]))
    soft_pos, _ = region_cn(comfy, pos, neg, cn, image, mask=soft_ramp())
    soft = residuals(call.control(soft_pos[0][1]["control"]))
    assert len(hard) == len(soft) == len(ref)
    for (key, i, r), (_, _, h), (_, _, s) in zip(ref, hard, soft):
        assert torch.isfinite(r).all() and r.abs().max() > 0, f"{key}[{i}]: the ControlNet gives a residual"
        m = grid_mask(left_half(), r.shape)
        w = r.shape[-1]
        assert torch.equal(h[..., w // 2 :], torch.zeros_like(h[..., w // 2 :])), f"{key}[{i}]: zero outside the hard mask"
        torch.testing.assert_close(h[..., : w // 2], r[..., : w // 2], rtol=1e-5, atol=1e-6, msg=f"{key}[{i}]: unmasked inside")
        assert torch.equal(m[:, : w // 2], torch.ones_like(m[:, : w // 2]))
        ms = grid_mask(soft_ramp(), r.shape)
        assert ((ms > 0.05) & (ms < 0.95)).any(), "the ramp is soft at this grid"
        torch.testing.assert_close(s, r * ms, rtol=1e-4, atol=1e-6, msg=f"{key}[{i}]: m-weighted on the soft edge")


def test_canvas_region_gives_the_same_mask_as_the_region_mask_node(comfy, tiny):
    from regional_helpers import tiny_controlnet

    canvas_json = json.dumps(
        {
            "version": 1,
            "width": W,
            "height": H,
            "regions": [
                {"id": "bg", "name": "background", "shape": "rect", "points": [[0, 0], [256, 256]], "prompt": "a wall"},
                {"id": "p", "name": "person", "shape": "rect", "points": [[32, 48], [160, 240]], "prompt": "a dancer", "feather": 12},
            ],
        }
    )
    canvas = node(comfy, "PakatiCanvas").execute(width=W, height=H, regions=canvas_json).result[0]
    cn, image = tiny_controlnet(), hint(2)
    pos, neg = conditioning(tiny), conditioning(tiny, "")
    call = Call(tiny[0], pos)
    ref = residuals(call.control(plain(cn, image)))
    by_canvas = residuals(call.control(region_cn(comfy, pos, neg, cn, image, canvas=canvas, region="person")[0][0][1]["control"]))
    for (key, i, r), (_, _, c) in zip(ref, by_canvas):
        m = torch.from_numpy(canvas.rasterize(1, r.shape[-1], r.shape[-2]))
        assert ((m > 0) & (m < 1)).any(), "the feathered edge is soft at every grid"
        torch.testing.assert_close(c, r * m, rtol=1e-4, atol=1e-6, msg=f"{key}[{i}]")
    # the background, exclusive: the person stacked above it is left out, softly at the feathered edge
    background = residuals(
        call.control(region_cn(comfy, pos, neg, cn, image, canvas=canvas, region="background", exclusive=True)[0][0][1]["control"])
    )
    for (key, i, r), (_, _, c) in zip(ref, background):
        m = torch.from_numpy(canvas.rasterize(0, r.shape[-1], r.shape[-2]) * (1.0 - canvas.rasterize(1, r.shape[-1], r.shape[-2])))
        assert (m < 0.01).any() and (m > 0.99).any(), "the person is left out of the background"
        torch.testing.assert_close(c, r * m, rtol=1e-4, atol=1e-6, msg=f"background {key}[{i}]")
    with pytest.raises(ValueError, match="PakatiRegionControlNet: input 'region'.*no region named 'nobody'"):
        region_cn(comfy, pos, neg, cn, image, canvas=canvas, region="nobody")
    with pytest.raises(ValueError, match="PakatiRegionControlNet: input 'canvas'"):
        region_cn(comfy, pos, neg, cn, image)


def sample(comfy, model, pos, neg, seed=5, steps=3, cfg=5.0):
    latent = {"samples": torch.zeros(1, 4, H // 8, W // 8)}
    return comfy.common_ksampler(model, seed, steps, cfg, "euler", "normal", pos, neg, latent)[0]["samples"]


def test_empty_mask_gives_the_image_without_the_controlnet_bit_for_bit(comfy, tiny):
    from regional_helpers import tiny_controlnet

    model = tiny[0]
    pos, neg = conditioning(tiny, "a red house"), conditioning(tiny, "")
    without = sample(comfy, model, pos, neg)
    p, n = region_cn(comfy, pos, neg, tiny_controlnet(), hint(1), mask=torch.zeros(1, H, W))
    assert p[0][1]["control"] is not None
    assert torch.equal(sample(comfy, model, p, n), without)
    p, n = region_cn(comfy, pos, neg, tiny_controlnet(), hint(1), mask=left_half())
    assert not torch.equal(sample(comfy, model, p, n), without), "a covering mask lets the ControlNet act"


class EntryProbe:
    """What the UNet holds where ControlNet residuals enter, in one evaluation: the value ComfyUI's ``apply_control``
    returns after the middle block and at every skip connection (state + residual), and, for the report, every output
    block's whole input (the running state concatenated with that skip), which carries what earlier blocks spread."""

    def __init__(self, model):
        from comfy.ldm.modules.diffusionmodules import openaimodel

        self.module, self.unet = openaimodel, model.model.diffusion_model
        self.entries: list[tuple[str, torch.Tensor]] = []
        self.block_inputs: list[torch.Tensor] = []

    def __enter__(self):
        original = self.original = self.module.apply_control

        def recording(h, control, name):
            out = original(h, control, name)
            if name in ("middle", "output"):
                count = sum(1 for n, _ in self.entries if n.startswith("skip"))
                self.entries.append((name if name == "middle" else f"skip {count}", out.detach().clone()))
            return out

        self.module.apply_control = recording
        self.handles = [
            block[0].register_forward_pre_hook(lambda m, args: self.block_inputs.append(args[0].detach().clone()))
            for block in self.unet.output_blocks
        ]
        return self

    def __exit__(self, *exc):
        self.module.apply_control = self.original
        for h in self.handles:
            h.remove()


def unet_entry_points(model, call: Call, control) -> EntryProbe:
    with EntryProbe(model) as probe, torch.no_grad():
        c = None if control is None else {k: list(v) for k, v in control.items()}
        model.model.apply_model(call.x, call.t, c_crossattn=call.cond["c_crossattn"], y=call.cond["y"], control=c, transformer_options={})
    return probe


def inside_outside_ratio(delta: torch.Tensor, mask: torch.Tensor) -> float:
    m = grid_mask(mask, delta.shape)
    d = delta.abs().mean(dim=(0, 1))
    inside, outside = d[m >= 0.999].mean(), d[m <= 0.001].mean()
    return float(inside / outside) if outside > 0 else float("inf")


def test_one_unet_evaluation_changes_inside_the_region_at_every_entry_point(comfy, tiny, record_property):
    from regional_helpers import tiny_controlnet

    model, _, vae = tiny
    cn, image = tiny_controlnet(), hint(1)
    pos, neg = conditioning(tiny, "a dancer"), conditioning(tiny, "")
    mask = left_half()
    call = Call(model, pos, sigma_percent=0.2)
    base = unet_entry_points(model, call, None)
    p, n = region_cn(comfy, pos, neg, cn, image, mask=mask)
    probe = unet_entry_points(model, call, call.control(p[0][1]["control"]))
    names = [name for name, _ in probe.entries]
    assert names == ["middle"] + [f"skip {i}" for i in range(len(model.model.diffusion_model.output_blocks))], names
    ratios = {}
    for (name, a), (_, b) in zip(base.entries, probe.entries):
        assert torch.isfinite(b).all()
        assert (b - a).abs().max() > 0, f"the ControlNet acts at {name}"
        ratios[name] = inside_outside_ratio(b - a, mask)
    for name, r in ratios.items():
        assert r >= 5.0, f"at {name} the change is only {r:.2f}x larger inside the region than outside: {ratios}"
    spread = {f"output block {i}": inside_outside_ratio(b - a, mask) for i, (a, b) in enumerate(zip(base.block_inputs, probe.block_inputs))}

    without = sample(comfy, model, pos, neg)
    region = sample(comfy, model, p, n)
    with torch.no_grad():
        a, b = vae.decode(without), vae.decode(region)
    assert torch.isfinite(b).all()
    d = (b - a).abs().mean(dim=(0, 3))
    m = F.adaptive_avg_pool2d(mask[None], tuple(d.shape))[0, 0]
    image_ratio = float(d[m >= 0.999].mean() / d[m <= 0.001].mean())
    report = {
        "entry points (gated >= 5x)": ratios,
        "output block inputs (not gated)": spread,
        "decoded image (3 steps, not gated)": image_ratio,
    }
    report = json.loads(json.dumps(report), parse_float=lambda v: round(float(v), 2))
    record_property("region_controlnet_inside_outside", json.dumps(report))
    print(f"\nregion ControlNet, mean |change| inside / outside the region: {json.dumps(report)}")


def test_two_region_controlnets_and_a_global_one_chain_in_one_run(comfy, tiny):
    from regional_helpers import tiny_controlnet

    model = tiny[0]
    pose, depth, glob = tiny_controlnet(21), tiny_controlnet(22), tiny_controlnet(23)
    ha, hb, hg = hint(1), hint(2), hint(3)
    pos, neg = conditioning(tiny, "two people"), conditioning(tiny, "")
    # region A first, then ComfyUI's own global ControlNet, then region B: both orders of region vs global in one chain
    p, n = region_cn(comfy, pos, neg, pose, ha, mask=left_half(), start=0.0, end=0.5)
    p, n = global_cn(comfy, p, n, glob, hg, strength=0.7)
    p, n = region_cn(comfy, p, n, depth, hb, mask=right_half(), strength=0.8, start=0.5, end=1.0)
    assert p[0][1]["control"] is n[0][1]["control"], "positive and negative share one chain, as ComfyUI's own node does"
    chain = p[0][1]["control"]

    specs = {"a": (pose, ha, 1.0, 0.0, 0.5, left_half()), "b": (depth, hb, 0.8, 0.5, 1.0, right_half())}
    for percent, active, idle in ((0.2, "a", "b"), (0.8, "b", "a")):
        call = Call(model, pos, sigma_percent=percent)
        got = residuals(call.control(chain))
        net, image, strength, start, end, mask = specs[active]
        mine = residuals(call.control(plain(net, image, strength, start, end)))
        rg = residuals(call.control(plain(glob, hg, 0.7)))
        net, image, strength, start, end, _ = specs[idle]
        assert call.control(plain(net, image, strength, start, end)) is None, f"region {idle} is outside its range at {percent:.0%}"
        assert len(got) == len(rg) == len(mine)
        for (key, i, x), (_, _, r), (_, _, g) in zip(got, mine, rg):
            expected = g + r * grid_mask(mask, x.shape)
            torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-5, msg=f"{key}[{i}] at {percent:.0%} of the schedule")
    out = sample(comfy, model, p, n)
    assert torch.isfinite(out).all()
    assert not torch.equal(out, sample(comfy, model, *global_cn(comfy, pos, neg, glob, hg, strength=0.7)))


def test_errors_name_the_node_and_the_input(comfy, tiny):
    from regional_helpers import tiny_controlnet

    pos, neg = conditioning(tiny), conditioning(tiny, "")
    cls = node(comfy, "PakatiRegionControlNet")
    assert "start_percent" in cls.validate_inputs(start_percent=0.8, end_percent=0.2)
    with pytest.raises(ValueError, match="PakatiRegionControlNet: input 'image'.*NaN"):
        region_cn(comfy, pos, neg, tiny_controlnet(), torch.full((1, 8, 8, 3), float("nan")), mask=left_half())
    wide = torch.ones(1, 64, 256)
    p, n = region_cn(comfy, pos, neg, tiny_controlnet(), hint(1), mask=wide)
    with pytest.raises(ValueError, match="PakatiRegionControlNet: input 'mask'.*aspect"):
        sample(comfy, tiny[0], p, n, steps=1)


def test_region_controlnet_runs_through_prompt_on_the_real_server(comfy_server):
    from PIL import Image

    inputs = comfy_server.base / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    for name, seed in (("pakati_test_pose.png", 1), ("pakati_test_depth.png", 2)):
        Image.fromarray((hint(seed)[0].numpy() * 255).astype(np.uint8)).save(inputs / name)
    canvas = json.dumps(
        {
            "version": 1,
            "width": W,
            "height": H,
            "regions": [
                {"id": "p", "name": "person", "shape": "rect", "points": [[32, 32], [160, 256]], "prompt": "a dancer", "feather": 8}
            ],
        }
    )
    prompt = {
        "1": {"class_type": "PakatiTestTinySDXL", "inputs": {"seed": 0, "model_channels": 32}},
        "2": {"class_type": "PakatiCanvas", "inputs": {"width": W, "height": H, "regions": canvas}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a dancer on a stage"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "5": {"class_type": "PakatiTestTinyControlNet", "inputs": {"seed": 21}},
        "6": {"class_type": "LoadImage", "inputs": {"image": "pakati_test_pose.png"}},
        "7": {
            "class_type": "PakatiRegionControlNet",
            "inputs": {
                "positive": ["3", 0],
                "negative": ["4", 0],
                "control_net": ["5", 0],
                "image": ["6", 0],
                "canvas": ["2", 0],
                "region": "person",
                "strength": 1.0,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        },
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": W, "height": H, "batch_size": 1}},
        "9": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["7", 0],
                "negative": ["7", 1],
                "latent_image": ["8", 0],
                "seed": 3,
                "steps": 2,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "pakati_region_cn"}},
    }
    with_cn = comfy_server.images(comfy_server.run(prompt), "11")[0]
    plain_prompt = json.loads(json.dumps(prompt))
    plain_prompt["9"]["inputs"]["positive"], plain_prompt["9"]["inputs"]["negative"] = ["3", 0], ["4", 0]
    plain_prompt["11"]["inputs"]["filename_prefix"] = "pakati_region_cn_plain"
    without = comfy_server.images(comfy_server.run(plain_prompt), "11")[0]
    assert with_cn.shape == (H, W, 3) and without.shape == (H, W, 3)
    assert not np.array_equal(with_cn, without), "the region ControlNet changes the image"
