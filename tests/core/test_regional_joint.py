"""pakati_core.regional.joint: the joint-attention bias for Flux-class transformers (pure torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pakati_core.errors import RegionalConditioningError
from pakati_core.regional import RegionalOptions, RegionPrompt, RegionSet
from pakati_core.regional.joint import JointGeometry, JointRegionalAttention, flux_grid, masked_block_count, real_token_count

DIM, T, REAL = 8, 12, 4
GRID = (4, 6)
LATENT = (8, 12)


def region(name, mask, tokens=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return RegionPrompt(name=name, cond=torch.randn(1, tokens, DIM, generator=g), mask=mask.astype(np.float32))


def halves():
    left = np.zeros((64, 96), np.float32)
    left[:, :48] = 1.0
    soft = np.zeros((64, 96), np.float32)
    soft[:, 64:] = np.linspace(0.2, 1.0, 32)[None, :]
    return RegionSet((region("L", left, 3, 1), region("R", soft, 5, 2)), family="flux", base_real_tokens=REAL)


def test_real_token_count():
    assert real_token_count([5, 9, 1, 0, 0, 0], 0) == 3
    assert real_token_count([5, 9, 1], 0) == 3
    assert real_token_count([0, 0], 0) == 1


def test_flux_grid_and_depth():
    assert flux_grid((125, 93)) == (63, 47)
    assert masked_block_count(1.0, 57) == 57 and masked_block_count(0.0, 57) == 0 and masked_block_count(1 / 3, 57) == 19
    with pytest.raises(RegionalConditioningError):
        masked_block_count(1.5, 10)
    with pytest.raises(RegionalConditioningError):
        JointRegionalAttention(RegionSet(family="flux"))


def test_bias_layout_weights_and_exact_zeros():
    regions = halves()
    core = JointRegionalAttention(regions, RegionalOptions(base_weight=0.3))
    g = JointGeometry(T, LATENT, GRID, other_image=2)
    b = core.bias(("cond",), g, True, torch.device("cpu"), torch.float32)[0]
    e = core.extra_tokens
    img0, n = T + e, GRID[0] * GRID[1]
    assert b.shape == (T + e + n + 2,) * 2
    spans = core.spans(g)
    assert spans == [(T, T + 3), (T + 3, T + 8)]
    assert torch.all(b[:T, T : T + e] == float("-inf")), "base text never sees region tokens"
    assert torch.all(b[:T, :T] == 0) and torch.all(b[:T, img0:] == 0)
    masks = core.core.grid_masks(*LATENT, *GRID)
    img = b[img0 : img0 + n]
    for r, (a, z) in enumerate(spans):
        outside = masks[r] == 0
        assert torch.all(img[outside, a:z] == float("-inf"))
        assert torch.all(b[a:z, img0 : img0 + n][:, outside] == float("-inf"))
        assert torch.all(b[a:z, REAL:T] == 0) and torch.all(b[a:z, :REAL] == float("-inf"))
    # per image token, the weights of base and regions sum to 1 and the registers stay at 0
    total = img[:, 0].exp() + sum(img[:, a].exp() for a, _ in spans)
    assert torch.allclose(total, torch.ones(n), atol=1e-6)
    assert torch.all(img[:, REAL:T] == 0)
    # uncovered positions attend exactly as without regions; other image tokens see no region
    uncovered = masks.sum(0) == 0
    assert uncovered.any() and torch.all(img[uncovered, :T] == 0)
    assert torch.all(b[img0 + n :, T : T + e] == float("-inf"))
    quiet = core.bias(("cond",), g, False, torch.device("cpu"), torch.float32)[0]
    assert torch.all(quiet[img0:, T : T + e] == float("-inf")) and torch.all(quiet[img0:, :T] == 0)


def test_full_canvas_copy_of_the_base_prompt_is_the_identity():
    """Region tokens equal to the base's real tokens over the whole canvas: attention is unchanged."""
    heads, d = 2, 8
    full = np.ones((64, 96), np.float32)
    g = torch.Generator().manual_seed(4)
    base = torch.randn(1, T, heads * d, generator=g)
    regions = RegionSet((RegionPrompt("F", base[:, :REAL].clone(), mask=full),), family="flux", base_real_tokens=REAL)
    core = JointRegionalAttention(regions, RegionalOptions(base_weight=0.3))
    geo = JointGeometry(T, LATENT, GRID)
    n = GRID[0] * GRID[1]
    image = torch.randn(1, n, heads * d, generator=g)
    plain_seq = torch.cat([base, image], 1)
    ext_seq = torch.cat([base, base[:, :REAL], image], 1)

    def attend(x, bias=None):
        qkv = x.view(1, x.shape[1], heads, d).transpose(1, 2)
        return F.scaled_dot_product_attention(qkv, qkv, qkv, attn_mask=bias)

    bias = core.bias(("cond",), geo, True, torch.device("cpu"), torch.float32)[:, None]
    plain, ext = attend(plain_seq), attend(ext_seq, bias)
    assert torch.allclose(ext[:, :, :T], plain[:, :, :T], atol=1e-5)
    assert torch.allclose(ext[:, :, T + REAL :], plain[:, :, T:], atol=1e-5)
    assert torch.allclose(ext[:, :, T : T + REAL], plain[:, :, :REAL], atol=1e-5), "the region's tokens follow the base's"
