"""pakati_core.regional.from_canvas: the one builder of region prompts from a canvas, for every host
(ComfyUI's Pakati Regional Conditioning, SDXL and Flux, and the diffusers backend)."""

from __future__ import annotations

import pytest
import torch

from pakati_core.canvas import Canvas
from pakati_core.errors import RegionalConditioningError
from pakati_core.regional.from_canvas import regions_from_canvas


def _canvas(prompts, negatives=None):
    negatives = negatives or [""] * len(prompts)
    return Canvas.from_dict(
        {
            "version": 1,
            "width": 64,
            "height": 64,
            "regions": [
                {"id": f"r{i}", "name": "AB"[i], "shape": "rect", "points": [[i * 32, 0], [i * 32 + 32, 64]], "prompt": p, "negative": n}
                for i, (p, n) in enumerate(zip(prompts, negatives))
            ],
        }
    )


def _encoder(tag: float, calls: list):
    def encode(text: str) -> torch.Tensor:
        calls.append((tag, text))
        return torch.full((1, 3, 4), tag + len(text))

    return encode


def test_each_prompt_and_negative_is_encoded_in_region_order_by_the_hosts_encoder():
    calls: list = []
    canvas = _canvas(["red car", "blue sky"], ["", "clouds"])
    rs = regions_from_canvas(canvas, _encoder(0.0, calls))
    assert calls == [(0.0, "red car"), (0.0, "blue sky"), (0.0, "clouds")]
    assert [r.name for r in rs.regions] == ["A", "B"] and [r.canvas_index for r in rs.regions] == [0, 1]
    assert all(r.canvas is canvas for r in rs.regions)
    assert rs.regions[0].negative is None and float(rs.regions[1].negative[0, 0, 0]) == len("clouds")
    assert [float(r.cond[0, 0, 0]) for r in rs.regions] == [len("red car"), len("blue sky")]


def test_a_region_with_its_own_encoder_uses_it_for_its_prompt_and_negative_only():
    """ComfyUI encodes a region a Pakati Region LoRA is bound to with that LoRA's CLIP: ``encoder_for`` gives it, None the default."""
    calls: list = []
    own = _encoder(100.0, calls)
    rs = regions_from_canvas(
        _canvas(["red car", "blue sky"], ["rust", "clouds"]), _encoder(0.0, calls), lambda r: own if r.id == "r1" else None
    )
    assert calls == [(0.0, "red car"), (0.0, "rust"), (100.0, "blue sky"), (100.0, "clouds")]
    assert float(rs.regions[1].cond[0, 0, 0]) == 100.0 + len("blue sky") and float(rs.regions[0].cond[0, 0, 0]) == len("red car")


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_an_empty_prompt_is_refused_naming_the_region_and_its_index(blank):
    calls: list = []
    with pytest.raises(RegionalConditioningError) as e:
        regions_from_canvas(_canvas(["red car", blank]), _encoder(0.0, calls))
    assert e.value.field == "regions[1].prompt" and e.value.message == "region 'B' (regions[1]) has an empty prompt"
    assert calls == [(0.0, "red car")]
