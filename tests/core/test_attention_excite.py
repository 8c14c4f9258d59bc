"""Attend-and-Excite core (pure torch): maps, loss, update, inference-mode gradients, subject words."""

from __future__ import annotations

import pytest
import torch

from pakati_core.attention_maps import ExciteMaps, ExciteSettings, ExciteTarget, excite_latent, excite_loss, gradients_on, subject_word
from pakati_core.attention_maps.excite import gaussian_smooth, in_mask
from pakati_core.attention_maps.tokens import parse_subject_lines
from pakati_core.errors import AttentionMapError


def test_smoothing_keeps_a_constant_map_and_spreads_a_peak():
    flat = torch.full((1, 5, 6), 0.3)
    assert torch.allclose(gaussian_smooth(flat, 0.5), flat)
    peak = torch.zeros(1, 5, 5)
    peak[0, 2, 2] = 1.0
    out = gaussian_smooth(peak, 0.5)
    assert out[0, 2, 2] < 1.0 and out[0, 2, 1] > 0 and torch.isclose(out.sum(), torch.tensor(1.0))
    assert torch.equal(gaussian_smooth(peak, 0.0), peak)


def test_in_mask_max_and_mean():
    maps = torch.tensor([[[0.9, 0.1], [0.2, 0.4]]])
    cov = torch.tensor([0.0, 1.0, 0.6, 0.2])
    assert float(in_mask(maps, cov, "max")) == pytest.approx(0.2)  # cells at least half covered: 0.1 and 0.2
    assert float(in_mask(maps, cov, "mean")) == pytest.approx((0.1 + 0.6 * 0.2 + 0.2 * 0.4) / 1.8)
    assert float(in_mask(maps, None, "max")) == pytest.approx(0.9)
    assert float(in_mask(maps, torch.zeros(4), "max")) == 1.0  # a region absent at this grid asks for nothing


def test_maps_renormalise_over_the_words_and_sum_sub_tokens():
    torch.manual_seed(0)
    heads, d = 2, 4
    q = torch.randn(1, 6, heads * d, requires_grad=True)
    k = torch.randn(1, 10, heads * d)
    target = ExciteTarget("cat", (3, 4), (1, 2, 3, 4, 5))
    maps = ExciteMaps([target])
    maps.add("a", (2, 3), q, [k], heads)
    grid, (m,) = maps.subject_maps(sharpen=100.0, smooth=0.0)
    p = torch.softmax((q.view(1, 6, heads, d).transpose(1, 2) @ k.view(1, 10, heads, d).permute(0, 2, 3, 1)) / d**0.5, -1).mean(1)[0]
    want = torch.softmax(100 * p[:, [1, 2, 3, 4, 5]], -1)[:, [2, 3]].sum(-1).view(2, 3)
    assert grid == (2, 3) and torch.allclose(m[0], want, atol=1e-6)
    (1 - m.max()).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0, "differentiable through the queries"


def test_loss_is_the_worst_subjects_shortfall():
    assert torch.equal(excite_loss(torch.tensor([[0.9, 0.2], [0.4, 0.7]])), torch.tensor([0.6, 0.8]))


def test_excite_latent_climbs_and_stops_at_the_threshold():
    """A toy 'model': the subject's attention is sigmoid(w . x); the update raises it until it passes the threshold."""
    w = torch.tensor([1.0, -2.0, 0.5])
    x = torch.zeros(1, 3)

    def run_pass(xv):
        return torch.sigmoid((xv * w).sum(-1))[None]  # [targets=1, B=1]

    s = ExciteSettings(scale=2.0, steps=1, iterations=20, threshold=0.9)
    out = excite_latent(x, torch.full((1, 1), 0.5), run_pass, s, step=0, total=1)
    vals = [float(v) for v in out.values]
    assert vals[0] == pytest.approx(0.5) and vals == sorted(vals) and vals[-1] >= 0.9 and vals[-2] < 0.9
    assert out.updates == len(vals) - 1 and not torch.equal(out.x, x)
    met = excite_latent(x, torch.ones(1, 1), run_pass, ExciteSettings(threshold=0.4), step=0, total=1)
    assert met.updates == 0 and met.x is x, "nothing to do: the very same tensor back (bit-identical sampling)"


def test_gradients_through_inference_tensors():
    """ComfyUI loads weights under inference_mode; autograd may not save them, so they are read through clones."""
    acc = torch.zeros(2, 3)
    with torch.inference_mode():
        lin = torch.nn.Linear(3, 3)
        x = torch.randn(2, 3)
        with gradients_on():
            xv = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(lin(xv).square().sum(), xv)
            acc.add_(x)  # an in-place write lands in its own tensor (only the tensors it reads are swapped)
        assert g.shape == (2, 3) and torch.isfinite(g).all()
        assert lin.weight.is_inference() and torch.equal(acc, x)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved"):
        with torch.enable_grad():
            xv = x.clone().requires_grad_(True)
            lin(xv).sum().backward()


def test_settings_and_subject_lines_validate():
    with pytest.raises(AttentionMapError, match="reduce"):
        ExciteSettings(reduce="median")
    with pytest.raises(AttentionMapError, match="threshold"):
        ExciteSettings(threshold=1.5)
    assert ExciteSettings(scale=20).step_size(0, 50) == pytest.approx(20) and ExciteSettings(scale=20).step_size(49, 50) == pytest.approx(
        20 * 0.5**0.5
    )
    assert parse_subject_lines("A: cat\n# a note\n\n2: red dog | a red dog in a field") == {
        "a": ("cat", None),
        "2": ("red dog", "a red dog in a field"),
    }
    for bad in ("A cat", "A:", ": cat", "A: cat |", "A: cat\na: dog"):
        with pytest.raises(AttentionMapError, match="subjects"):
            parse_subject_lines(bad)
    with pytest.raises(AttentionMapError, match="not word tokens"):
        ExciteTarget("x", (0,), (1, 2))


def test_subject_is_the_last_noun():
    assert subject_word("a red apple") == "apple"
    # the scene grammar (issue 23) makes worn and held things part of their owner: the subject is the wearer
    assert subject_word("a woman in a red shirt") == "woman"
    assert subject_word("volcano at night") == "volcano"
    with pytest.raises(AttentionMapError, match="name the subject word"):
        subject_word("and the")
