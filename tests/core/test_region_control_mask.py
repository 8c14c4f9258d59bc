"""pakati_core.regional.control: a region's mask on ControlNet residual dicts (plain torch, no host)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pakati_core.canvas import Canvas
from pakati_core.errors import RegionalConditioningError
from pakati_core.regional.control import ControlMask, mask_residuals, merge_residuals


def residual_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "middle": [torch.randn(2, 8, 4, 4, generator=g)],
        "output": [torch.randn(2, 8, 16, 16, generator=g), None, torch.randn(2, 4, 8, 8, generator=g)],
    }


def test_hard_mask_zero_outside_equal_inside_at_every_grid():
    m = np.zeros((64, 64), np.float32)
    m[:, :32] = 1.0
    control = residual_dict()
    out = mask_residuals(control, ControlMask(mask=m))
    assert out["output"][1] is None
    for key in ("middle", "output"):
        for x, y in zip(control[key], out[key]):
            if x is None:
                continue
            w = x.shape[-1]
            assert torch.equal(y[..., : w // 2], x[..., : w // 2])
            assert torch.equal(y[..., w // 2 :], torch.zeros_like(y[..., w // 2 :]))
            assert y is not x, "a new tensor: nothing is written in place"


def test_soft_mask_weights_by_the_area_mean_and_empty_grids_give_none():
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    x = torch.ones(1, 1, 8, 8)
    y = mask_residuals({"output": [x]}, ControlMask(mask=ramp))["output"][0]
    expected = torch.from_numpy(ramp.reshape(8, 8, 8, 8).mean(axis=(1, 3)))
    torch.testing.assert_close(y[0, 0], expected, rtol=1e-5, atol=1e-6)
    empty = ControlMask(mask=np.zeros((64, 64), np.float32))
    assert empty.is_empty()
    assert mask_residuals(residual_dict(), empty) == {"middle": [None], "output": [None, None, None]}


def test_merge_sums_level_by_level_like_comfyui():
    a, b = residual_dict(1), residual_dict(2)
    a["output"][0] = None
    merged = merge_residuals(a, b)
    assert merged["output"][0] is b["output"][0]
    torch.testing.assert_close(merged["middle"][0], a["middle"][0] + b["middle"][0])
    assert merge_residuals(None, b) is b and merge_residuals(a, None) is a
    longer = merge_residuals({"output": [None]}, {"output": [None, torch.ones(1)]})
    assert longer["output"][1] is not None


def test_canvas_region_feather_and_exclusive():
    canvas = Canvas.from_json(
        json.dumps(
            {
                "version": 1,
                "width": 64,
                "height": 64,
                "regions": [
                    {"id": "bg", "shape": "rect", "points": [[0, 0], [64, 64]], "prompt": "x"},
                    {"id": "fg", "shape": "rect", "points": [[16, 16], [48, 48]], "prompt": "y", "feather": 4},
                ],
            }
        )
    )
    fg = ControlMask(canvas=canvas, index=1)
    np.testing.assert_allclose(fg.at(16, 16), canvas.rasterize(1, 16, 16))
    bg = ControlMask(canvas=canvas, index=0, exclusive=True)
    np.testing.assert_allclose(bg.at(16, 16), canvas.rasterize(0, 16, 16) * (1 - canvas.rasterize(1, 16, 16)), atol=1e-6)
    assert ((bg.at(16, 16) > 0) & (bg.at(16, 16) < 1)).any(), "the feathered edge stays soft"


def test_bad_inputs_are_typed_errors():
    with pytest.raises(RegionalConditioningError, match="not both"):
        ControlMask()
    with pytest.raises(RegionalConditioningError, match="NaN"):
        ControlMask(mask=np.full((4, 4), np.nan, np.float32))
    with pytest.raises(RegionalConditioningError, match="aspect") as e:
        ControlMask(mask=np.ones((16, 64), np.float32)).check_aspect(32, 32)
    assert e.value.field == "mask"
    with pytest.raises(RegionalConditioningError, match=r"\[batch, channels"):
        mask_residuals({"output": [torch.ones(3, 3)]}, ControlMask(mask=np.ones((4, 4), np.float32)))
