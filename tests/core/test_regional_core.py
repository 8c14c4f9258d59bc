"""pakati_core.regional without ComfyUI: masks per grid, weights, the blended attention core."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pakati_core import Canvas, Region, RegionalConditioningError, RegionLimitError
from pakati_core.regional import RegionalAttention, RegionalOptions, RegionPrompt, RegionSet, grid_shape, segment_blended_attention

DIM = 32


def emb(seed: int, tokens: int = 7) -> torch.Tensor:
    return torch.randn(1, tokens, DIM, generator=torch.Generator().manual_seed(seed))


def canvas_set(rects, width=512, height=512, negatives=False) -> RegionSet:
    regions = [Region(id=f"r{i}", shape="rect", points=tuple(map(tuple, r))) for i, r in enumerate(rects)]
    c = Canvas(width, height, regions)
    return RegionSet(
        tuple(
            RegionPrompt(name=f"r{i}", cond=emb(i), canvas=c, canvas_index=i, negative=emb(100 + i) if negatives else None)
            for i in range(len(rects))
        )
    )


def sdpa(q, k, v, heads):
    b, n, hd = q.shape
    d = hd // heads
    split = lambda t: t.view(b, -1, heads, d).transpose(1, 2)  # noqa: E731
    return torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(b, n, hd)


def test_single_segment_is_plain_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 50, 64, generator=g) for _ in range(3))
    out = segment_blended_attention(q, k, v, 4, [(0, 50)], torch.ones(1, 50))
    assert torch.allclose(out, sdpa(q, k, v, 4), atol=1e-5)


def test_blend_equals_weighted_sum_of_per_segment_attention():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 30, 32, generator=g)
    k, v = torch.randn(1, 21, 32, generator=g), torch.randn(1, 21, 32, generator=g)
    segs = [(0, 7), (7, 14), (14, 21)]
    w = torch.softmax(torch.randn(3, 30, generator=g), 0)
    out = segment_blended_attention(q, k, v, 2, segs, w)
    expected = sum(w[j][None, :, None] * sdpa(q, k[:, a:e], v[:, a:e], 2) for j, (a, e) in enumerate(segs))
    assert torch.allclose(out, expected, atol=1e-5)


def test_grid_shape_follows_unet_rounding_for_odd_sizes():
    # 1000x744 image -> 125x93 latent -> 63x47 -> 32x24
    assert grid_shape((93, 125), 93 * 125) == (93, 125)
    assert grid_shape((93, 125), 47 * 63) == (47, 63)
    assert grid_shape((93, 125), 24 * 32) == (24, 32)
    with pytest.raises(ValueError):
        grid_shape((93, 125), 1000)


def test_weights_are_normalised_finite_and_nonnegative_with_overlaps_and_gaps():
    rs = canvas_set([[[0, 0], [300, 300]], [[200, 200], [400, 400]], [[100, 0], [120, 512]]])
    core = RegionalAttention(rs, RegionalOptions(base_weight=0.0))
    for grid in [(8, 8), (16, 16), (31, 17)]:
        w = core.weights("cond", (64, 64), grid, torch.device("cpu"))
        assert torch.isfinite(w).all() and (w >= 0).all()
        assert torch.allclose(w.sum(0), torch.ones(w.shape[1]), atol=1e-5)
    w = core.weights("cond", (64, 64), (16, 16), torch.device("cpu")).view(4, 16, 16)
    assert w[0, 15, 0] == pytest.approx(1.0)  # uncovered corner: base prompt alone
    assert w[1, 0, 0] == pytest.approx(1.0, abs=1e-5)  # inside region 0 only, base weight 0


def test_thin_region_survives_the_coarse_grid():
    # A 16-px-wide stripe on a 1024 canvas is half a token wide on SDXL's 32x32 grid.
    rs = canvas_set([[[512, 0], [528, 1024]]], width=1024, height=1024)
    core = RegionalAttention(rs)
    m = core.grid_masks(128, 128, 32, 32).view(32, 32)
    assert m.max() == pytest.approx(0.5, abs=0.01)  # area-weighted, not dropped by nearest sampling
    assert m.sum() * 32 == pytest.approx(16 * 1024 / 32, rel=0.02)


def test_uncond_is_regionalised_only_with_negatives_or_auto_negative():
    assert not RegionalAttention(canvas_set([[[0, 0], [256, 512]]])).regionalises_uncond
    assert RegionalAttention(canvas_set([[[0, 0], [256, 512]]], negatives=True)).regionalises_uncond
    two = canvas_set([[[0, 0], [256, 512]], [[256, 0], [512, 512]]])
    core = RegionalAttention(two, RegionalOptions(auto_negative=0.5))
    assert core.regionalises_uncond
    w = core.weights("uncond", (64, 64), (8, 8), torch.device("cpu"))
    # rows: base, auto-negative of region 0, auto-negative of region 1
    assert w.shape[0] == 3
    left = 8 * 4 + 1  # a position inside region 0
    assert w[1, left] == 0.0 and w[2, left] > 0.0  # region 1's prompt is a negative inside region 0


def test_extended_context_layout():
    core = RegionalAttention(canvas_set([[[0, 0], [256, 512]], [[256, 0], [512, 512]]], negatives=True))
    assert core.extra.shape == (1, 28, DIM)
    segs, used = core.segments("cond", 77)
    assert segs == [(0, 77), (77, 84), (84, 91)] and used == 91
    segs, used = core.segments("uncond", 77)
    assert segs == [(0, 77), (91, 98), (98, 105)] and used == 105


def test_aspect_mismatch_and_limits_are_typed_errors():
    m = np.ones((256, 512), np.float32)
    rs = RegionSet((RegionPrompt(name="wide", cond=emb(0), mask=m),))
    with pytest.raises(RegionalConditioningError, match=r"mask: region 'wide' is defined on a 512x256 mask"):
        RegionalAttention(rs).reference_masks(64, 64)
    RegionalAttention(rs).reference_masks(32, 64)  # same aspect: fine
    with pytest.raises(RegionLimitError, match="33 regions; at most 32"):
        RegionSet(tuple(RegionPrompt(name=str(i), cond=emb(i), mask=m) for i in range(33)))
    with pytest.raises(RegionalConditioningError, match="different text encoders"):
        RegionSet((RegionPrompt(name="a", cond=emb(0), mask=m), RegionPrompt(name="b", cond=torch.zeros(1, 7, 16), mask=m)))
