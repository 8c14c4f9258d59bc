"""Pakati's regions and cubiq's ComfyUI_IPAdapter_plus on one model, in either node order.

The real pack (pinned commit, see tests/ipadapter_pack.py) is loaded through ComfyUI's own custom-node
loader; its IPAdapterAdvanced runs on a random IP-Adapter checkpoint in the pack's format and a random
CLIP-vision model built from comfy.clip_vision (tests/host_nodes/pakati_test_nodes/tiny_ipadapter.py).

Both put an attn2 replace on the same blocks. IPAdapterAdvanced writes its ``Attn2Replace`` into the
model's ``patches_replace`` when its node runs; Pakati's APPLY_MODEL wrapper puts its replace on at each
model call and wraps the one it finds there, so neither overrides the other in either order. Measured at
the attention output (``attn2.to_out``) of the first layer where each acts first, where the layer's input is
the same in the configurations compared:
- input block 5 (the first block the pack patches on this UNet; Pakati's regions act from input block 3):
  with regions, IP-Adapter adds its term under its ``attn_mask`` and nothing outside;
- input block 3 (the first cross-attention; IP-Adapter does not patch it): with IP-Adapter on, changing one
  region's prompt changes that region only.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

pytestmark = pytest.mark.host

W = H = 256  # latent 32x32: input block 3 attends on a 16x16 grid, input block 5 on 8x8


def layout(prompt_b="a blue sea"):
    return json.dumps(
        {
            "version": 1,
            "width": W,
            "height": H,
            "regions": [
                {"id": "a", "name": "A", "shape": "rect", "points": [[0, 0], [128, 256]], "prompt": "a red apple"},
                {"id": "b", "name": "B", "shape": "rect", "points": [[128, 0], [256, 256]], "prompt": prompt_b},
            ],
        }
    )


def top_half() -> torch.Tensor:
    m = torch.zeros(1, H, W)
    m[:, : H // 2] = 1.0
    return m


@pytest.fixture(scope="module")
def ipadapter_nodes(comfy):
    from harness import HOST
    from ipadapter_pack import require_pack

    pack = require_pack(HOST)
    if "IPAdapterAdvanced" not in comfy.NODE_CLASS_MAPPINGS:
        ok = asyncio.run(comfy.load_custom_node(str(pack)))
        assert ok, f"ComfyUI's loader failed to import ComfyUI_IPAdapter_plus from {pack} (see the log above)"
    assert "IPAdapterAdvanced" in comfy.NODE_CLASS_MAPPINGS
    return comfy.NODE_CLASS_MAPPINGS


def with_ipadapter(nodes, model, mask=None, weight=1.0, seed=7):
    from pakati_test_nodes.tiny_ipadapter import tiny_clip_vision, tiny_ipadapter

    g = torch.Generator().manual_seed(seed)
    reference = torch.rand(1, 224, 224, 3, generator=g)
    return nodes["IPAdapterAdvanced"]().apply_ipadapter(
        model,
        tiny_ipadapter(),
        weight=weight,
        weight_type="linear",
        combine_embeds="concat",
        start_at=0.0,
        end_at=1.0,
        embeds_scaling="V only",
        image=reference,
        clip_vision=tiny_clip_vision(),
        attn_mask=mask,
    )[0]


def with_regions(nodes, tiny, model, prompt_b="a blue sea"):
    _, clip, _ = tiny
    canvas = nodes["PakatiCanvas"].execute(width=W, height=H, regions=layout(prompt_b)).result[0]
    regions, pos, neg = (
        nodes["PakatiRegionalConditioning"].execute(clip=clip, canvas=canvas, base_prompt="a landscape photo", base_negative="").result
    )
    patched = (
        nodes["PakatiApplyRegions"]
        .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )
    return patched, pos, neg


class AttnOutProbe:
    """attn2.to_out outputs of the given transformer blocks on the first model call."""

    def __init__(self, model, keys):
        from regional_helpers import attn2_modules

        blocks = attn2_modules(model)
        self.targets = {key: blocks[key].attn2.to_out for key in keys}
        self.out: dict = {}

    def __enter__(self):
        def make(key):
            def hook(module, args, output):
                self.out.setdefault(key, output.detach().clone())

            return hook

        self.handles = [m.register_forward_hook(make(k)) for k, m in self.targets.items()]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


FIRST_IP, FIRST_XATTN = ("input", 5, 0), ("input", 3, 0)


def run(comfy, model, pos, neg, steps=1, cfg=1.0, seed=5):
    """One sampler run; with cfg 1 ComfyUI evaluates the conditional half only, so the probe sees one image."""
    with AttnOutProbe(model, [FIRST_IP, FIRST_XATTN]) as probe:
        latent = comfy.common_ksampler(
            model, seed, steps, cfg, "euler", "normal", pos, neg, {"samples": torch.zeros(1, 4, H // 8, W // 8)}
        )[0]["samples"]
    grids = {}
    for key, x in probe.out.items():
        side = round(x.shape[1] ** 0.5)
        grids[key] = x.view(x.shape[0], side, side, x.shape[-1])
    return latent, grids


def norm(x):
    return float(x.norm())


@pytest.mark.parametrize("order", ["ipadapter_then_regions", "regions_then_ipadapter"])
def test_regions_and_ipadapter_both_act_where_each_should(comfy, tiny, ipadapter_nodes, order):
    from regional_helpers import attn2_keys

    nodes = ipadapter_nodes
    model = tiny[0]
    assert FIRST_IP in attn2_keys(model) and FIRST_XATTN in attn2_keys(model)
    regional, pos, neg = with_regions(nodes, tiny, model)
    ipa = with_ipadapter(nodes, model, mask=top_half())
    if order == "ipadapter_then_regions":
        both, _, _ = with_regions(nodes, tiny, ipa)
        both_b, _, _ = with_regions(nodes, tiny, ipa, prompt_b="a burning volcano at night")
    else:
        both = with_ipadapter(nodes, regional, mask=top_half())
        both_b = with_ipadapter(nodes, with_regions(nodes, tiny, model, prompt_b="a burning volcano at night")[0], mask=top_half())

    plain_latent, plain = run(comfy, model, pos, neg)
    ipa_latent, ipa_only = run(comfy, ipa, pos, neg)
    reg_latent, reg_only = run(comfy, regional, pos, neg)
    both_latent, together = run(comfy, both, pos, neg)
    _, together_b = run(comfy, both_b, pos, neg)
    for latent in (plain_latent, ipa_latent, reg_latent, both_latent):
        assert torch.isfinite(latent).all()

    # (a) IP-Adapter alone and (b) regions alone change the image; (c) together differs from each alone
    assert not torch.equal(ipa_latent, plain_latent), "IP-Adapter alone changes the image"
    assert not torch.equal(reg_latent, plain_latent), "regions alone change the image"
    assert not torch.equal(both_latent, ipa_latent), "regions still act with IP-Adapter on"
    assert not torch.equal(both_latent, reg_latent), "IP-Adapter still acts with regions on"

    # IP-Adapter's own term at the first block it patches: present under its attn_mask, absent outside, with and without regions
    top, bottom = slice(0, 4), slice(4, 8)
    for label, with_ip, without_ip in (("alone", ipa_only, plain), ("with regions", together, reg_only)):
        d = with_ip[FIRST_IP] - without_ip[FIRST_IP]
        assert norm(d[:, top]) > 1e-3 * norm(without_ip[FIRST_IP][:, top]), f"IP-Adapter {label}: its term is there under the mask"
        assert norm(d[:, bottom]) <= 1e-5 * norm(without_ip[FIRST_IP][:, bottom]), f"IP-Adapter {label}: nothing outside its mask"
    # region locality with IP-Adapter on: at the first cross-attention, changing region B's prompt changes region B only
    a = together[FIRST_XATTN]
    b = together_b[FIRST_XATTN]
    torch.testing.assert_close(a, reg_only[FIRST_XATTN], rtol=1e-5, atol=1e-6, msg="IP-Adapter does not patch input block 3")
    assert norm(b[:, :, :8] - a[:, :, :8]) <= 1e-4 * norm(a[:, :, :8]), "region A does not see region B's prompt"
    assert norm(b[:, :, 8:] - a[:, :, 8:]) > 1e-3 * norm(a[:, :, 8:]), "region B follows its own prompt with IP-Adapter on"
    # the regional change at the first cross-attention is what the regions alone make there
    d_regions = reg_only[FIRST_XATTN] - plain[FIRST_XATTN]
    assert norm(d_regions) > 1e-3 * norm(plain[FIRST_XATTN])


def test_node_order_does_not_matter(comfy, tiny, ipadapter_nodes):
    nodes = ipadapter_nodes
    model = tiny[0]
    regional, pos, neg = with_regions(nodes, tiny, model)
    first = with_regions(nodes, tiny, with_ipadapter(nodes, model, mask=top_half()))[0]
    second = with_ipadapter(nodes, regional, mask=top_half())
    l1, _ = run(comfy, first, pos, neg, steps=2, cfg=4.0)
    l2, _ = run(comfy, second, pos, neg, steps=2, cfg=4.0)
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
