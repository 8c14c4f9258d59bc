"""PakatiReferenceImageMask: a Pakati reference as the image + attn_mask pair IP-Adapter nodes take (in real ComfyUI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.host

LAYOUT = json.dumps(
    {
        "version": 1,
        "width": 256,
        "height": 128,
        "regions": [
            {"id": "l", "name": "left", "shape": "rect", "points": [[0, 0], [128, 128]], "prompt": "a chair", "feather": 8},
            {"id": "r", "name": "right", "shape": "rect", "points": [[128, 0], [256, 128]], "prompt": "a lamp"},
        ],
    }
)


def references(comfy, canvas):
    ref = comfy.NODE_CLASS_MAPPINGS["PakatiReference"]
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(1, 64, 128, 3, generator=g), torch.rand(1, 96, 96, 3, generator=g)
    chain = ref.execute(image=a, aspect="style", description="chair", weight=1.0, canvas=canvas, region="left").result[0]
    chain = ref.execute(image=b, aspect="style", description="lamp", weight=1.0, canvas=canvas, region="right", references=chain).result[0]
    return ref.execute(image=a, aspect="general", description="no region", weight=1.0, references=chain).result[0], a, b


def test_each_reference_gives_its_image_and_its_region(comfy):
    canvas = comfy.NODE_CLASS_MAPPINGS["PakatiCanvas"].execute(width=256, height=128, regions=LAYOUT).result[0]
    refs, a, b = references(comfy, canvas)
    node = comfy.NODE_CLASS_MAPPINGS["PakatiReferenceImageMask"]
    image, mask = node.execute(references=refs, index=0).result
    assert torch.equal(image, a) and mask.shape == (1, 64, 128)
    np.testing.assert_allclose(mask[0].numpy(), canvas.rasterize("left", 128, 64), atol=1e-6)
    assert ((mask > 0) & (mask < 1)).any(), "the region's feather is kept"
    image, mask = node.execute(references=refs, index=1).result
    assert torch.equal(image, b)
    np.testing.assert_allclose(mask[0].numpy(), canvas.rasterize("right", 96, 96), atol=1e-6)
    image, mask = node.execute(references=refs, index=1, canvas=canvas, region="right").result
    np.testing.assert_allclose(mask[0].numpy(), canvas.rasterize("right"), atol=1e-6)
    _, mask = node.execute(references=refs, index=2).result
    assert torch.equal(mask, torch.ones(1, 64, 128)), "a reference without a region applies everywhere"
    with pytest.raises(ValueError, match="PakatiReferenceImageMask: input 'index': 3 is out of range"):
        node.execute(references=refs, index=3)
    with pytest.raises(ValueError, match="PakatiReferenceImageMask: input 'region'.*no region named 'nowhere'"):
        node.execute(references=refs, index=0, canvas=canvas, region="nowhere")
    with pytest.raises(ValueError, match="PakatiReferenceImageMask: input 'references'"):
        node.execute(references=(), index=0)
