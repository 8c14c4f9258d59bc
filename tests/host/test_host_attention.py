"""Attention capture and masks inside real ComfyUI: exact maps, composition, planted tokens, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from comfy_client import api_template
from regional_helpers import attn2_modules

pytestmark = pytest.mark.host

PROMPT = "a photo of a red shirt and a zxqvwk hat"


def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


def capture(comfy, model, clip, text=PROMPT, words="shirt, zxqvwk", blocks="all", start=0.0, end=1.0):
    return (
        node(comfy, "PakatiCaptureAttention")
        .execute(model=model, clip=clip, text=text, words=words, blocks=blocks, start_percent=start, end_percent=end)
        .result
    )


def encode(comfy, clip, text):
    return comfy.CLIPTextEncode().encode(clip, text)[0]


def sample(comfy, model, pos, neg, hw=(11, 13), seed=3, steps=2, cfg=5.0, batch=1, latent=None, denoise=1.0):
    latent = latent if latent is not None else torch.zeros(batch, 4, *hw)
    return comfy.common_ksampler(model, seed, steps, cfg, "euler", "normal", pos, neg, {"samples": latent}, denoise=denoise)[0]["samples"]


class QKHooks:
    """Records each attn2's projected q and k and the call's cond/uncond layout, from forward hooks."""

    def __init__(self, model):
        self.blocks = attn2_modules(model)
        self.calls: dict[tuple, list] = {k: [] for k in self.blocks}

    def __enter__(self):
        self.handles = []
        for key, tb in self.blocks.items():
            state = {}

            def pre(module, args, kwargs, state=state):
                state["chunks"] = list(kwargs["transformer_options"]["cond_or_uncond"])

            def hq(module, args, out, state=state):
                state["q"] = out.detach().clone()

            def hk(module, args, out, state=state, key=key):
                if state.get("q") is not None:  # the block's own projection (not Pakati regions' K/V of their prompts)
                    self.calls[key].append((state["chunks"], state["q"], out.detach().clone()))
                    state["q"] = None

            self.handles += [
                tb.register_forward_pre_hook(pre, with_kwargs=True),
                tb.attn2.to_q.register_forward_hook(hq),
                tb.attn2.to_k.register_forward_hook(hk),
            ]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def expected(self, key, positions) -> torch.Tensor:
        """Mean over calls of softmax(QKᵀ/√d) on the cond rows, summed over positions, head-averaged: [B, N]."""
        heads = self.blocks[key].attn2.heads
        maps = []
        for chunks, q, k in self.calls[key]:
            per = q.shape[0] // len(chunks)
            rows = [r for i, c in enumerate(chunks) if c == 0 for r in range(i * per, (i + 1) * per)]
            q, k = q[rows].double(), k[rows].double()
            b, n, c = q.shape
            d = c // heads
            qh = q.view(b, n, heads, d).permute(0, 2, 1, 3)
            kh = k.view(b, k.shape[1], heads, d).permute(0, 2, 1, 3)
            p = torch.softmax(qh @ kh.transpose(-1, -2) / d**0.5, dim=-1)
            m = p[..., positions].sum(-1).mean(1)
            maps.append(m.view(len(rows) // per, per, n).mean(0))
        return torch.stack(maps).mean(0)


def test_word_positions_cover_every_sub_token_of_both_encoders(comfy, tiny):
    _, clip, _ = tiny
    _, handle = capture(comfy, tiny[0], clip)
    rec = handle.recorder
    assert rec.positions[0] == [6]  # <start> a photo of a red shirt
    toks = clip.tokenize("zxqvwk", return_word_ids=True)
    n = {enc: sum(1 for t in chunks[0] if t[2] != 0) for enc, chunks in toks.items()}
    assert min(n.values()) > 1, "the made-up word splits into several sub-tokens"
    assert rec.positions[1] == list(range(9, 9 + max(n.values())))  # shirt and a <zxqvwk...>


@pytest.mark.parametrize("hw,batch", [((11, 13), 1), ((8, 8), 2)])
def test_captured_map_equals_softmax_of_hooked_q_k_at_every_layer(comfy, tiny, hw, batch):
    model, clip, _ = tiny
    patched, handle = capture(comfy, model, clip)
    pos, neg = encode(comfy, clip, PROMPT), encode(comfy, clip, "blurry")
    with QKHooks(patched) as hooks:
        out = sample(comfy, patched, pos, neg, hw=hw, batch=batch, cfg=5.0)
    rec = handle.recorder
    assert sorted(rec.layers) == sorted(hooks.blocks), "every cross-attention layer is recorded"
    assert all(chunks == [1, 0] or chunks == [0, 1] for key in hooks.calls for chunks, _, _ in hooks.calls[key]), "CFG batches"
    for key in hooks.blocks:
        got = rec.layer_map(key)  # [W, B, h, w]
        assert got.shape[1] == batch
        for w, positions in enumerate(rec.positions):
            want = hooks.expected(key, positions)
            assert torch.allclose(got[w].reshape(batch, -1).double(), want, atol=1e-5, rtol=0), (key, w)
    # averaged map: every layer resized by area to the latent grid, then the mean
    layers = [torch.nn.functional.adaptive_avg_pool2d(rec.layer_map(k), hw) for k in rec.layers]
    assert torch.allclose(rec.maps(), torch.stack(layers).mean(0), atol=1e-6)
    assert rec.maps().shape == (2, batch, *hw)
    plain = sample(comfy, model, pos, neg, hw=hw, batch=batch, cfg=5.0)
    assert torch.equal(out, plain), "recording leaves the sampler's result bit-identical"


def test_blocks_and_step_range_limit_what_is_recorded(comfy, tiny):
    model, clip, _ = tiny
    pos, neg = encode(comfy, clip, PROMPT), encode(comfy, clip, "")
    patched, handle = capture(comfy, model, clip, blocks="output")
    with QKHooks(patched) as hooks:
        sample(comfy, patched, pos, neg, steps=3)
    assert handle.recorder.layers and all(k[0] == "output" for k in handle.recorder.layers)
    patched, handle = capture(comfy, model, clip, start=0.0, end=0.4)
    with QKHooks(patched) as hooks:
        sample(comfy, patched, pos, neg, steps=3)
    hooks.calls = {k: v[:1] for k, v in hooks.calls.items()}  # euler calls the model once per step; the first of 3 steps is < 40 %
    for k in handle.recorder.layers:
        assert torch.allclose(
            handle.recorder.layer_map(k)[0].reshape(1, -1).double(), hooks.expected(k, handle.recorder.positions[0]), atol=1e-5
        )


def regions_model(comfy, tiny, model):
    _, clip, _ = tiny
    layout = json.dumps(
        {
            "version": 1,
            "width": 104,
            "height": 88,
            "regions": [{"id": "a", "name": "A", "shape": "rect", "points": [[0, 0], [52, 88]], "prompt": "a blue coat"}],
        }
    )
    canvas = node(comfy, "PakatiCanvas").execute(width=104, height=88, regions=layout).result[0]
    regions, _, _ = node(comfy, "PakatiRegionalConditioning").execute(clip=clip, canvas=canvas, base_prompt=PROMPT, base_negative="").result
    return (
        node(comfy, "PakatiApplyRegions")
        .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )


def test_composes_with_apply_regions_in_either_order(comfy, tiny):
    model, clip, _ = tiny
    pos, neg = encode(comfy, clip, PROMPT), encode(comfy, clip, "")
    regional_only = sample(comfy, regions_model(comfy, tiny, model), pos, neg)
    cap_a, ha = capture(comfy, regions_model(comfy, tiny, model), clip)
    with QKHooks(cap_a) as hooks:
        out_a = sample(comfy, cap_a, pos, neg)
    cap, hb = capture(comfy, model, clip)
    out_b = sample(comfy, regions_model(comfy, tiny, cap), pos, neg)
    for out in (out_a, out_b):
        assert torch.allclose(out, regional_only, atol=1e-5), "regions still render with the capture on"
    assert torch.allclose(ha.recorder.maps(), hb.recorder.maps(), atol=1e-6)
    # the map is the base prompt's: softmax over its 77 tokens (hooked k holds the base context)
    for key in hooks.blocks:
        hooks.calls[key] = [(c, q, k[:, :77]) for c, q, k in hooks.calls[key]]
        assert torch.allclose(
            ha.recorder.layer_map(key)[0].reshape(1, -1).double(), hooks.expected(key, ha.recorder.positions[0]), atol=1e-5
        )


def test_wraps_another_packs_attn2_replace(comfy, tiny):
    import comfy.ldm.modules.attention as attention

    calls = []

    def other(q, k, v, extra_options):
        calls.append(k.shape[1])
        return attention.optimized_attention(q, k, v, extra_options["n_heads"]) * 0.5

    model, clip, _ = tiny
    m = model.clone()
    for block, idx, t in attn2_modules(m):
        m.set_model_attn2_replace(other, block, idx, t)
    pos, neg = encode(comfy, clip, PROMPT), encode(comfy, clip, "")
    want = sample(comfy, m, pos, neg)
    patched, handle = capture(comfy, m, clip)
    calls.clear()
    got = sample(comfy, patched, pos, neg)
    assert calls and torch.equal(got, want), "the other replace still runs, result unchanged"
    assert handle.recorder.layers


def test_capture_errors_name_node_and_input(comfy, tiny):
    model, clip, _ = tiny
    with pytest.raises(ValueError, match="PakatiCaptureAttention: input 'words'.*does not occur"):
        capture(comfy, model, clip, words="giraffe")
    assert "input 'words'" in node(comfy, "PakatiCaptureAttention").validate_inputs(words=" , ")
    _, handle = capture(comfy, model, clip)
    mask = node(comfy, "PakatiAttentionMask")
    args = dict(
        capture=handle,
        latent={"samples": torch.zeros(1, 4, 11, 13)},
        word="shirt",
        mode="threshold",
        value=0.5,
        blur=0.0,
        dilate=0,
        output="binary",
    )
    with pytest.raises(ValueError, match="PakatiAttentionMask: input 'capture'.*nothing was recorded"):
        mask.execute(**args)
    with pytest.raises(ValueError, match="PakatiAttentionMask: input 'word'.*'hat' was not captured"):
        mask.execute(**(args | {"word": "hat"}))


def planted_context(comfy, tiny, cond, positions, region, hw, latent, seed, denoise, level=5.0):
    """Conditioning whose tokens at ``positions`` get, at every attn2 layer and head, a key whose score
    against the layer's first-step queries (the real model's projections, hooked) is +level inside
    ``region`` and -level outside: the word the model attends there. One least-squares solve over all
    layers' key projections (they share the 2048-wide context)."""
    model, clip, _ = tiny
    pos = [[cond, {"pooled_output": torch.zeros(1, 1280)}]]
    with QKHooks(model) as hooks:
        sample(comfy, model, pos, pos, hw=hw, seed=seed, steps=1, cfg=1.0, latent=latent, denoise=denoise)
    rows, targets = [], []
    for key, tb in hooks.blocks.items():
        _, q, _ = hooks.calls[key][0]
        n = q.shape[1]
        grid = next(g for g in ((hw[0] >> i, hw[1] >> i) for i in range(4)) if g[0] * g[1] == n)
        m = torch.nn.functional.adaptive_avg_pool2d(region[None, None].float(), grid).reshape(-1).double()
        heads, d = tb.attn2.heads, q.shape[-1] // tb.attn2.heads
        wk = tb.attn2.to_k.weight.detach().double()
        qm = q[0].double()
        dq = ((qm * m[:, None]).sum(0) / m.sum() - (qm * (1 - m)[:, None]).sum(0) / (1 - m).sum()).view(heads, d)
        key_target = (level * d**0.5 * dq / (dq * dq).sum(-1, keepdim=True)).reshape(heads * d)  # per head along the mean-query gap
        rows.append(wk)
        targets.append(key_target)
        rows.append(tb.attn2.to_v.weight.detach().double())  # a zero value: the planted word changes no features
        targets.append(torch.zeros(tb.attn2.to_v.weight.shape[0], dtype=torch.float64))
    c = torch.linalg.lstsq(torch.cat(rows), torch.cat(targets)[:, None], driver="gelsd", rcond=1e-7).solution[:, 0]
    planted = cond.clone()
    planted[0, positions] = c.to(cond.dtype)
    return [[planted, {"pooled_output": torch.zeros(1, 1280)}]]


@pytest.mark.parametrize("seed", [1, 2])
def test_planted_token_mask_covers_its_region(comfy, tiny, seed):
    model, clip, _ = tiny
    hw = (16, 16)
    region = torch.zeros(hw)
    region[4:12, 0:8] = 1.0  # whole cells of the coarsest (4x4) attention grid
    latent = torch.zeros(1, 4, *hw)
    latent[:, :, region > 0] = 8.0
    text = "a photo of a cat on a sofa"
    patched, handle = capture(comfy, model, clip, text=text, words="cat")
    cond = encode(comfy, clip, text)[0][0]
    pos = planted_context(comfy, tiny, cond, handle.recorder.positions[0], region, hw, latent, seed, 0.3)
    neg = encode(comfy, clip, "")
    out = sample(comfy, patched, pos, neg, hw=hw, seed=seed, steps=3, cfg=4.0, latent=latent, denoise=0.3)
    mask, preview = (
        node(comfy, "PakatiAttentionMask")
        .execute(
            capture=handle,
            latent={"samples": out},
            word="cat",
            mode="top fraction",
            value=float(region.mean()),
            blur=0.0,
            dilate=0,
            output="binary",
        )
        .result
    )
    assert mask.shape == (1, 128, 128) and preview.shape == (1, 128, 128, 3)
    want = torch.nn.functional.interpolate(region[None, None], size=(128, 128), mode="nearest")[0, 0] > 0
    got = mask[0] > 0.5
    iou = float((got & want).sum() / (got | want).sum())
    assert iou >= 0.8, iou


def test_capture_sample_mask_crop_regenerate_through_the_server(comfy_server):
    """The template's chain queued on /prompt: only pixels inside the attention mask (grown and feathered) change."""
    prompt = api_template("attention_mask_edit")
    for n in prompt.values():
        if n["class_type"] == "EmptyLatentImage":
            n["inputs"].update(width=128, height=96)
        if n["class_type"] == "PakatiCropRegion":
            n["inputs"].update(target="keep", grow=2, feather=2.0)
        if n["class_type"] == "PakatiAttentionMask":
            n["inputs"]["dilate"] = 4
        if n["class_type"] == "KSampler":
            n["inputs"]["steps"] = 2
    entry = comfy_server.run(prompt)
    assert entry["status"]["status_str"] == "success"
    source_id = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage" and v["inputs"]["filename_prefix"].endswith("source"))
    edit_id = next(k for k, v in prompt.items() if v["class_type"] == "PakatiSaveImage")
    (src,), (edit,) = comfy_server.images(entry, source_id), comfy_server.images(entry, edit_id)
    assert src.shape == edit.shape == (96, 128, 3)
    changed = np.abs(edit.astype(int) - src.astype(int)).max(-1) > 0
    assert 0.0 < changed.mean() < 0.9, "the regenerated area is a part of the image"
    preview = next(k for k, v in prompt.items() if v["class_type"] == "PreviewImage")
    (attn_map,) = comfy_server.images(entry, preview)
    assert attn_map.shape[:2] == (96, 128) and attn_map.max() == 255
    # every pixel farther from the thresholded map than the dilation plus the crop's grow and feather band is bit-identical
    import cv2

    from pakati_core.regenerate.blend import band_radius

    mask_in = next(v for v in prompt.values() if v["class_type"] == "PakatiAttentionMask")["inputs"]
    crop_in = next(v for v in prompt.values() if v["class_type"] == "PakatiCropRegion")["inputs"]
    core = (attn_map[..., 0] >= round(255 * mask_in["value"]) - 1).astype(np.uint8)
    dist = cv2.distanceTransform(1 - core, cv2.DIST_L2, 5)
    far = dist > mask_in["dilate"] + band_radius(crop_in["grow"], crop_in["feather"]) + 2
    assert far.mean() > 0.1 and not changed[far].any()
    assert changed[core > 0].mean() > 0.5, "inside the attention mask the region was regenerated"


def test_attention_mask_becomes_a_region_for_a_second_regional_pass_through_the_server(comfy_server):
    """capture -> sample -> attention mask -> Pakati Region From Mask -> regional conditioning -> a second pass, on /prompt:
    the region's own mask (from the canvas it made) matches the attention mask, and the regional pass renders."""
    prompt = api_template("attention_mask_edit")
    for n in prompt.values():
        if n["class_type"] == "EmptyLatentImage":
            n["inputs"].update(width=128, height=96)
        if n["class_type"] == "KSampler":
            n["inputs"]["steps"] = 2
    mask_id = next(k for k, v in prompt.items() if v["class_type"] == "PakatiAttentionMask")
    prompt[mask_id]["inputs"].update(mode="top fraction", value=0.3, dilate=4, blur=2.0, output="binary")
    base = "a woman in a shirt and a hat"
    empty = json.dumps({"version": 1, "width": 128, "height": 96, "regions": []})
    prompt.update(
        {
            "30": {"class_type": "PakatiCanvas", "inputs": {"width": 128, "height": 96, "regions": empty}},
            "31": {
                "class_type": "PakatiRegionFromMask",
                "inputs": {
                    "canvas": ["30", 0],
                    "mask": [mask_id, 0],
                    "name": "shirt",
                    "prompt": "a shirt printed with apples",
                    "negative": "",
                    "strength": 1.0,
                    "feather": 0.0,
                    "threshold": 0.5,
                    "max_points": 64,
                },
            },
            "32": {
                "class_type": "PakatiRegionMask",
                "inputs": {"canvas": ["31", 0], "region": "shirt", "feather": 0.0, "exclusive": False},
            },
            "33": {"class_type": "MaskToImage", "inputs": {"mask": ["32", 0]}},
            "34": {"class_type": "SaveImage", "inputs": {"images": ["33", 0], "filename_prefix": "region"}},
            "35": {"class_type": "MaskToImage", "inputs": {"mask": [mask_id, 0]}},
            "36": {"class_type": "SaveImage", "inputs": {"images": ["35", 0], "filename_prefix": "attention"}},
            "37": {
                "class_type": "PakatiRegionalConditioning",
                "inputs": {"clip": ["1", 1], "canvas": ["31", 0], "base_prompt": base, "base_negative": ""},
            },
            "38": {
                "class_type": "PakatiApplyRegions",
                "inputs": {
                    "model": ["1", 0],
                    "regions": ["37", 0],
                    "base_weight": 0.3,
                    "auto_negative": 0.0,
                    "start_percent": 0.0,
                    "end_percent": 1.0,
                },
            },
            "39": {
                "class_type": "KSampler",
                "inputs": {
                    "model": ["38", 0],
                    "positive": ["37", 1],
                    "negative": ["37", 2],
                    "latent_image": ["5", 0],
                    "seed": 7,
                    "steps": 2,
                    "cfg": 5.0,
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "denoise": 1.0,
                },
            },
            "40": {"class_type": "VAEDecode", "inputs": {"samples": ["39", 0], "vae": ["1", 2]}},
            "41": {"class_type": "SaveImage", "inputs": {"images": ["40", 0], "filename_prefix": "second_pass"}},
        }
    )
    entry = comfy_server.run(prompt)
    assert entry["status"]["status_str"] == "success"
    (region,), (attention,), (second,) = (comfy_server.images(entry, k) for k in ("34", "36", "41"))
    import cv2

    want, got = attention[..., 0] > 127, region[..., 0] > 127
    assert 0.05 < want.mean() < 0.8
    count, labels, stats, _ = cv2.connectedComponentsWithStats(want.astype(np.uint8), connectivity=8)
    blob = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))  # the region outlines the mask's largest blob
    assert (got & blob).sum() / (got | blob).sum() >= 0.85
    assert second.shape == (96, 128, 3) and second.std() > 1.0


def test_nodes_have_category_and_tooltips(comfy):
    for name in ("PakatiCaptureAttention", "PakatiAttentionMask", "PakatiRegionFromMask"):
        info = comfy.NODE_CLASS_MAPPINGS[name].GET_NODE_INFO_V1()
        assert info["category"] == ("Pakati/canvas" if name == "PakatiRegionFromMask" else "Pakati/attention")
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"
