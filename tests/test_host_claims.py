"""Claims the README makes about the nodes, held by tests inside real ComfyUI (in-process)."""
from __future__ import annotations

import numpy as np
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
