"""Claims the README makes about the core, held by tests (issue 10, item 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from pakati_core.delta import analyse, image_view, region_features
from pakati_core.delta.view import reference_view
from pakati_core.understanding.learner import reference_statistics
from pakati_core.understanding.transfer import Understanding, transfer

ROOT = Path(__file__).resolve().parents[2]


def photo(name: str, side: int) -> np.ndarray:
    return cv2.resize(getattr(skimage.data, name)()[..., :3].astype(np.float32) / 255.0, (side, side), interpolation=cv2.INTER_AREA)


def test_use_understanding_references_target_the_learned_statistics():
    """PakatiUseUnderstanding's references make the learned statistics the delta targets: whatever
    region is measured, the reference side is the whole learned reference."""
    learned = photo("astronaut", 128)
    stats = reference_statistics(learned)
    refs, _, _ = transfer(Understanding({"statistics": stats, "settings": {"description": "x"}}, learned), "", ["color", "composition"])
    target = photo("coffee", 128)
    mask = np.zeros((128, 128), np.float32)
    mask[8:48, 4:60] = 1.0  # a corner region: the astronaut's corner there is dark background
    report = analyse(target, refs, mask)
    theirs = region_features(reference_view(refs[0], target.shape[:2], report.box, mask))
    assert np.allclose(theirs.mean_lab, stats["color"]["mean_lab"], atol=0.5)
    assert theirs.mean_chroma == pytest.approx(stats["color"]["mean_chroma"], abs=0.5)
    assert np.allclose(theirs.energy_centroid, stats["composition"]["energy_centroid"], atol=0.03)
    corner = region_features(image_view(learned, mask)[0])  # what the unmasked reference compared with
    assert abs(corner.mean_lab[0] - stats["color"]["mean_lab"][0]) > 5
    mine = region_features(image_view(target, mask)[0])
    assert report.delta("brightness").value == pytest.approx(mine.mean_lab[0] - stats["color"]["mean_lab"][0], abs=0.5)


def test_optional_packages_load_only_where_used():
    """openai, anthropic and diffusers are not imported by importing the core or its model layer;
    the SDKs load only when a provider is built, diffusers only with the diffusers backend."""
    code = (
        "import sys, pakati_core, pakati_core.models, pakati_core.refine, pakati_core.understanding, pakati_core.regional; "
        "print(sorted(m for m in ('openai', 'anthropic', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
