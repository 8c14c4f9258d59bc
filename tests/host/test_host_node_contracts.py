"""Claims the README makes about the nodes, held by tests inside real ComfyUI (in-process)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.host


def run(comfy, name, **inputs):
    return comfy.NODE_CLASS_MAPPINGS[name].execute(**inputs)


def test_refine_nodes_refuse_a_mask_of_another_aspect(comfy):
    """One aspect tolerance (pakati_core.canvas.same_aspect): a mask is resized onto the image only
    when the aspect ratios agree; before, the refine nodes stretched any mask silently."""
    img = torch.rand(1, 64, 64, 3)
    (refs,) = run(comfy, "PakatiReference", image=img, aspect="general", description="", weight=1.0).result
    with pytest.raises(ValueError, match=r"PakatiDeltaAnalysis: input 'mask': the mask is 64x32 but the image is 64x64"):
        run(comfy, "PakatiDeltaAnalysis", image=img, references=refs, mask=torch.ones(1, 32, 64))
    (report, overall) = run(comfy, "PakatiDeltaAnalysis", image=img, references=refs, mask=torch.ones(1, 32, 32)).result
    assert 0.0 <= overall <= 1.0  # same aspect, other size: resized onto the image


def test_comfy_api_pin_reexports_latest():
    """The README says the v0_0_2 pin does not yet shield the pack from `latest`: in ComfyUI 0.3.64
    v0_0_2 re-exports latest's io, ui and ComfyExtension. When they part, revisit that line."""
    import comfy_api.latest as latest
    import comfy_api.v0_0_2 as pinned

    assert pinned.io is latest.io and pinned.ui is latest.ui and pinned.ComfyExtension is latest.ComfyExtension
    assert pinned.ComfyAPI.STABLE is False


def test_applying_regions_twice_replaces_the_first_set(comfy, tiny):
    """PakatiApplyRegions on an already patched model replaces its region set: sampling it equals
    sampling the model patched with the second set alone, and differs from the first set's."""
    import json

    model, clip, _ = tiny
    W = H = 128

    def regions_of(prompt_a, prompt_b):
        text = json.dumps(
            {
                "version": 1,
                "width": W,
                "height": H,
                "regions": [
                    {"id": "a", "shape": "rect", "points": [[0, 0], [64, 128]], "prompt": prompt_a},
                    {"id": "b", "shape": "rect", "points": [[64, 0], [128, 128]], "prompt": prompt_b},
                ],
            }
        )
        canvas = run(comfy, "PakatiCanvas", width=W, height=H, regions=text).result[0]
        return run(comfy, "PakatiRegionalConditioning", clip=clip, canvas=canvas, base_prompt="a landscape", base_negative="").result

    first, pos, neg = regions_of("a red apple", "a blue sea")
    second, _, _ = regions_of("a castle at night", "a field of sunflowers")
    opts = dict(base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
    once = run(comfy, "PakatiApplyRegions", model=model, regions=first, **opts).result[0]
    twice = run(comfy, "PakatiApplyRegions", model=once, regions=second, **opts).result[0]
    only_second = run(comfy, "PakatiApplyRegions", model=model, regions=second, **opts).result[0]
    assert len(twice.wrappers["apply_model"]) == len(only_second.wrappers["apply_model"])

    def sample(m):
        latent = {"samples": torch.zeros(1, 4, H // 8, W // 8)}
        return comfy.common_ksampler(m, 3, 2, 5.0, "euler", "normal", pos, neg, latent)[0]["samples"]

    out_twice = sample(twice)
    assert torch.equal(out_twice, sample(only_second))
    assert not torch.equal(out_twice, sample(once))
