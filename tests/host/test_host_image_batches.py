"""Hardening inside real ComfyUI (in-process, tiny model, real sampler): a soft mask is blended once
by PakatiRefine, and IMAGE batches are processed image by image or refused, never cut to image 0."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import loaded_pack
from hardening_prompts import photo

pytestmark = pytest.mark.host

SIDE = 64


def as_image(*frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([f.astype(np.float32) / (255.0 if f.dtype == np.uint8 else 1.0) for f in frames]))


def run(comfy, name, **inputs):
    return comfy.NODE_CLASS_MAPPINGS[name].execute(**inputs)


def feathered_mask() -> np.ndarray:
    m = np.zeros((SIDE, SIDE), np.float32)
    m[20:44, 18:46] = 1.0
    return np.clip(cv2.GaussianBlur(m, (0, 0), 3.0), 0.0, 1.0)


@pytest.fixture(scope="module")
def inputs(comfy, tiny):
    model, clip, vae = tiny
    ref = photo("astronaut", SIDE)
    start = cv2.GaussianBlur(ref, (0, 0), 1.5).astype(np.float32)
    start[..., 2] *= 0.7
    (refs,) = run(comfy, "PakatiReference", image=as_image(ref), aspect="general", description="astronaut", weight=1.0).result
    pos = clip.encode_from_tokens_scheduled(clip.tokenize("an astronaut portrait"))
    neg = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    return dict(
        model=model,
        clip=clip,
        vae=vae,
        image=as_image(start.round().astype(np.uint8)),
        positive=pos,
        negative=neg,
        references=refs,
        max_passes=1,
        target=1.0,
        strategy="adaptive",
        seed=7,
        steps=1,
        cfg=4.0,
        sampler_name="euler",
        scheduler="normal",
        learn=False,
    )


def test_refine_pastes_a_feathered_mask_once(comfy, inputs, monkeypatch):
    """Each regenerated pixel lands as m*new + (1-m)*old, not m^2 (the host never blends itself)."""
    loop = loaded_pack().pakati_core.refine.loop
    host = sys.modules[comfy.NODE_CLASS_MAPPINGS["PakatiRefine"].__module__].HostRegenerator
    events: list[tuple[str, object]] = []
    vae = inputs["vae"]
    real_decode, real_call, real_measure = vae.decode, host.__call__, loop._measure

    def decode(samples, *a, **k):
        out = real_decode(samples, *a, **k)
        events.append(("decoded", out[0, ..., :3].detach().float().cpu().numpy().copy()))
        return out

    def call(self, image, mask, params):
        events.append(("regenerate", (image.copy(), mask.copy(), self.box(mask))))
        return real_call(self, image, mask, params)

    def measure(image, *a, **k):
        events.append(("measured", np.array(image, copy=True)))
        return real_measure(image, *a, **k)

    monkeypatch.setattr(vae, "decode", decode)
    monkeypatch.setattr(host, "__call__", call)
    monkeypatch.setattr(loop, "_measure", measure)
    m = feathered_mask()
    run(comfy, "PakatiRefine", **(inputs | {"mask": torch.from_numpy(m)[None]}))
    kinds = [k for k, _ in events]
    checked = 0
    for i, (kind, payload) in enumerate(events):
        if kind != "regenerate":
            continue
        assert kinds[i + 1 : i + 3] == ["decoded", "measured"], kinds
        old, mask, box = payload
        decoded, pasted = events[i + 1][1], events[i + 2][1]
        new = old.copy()
        new[box.slices] = np.clip(decoded, 0.0, 1.0)
        want = m[..., None] * new + (1.0 - m[..., None]) * old
        np.testing.assert_allclose(pasted, want, atol=2e-6)
        soft = (m > 0.1) & (m < 0.9) & (np.abs(new - old).max(axis=-1) > 0.05)
        assert soft.sum() > 20, "the test needs soft-edge pixels whose new value differs"
        twice = old + (m * m)[..., None] * (new - old)
        assert np.abs(pasted - twice)[soft].max() > 0.01, "a double blend (m^2) would be caught"
        assert np.array_equal(pasted[m == 0], old[m == 0])
        checked += 1
    assert checked >= 1, "PakatiRefine regenerated the region through the sampler"


def test_reference_adds_one_reference_per_batch_image(comfy):
    a, b = photo("coffee", SIDE), photo("chelsea", SIDE)
    (refs,) = run(comfy, "PakatiReference", image=as_image(a, b), aspect="color", description="look", weight=1.0).result
    assert len(refs) == 2
    assert np.allclose(refs[0].image, a / 255.0, atol=1e-6) and np.allclose(refs[1].image, b / 255.0, atol=1e-6)
    with pytest.raises(ValueError, match="PakatiReference: input 'mask': 3 masks for 2 images"):
        run(comfy, "PakatiReference", image=as_image(a, b), aspect="color", description="", weight=1.0, mask=torch.ones(3, SIDE, SIDE))


def test_delta_analysis_reports_every_batch_image(comfy):
    a, b = photo("coffee", SIDE), photo("chelsea", SIDE)
    (refs,) = run(comfy, "PakatiReference", image=as_image(a), aspect="general", description="", weight=1.0).result
    text, overall = run(comfy, "PakatiDeltaAnalysis", image=as_image(a, b), references=refs).result
    reports = json.loads(text)
    assert isinstance(reports, list) and len(reports) == 2
    one = [json.loads(run(comfy, "PakatiDeltaAnalysis", image=as_image(x), references=refs).result[0]) for x in (a, b)]
    assert reports == one
    assert reports[0]["overall"] == 1.0 and overall == pytest.approx(min(r["overall"] for r in one), abs=1e-6) and overall < 1.0


def test_refine_refines_every_batch_image(comfy, inputs):
    a = inputs["image"][0].numpy()
    b = np.ascontiguousarray(a[:, ::-1])
    mask = torch.zeros(1, SIDE, SIDE)
    mask[0, 16:48, 16:48] = 1.0
    batch = inputs | {"image": torch.from_numpy(np.stack([a, b])), "mask": mask}
    image, history, score = run(comfy, "PakatiRefine", **batch).result
    histories = json.loads(history)
    assert image.shape[0] == 2 and isinstance(histories, list) and len(histories) == 2
    for i, frame in enumerate((a, b)):
        alone = run(comfy, "PakatiRefine", **(batch | {"image": torch.from_numpy(frame)[None]})).result
        assert torch.equal(image[i], alone[0][0]) and json.loads(alone[1]) == histories[i]
    assert score == pytest.approx(min(h["score"] for h in histories), abs=1e-6)


def test_learn_reference_refuses_a_batch(comfy, tiny, tmp_path):
    model, clip, vae = tiny
    a = photo("astronaut", SIDE)
    with pytest.raises(ValueError, match="PakatiLearnReference: input 'image': got a batch of 2 images"):
        run(
            comfy,
            "PakatiLearnReference",
            model=model,
            clip=clip,
            vae=vae,
            image=as_image(a, a),
            description="",
            strategies="center_out",
            levels=1,
            attempts=2,
            seed=0,
            steps=1,
            cfg=4.0,
            sampler_name="euler",
            scheduler="normal",
            negative="",
            max_side=SIDE,
            force=False,
        )
