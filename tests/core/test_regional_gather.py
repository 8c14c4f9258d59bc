"""The gathered regional attention equals the dense one: random soft masks, overlaps, empty layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pakati_core.regional import (
    ProjectionCache,
    RegionalAttention,
    RegionalOptions,
    RegionPrompt,
    RegionSet,
    base_where_needed,
    blend,
    regional_delta,
)
from pakati_core.regional.gather import build_plan

DIM, HEADS, HD = 24, 4, 32
LATENT = (24, 32)  # latent h, w; grids below follow the UNet's halving
GRIDS = [(24, 32), (12, 16), (6, 8)]
CPU = torch.device("cpu")


def soft_blob(rng: np.random.Generator, h=96, w=128) -> np.ndarray:
    """A random ellipse with a feathered edge (values strictly between 0 and 1 on the rim)."""
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(8, h / 2), rng.uniform(8, w / 2)
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1.2 - d) / 0.4, 0.0, 1.0).astype(np.float32)


def random_set(seed: int, n: int, negatives: bool = False, tokens=(7,)) -> RegionSet:
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    regions = []
    for i in range(n):
        m = soft_blob(rng)
        t = tokens[i % len(tokens)]
        neg = torch.randn(1, t, DIM, generator=g) if negatives and i % 2 == 0 else None
        regions.append(
            RegionPrompt(
                name=f"r{i}", cond=torch.randn(1, t, DIM, generator=g), strength=float(rng.uniform(0.5, 2.0)), negative=neg, mask=m
            )
        )
    return RegionSet(tuple(regions))


def project(extra: torch.Tensor, seed: int = 7):
    g = torch.Generator().manual_seed(seed)
    wk, wv = torch.randn(HD, DIM, generator=g) * 0.2, torch.randn(HD, DIM, generator=g) * 0.2
    return extra @ wk.T, extra @ wv.T


def check(core: RegionalAttention, kind: str, batch: int = 2, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    kb, vb = torch.randn(batch, 77, HD, generator=g), torch.randn(batch, 77, HD, generator=g)
    k_extra, v_extra = project(core.extra)
    k_full, v_full = torch.cat([kb, k_extra.expand(batch, -1, -1)], 1), torch.cat([vb, v_extra.expand(batch, -1, -1)], 1)
    for grid in GRIDS:
        q = torch.randn(batch, grid[0] * grid[1], HD, generator=g)
        dense = core.attend(q, k_full, v_full, HEADS, kind, 77, LATENT, grid)
        plan = core.plan(kind, LATENT, grid, CPU, torch.float32)
        gathered = blend(base_where_needed(q, kb, vb, HEADS, plan), q, k_extra, v_extra, HEADS, plan)
        assert torch.allclose(gathered, dense, atol=1e-5, rtol=1e-4), (kind, grid, (gathered - dense).abs().max())
        where, delta = regional_delta(q, kb, vb, k_extra, v_extra, HEADS, plan)
        plain = base_where_needed(q, kb, vb, HEADS, build_plan(torch.ones(1, q.shape[1]), [], CPU, torch.float32))
        if where is None:
            plain += delta
        else:
            plain.index_add_(1, where, delta)
        assert torch.allclose(plain, dense, atol=1e-5, rtol=1e-4), (kind, grid)


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 3), (2, 6), (3, 12)])
def test_gathered_equals_dense_on_random_soft_overlapping_masks(seed, n):
    check(RegionalAttention(random_set(seed, n), RegionalOptions(base_weight=0.3)), "cond", seed=seed)


def test_base_weight_zero_skips_the_base_where_regions_cover_everything():
    full = np.ones((96, 128), np.float32)
    left = np.zeros((96, 128), np.float32)
    left[:, :40] = 1
    g = torch.Generator().manual_seed(5)
    rs = RegionSet(
        (
            RegionPrompt(name="all", cond=torch.randn(1, 7, DIM, generator=g), mask=full),
            RegionPrompt(name="left", cond=torch.randn(1, 7, DIM, generator=g), mask=left),
        )
    )
    core = RegionalAttention(rs, RegionalOptions(base_weight=0.0))
    plan = core.plan("cond", LATENT, GRIDS[0], CPU, torch.float32)
    assert plan.base_index is not None and plan.base_index.numel() == 0, "the base prompt applies nowhere"
    check(core, "cond")


def test_region_hidden_under_another_is_empty_at_every_layer_and_costs_nothing():
    rng = np.random.default_rng(4)
    g = torch.Generator().manual_seed(4)
    small = np.zeros((96, 128), np.float32)
    small[30:50, 40:70] = 1
    cover = np.zeros((96, 128), np.float32)
    cover[20:60, 30:80] = 1
    rs = RegionSet(
        (
            RegionPrompt(name="hidden", cond=torch.randn(1, 7, DIM, generator=g), mask=small),
            RegionPrompt(name="blob", cond=torch.randn(1, 7, DIM, generator=g), mask=soft_blob(rng)),
            RegionPrompt(name="cover", cond=torch.randn(1, 7, DIM, generator=g), mask=cover),
        )
    )
    core = RegionalAttention(rs)
    for grid in GRIDS:
        plan = core.plan("cond", LATENT, grid, CPU, torch.float32)
        assert (0, 7) not in {s for grp in plan.groups for s in grp.spans}, "the hidden region is never attended"
    check(core, "cond")


def test_uncond_with_negatives_and_auto_negative_and_mixed_token_counts():
    rs = random_set(8, 5, negatives=True, tokens=(7, 14))
    check(RegionalAttention(rs, RegionalOptions(base_weight=0.5, auto_negative=0.7)), "uncond")
    check(RegionalAttention(rs, RegionalOptions(base_weight=0.5, auto_negative=0.7)), "cond")


def test_equal_token_counts_share_one_fused_call_and_covered_area_sets_the_work():
    stripes = []
    for i in range(4):
        m = np.zeros((96, 128), np.float32)
        m[:, i * 32 : (i + 1) * 32] = 1
        stripes.append(m)
    g = torch.Generator().manual_seed(1)
    rs = RegionSet(tuple(RegionPrompt(name=str(i), cond=torch.randn(1, 7, DIM, generator=g), mask=m) for i, m in enumerate(stripes)))
    core = RegionalAttention(rs)
    plan = core.plan("cond", LATENT, (24, 32), CPU, torch.float32)
    assert len(plan.groups) == 1 and len(plan.groups[0].spans) == 4
    real = sum(count for _, count in plan.groups[0].exact)
    assert real < 1.25 * 24 * 32, "about one region per position (edges resampled by area overlap), not four"
    assert plan.groups[0].index.numel() <= 1.3 * real, "little padding"
    assert core.plan("cond", LATENT, (24, 32), CPU, torch.float32) is plan, "built once per grid"
    check(core, "cond")


def test_projection_cache_reuses_and_invalidates():
    cache = ProjectionCache()
    layer = torch.nn.Linear(DIM, HD, bias=False)
    calls = []

    def compute():
        calls.append(1)
        return layer(torch.ones(1, 3, DIM)), layer(torch.ones(1, 3, DIM))

    get = lambda **kw: cache.get(layer, [layer.weight], CPU, torch.float32, compute, **kw)  # noqa: E731
    get()
    get()
    assert len(calls) == 1
    with torch.no_grad():
        layer.weight.add_(1.0)  # an in-place update bumps the version
    get()
    assert len(calls) == 2
    layer.weight = torch.nn.Parameter(torch.zeros(HD, DIM))  # a swapped weight
    get()
    assert len(calls) == 3
    get(volatile=True)
    assert len(calls) == 4
    cache.get(layer, [layer.weight], CPU, torch.float16, compute)
    assert len(calls) == 5
    cache.clear()
    get()
    assert len(calls) == 6
