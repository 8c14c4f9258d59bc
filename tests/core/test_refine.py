"""The refinement loop in the core: masked corrections, convergence, stop reasons, history, store."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.color import deltaE_ciede2000

from pakati_core.fuzzy import MamdaniEngine, load_rulebase
from pakati_core.lab import rgb_to_lab
from pakati_core.references import Reference
from pakati_core.refine import (
    RefineInterrupted,
    RefineSettings,
    WhatWorkedStore,
    correct_region,
    match_region_statistics,
    refine,
    tone_colour_deltas,
)
from pakati_core.refine.loop import RefineSettingsError
from pakati_core.store import open_store

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]


def photo(name: str, side: int = 256) -> np.ndarray:
    a = getattr(skimage.data, name)().astype(np.float32) / 255.0
    a = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]
    h, w = a.shape[:2]
    s = side / max(h, w)
    return cv2.resize(a, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def blob_mask(shape, feather=3.0) -> np.ndarray:
    h, w = shape
    m = np.zeros((h, w), np.float32)
    pts = np.array([[w * 0.2, h * 0.2], [w * 0.75, h * 0.15], [w * 0.8, h * 0.7], [w * 0.3, h * 0.85]], np.int32)
    cv2.fillPoly(m, [pts], 1.0)
    m = cv2.GaussianBlur(m, (0, 0), feather)
    m[m < 1e-3] = 0.0
    return m


def region_mean_lab(img, mask):
    lab = rgb_to_lab(img)
    return (lab * mask[..., None]).sum(axis=(0, 1)) / mask.sum()


@pytest.mark.parametrize("name", PHOTOS)
def test_masked_colour_correction_cuts_delta_e_by_90_percent_and_keeps_outside_identical(name):
    img = photo(name)
    ref = photo(PHOTOS[(PHOTOS.index(name) + 1) % len(PHOTOS)])
    mask = blob_mask(img.shape[:2])
    target = (rgb_to_lab(ref)).reshape(-1, 3).mean(axis=0)
    before = deltaE_ciede2000(region_mean_lab(img, mask)[None], target[None])[0]
    out = match_region_statistics(img, mask, ref)
    after = deltaE_ciede2000(region_mean_lab(out, mask)[None], target[None])[0]
    assert after <= 0.1 * before, f"{name}: dE {before:.2f} -> {after:.2f}"
    outside = mask == 0
    assert np.array_equal(out[outside], img[outside])
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
@pytest.mark.parametrize("dl, db", [(20, 20), (20, -20), (-20, 20), (-20, -20)])
def test_loop_drives_lightness_and_warmth_from_20_to_under_1_in_5_passes(name, dl, db):
    ref_img = photo(name)
    # the plant: a real tone/colour operator (L* shift, b* shift, gamut clipping), pushed until
    # the measured offsets are +-20
    start = ref_img
    for _ in range(4):
        d = tone_colour_deltas(start, None, ref_img)
        start = correct_region(
            start, None, {"brightness": d["brightness"] - dl, "warmth": d["warmth"] - db}, {"brightness": 1.0, "warmth": 1.0}
        )
    d0 = tone_colour_deltas(start, None, ref_img)
    assert abs(d0["brightness"] - dl) < 3.5 and abs(d0["warmth"] - db) < 3.5, d0  # gamut limits
    refs = [Reference(ref_img, "tone", "lighting"), Reference(ref_img, "colour", "color")]
    res = refine(start, refs, settings=RefineSettings(max_passes=5, target=0.999))
    reached = [h["pass"] for h in res.history if abs(h["deltas"]["brightness"]) < 1 and abs(h["deltas"]["warmth"]) < 1]
    assert reached and reached[0] <= 5, [(h["deltas"]["brightness"], h["deltas"]["warmth"]) for h in res.history]
    signs = [np.sign(h["deltas"]["brightness"]) for h in res.history if abs(h["deltas"]["brightness"]) >= 1]
    assert sum(a != b for a, b in zip(signs, signs[1:])) <= 1  # at most one sign flip


def test_fuzzy_loop_beats_a_fixed_gain_proportional_baseline():
    ref_img = photo("chelsea")
    start = correct_region(ref_img, None, {"brightness": -20, "warmth": 20}, {"brightness": 1.0, "warmth": 1.0})
    refs = [Reference(ref_img, aspect="lighting"), Reference(ref_img, aspect="color")]
    fixed = {
        "version": 1,
        "outputs": {
            o: {"kind": "correction", "range": [0, 1], "terms": {"half": ["tri", [0.45, 0.5, 0.55]]}}
            for o in ("tone_strength", "contrast_strength", "warmth_strength", "tint_strength", "saturation_strength")
        },
        "remove_rules": [r.id for r in load_rulebase().rules if r.id.split("-")[0].endswith("_strength")],
        "rules": [
            {"id": f"fixed-{o}-{t}", "if": {"brightness": t}, "then": {o: "half"}}
            for o in ("tone_strength", "contrast_strength", "warmth_strength", "tint_strength", "saturation_strength")
            for t in ("NL", "NS", "Z", "PS", "PL")
        ],
    }

    def passes_to_target(engine):
        res = refine(start, refs, settings=RefineSettings(max_passes=8, target=0.999), engine=engine)
        return next(h["pass"] for h in res.history if abs(h["deltas"]["brightness"]) < 1 and abs(h["deltas"]["warmth"]) < 1)

    assert passes_to_target(MamdaniEngine(load_rulebase())) < passes_to_target(MamdaniEngine(load_rulebase(fixed)))


def telea_regenerator(calls: list):
    """A classical regenerator (OpenCV Telea inpainting of the masked region), seeded jitter first."""

    def regen(image, mask, params):
        calls.append(params)
        rng = np.random.default_rng(params.seed)
        u8 = np.clip((image + rng.normal(0, 0.01, image.shape)) * 255, 0, 255).astype(np.uint8)
        out = cv2.inpaint(u8, (mask > 0.5).astype(np.uint8), 3, cv2.INPAINT_TELEA)
        return out.astype(np.float32) / 255.0

    return regen


def test_loop_with_regenerator_keeps_outside_pixels_and_is_reproducible(tmp_path):
    ref_img = photo("rocket")
    img = cv2.GaussianBlur(ref_img, (0, 0), 2.0)
    mask = blob_mask(img.shape[:2])
    refs = [Reference(ref_img, "sharp", "general")]
    calls: list = []
    settings = RefineSettings(max_passes=3, target=0.99, seed=11)
    res = refine(img, refs, mask, settings, regenerate=telea_regenerator(calls))
    again = refine(img, refs, mask, settings, regenerate=telea_regenerator([]))
    assert json.dumps(res.to_dict()) == json.dumps(again.to_dict())
    assert np.array_equal(res.image, again.image)
    assert res.stop_reason in ("target", "converged", "max_passes")
    outside = mask == 0
    assert np.array_equal(res.image[outside], img[outside])
    best = [h["best_so_far"] for h in res.history]
    assert best == sorted(best) and res.score == pytest.approx(max(h["score"] for h in res.history), abs=1e-6)
    regen_actions = [a for h in res.history for a in h["actions"] if a["action"] == "regenerate"]
    assert regen_actions and {"seed", "denoise", "cfg_delta", "steps_factor", "prompt_terms"} <= set(regen_actions[0]["params"])
    assert calls[0].seed == 12 and calls[1].seed == 12 + 7919  # the first regeneration also measures the seed spread
    assert res.epsilon >= settings.epsilon


def test_best_pass_is_returned_not_the_last():
    ref_img = photo("coffee")
    img = correct_region(ref_img, None, {"brightness": -6}, {"brightness": 1.0})

    def vandal(image, mask, params):
        return np.clip(image[::-1] * 0.3, 0, 1)  # always worse than what it is given

    res = refine(img, [Reference(ref_img)], None, RefineSettings(max_passes=3, target=1.0), regenerate=vandal)
    assert res.best_pass == max(range(len(res.history)), key=lambda i: res.history[i]["score"])
    assert all(not a["kept"] for h in res.history for a in h["actions"] if a["action"] == "regenerate")


def test_stop_reasons():
    ref_img = photo("astronaut")
    refs = [Reference(ref_img, aspect="color")]
    near = correct_region(ref_img, None, {"warmth": -1}, {"warmth": 1.0})
    assert refine(near, refs, settings=RefineSettings(target=0.5)).stop_reason == "target"

    far = correct_region(ref_img, None, {"warmth": 25}, {"warmth": 1.0})
    assert refine(far, refs, settings=RefineSettings(max_passes=1, target=1.0)).stop_reason == "max_passes"

    # a texture reference that tone/colour corrections cannot reach: no progress -> converged
    tex = [Reference(cv2.GaussianBlur(ref_img, (0, 0), 3.0), aspect="texture")]
    res = refine(ref_img, tex, settings=RefineSettings(max_passes=6, target=0.999, patience=2))
    assert res.stop_reason == "converged" and len(res.history) <= 4

    # no cheap correction (strengths 0) and a regenerator that swings warmth to either side of the
    # reference, never better than the input: no progress, and the tried deltas flip every pass
    zero = {
        "version": 1,
        "outputs": {
            o: {"kind": "correction", "range": [-1, 1], "terms": {"off": ["tri", [-0.1, 0.0, 0.1]]}}
            for o in ("tone_strength", "contrast_strength", "warmth_strength", "tint_strength", "saturation_strength")
        },
        "remove_rules": [r.id for r in load_rulebase().rules if r.id.split("-")[0].endswith("_strength")],
        "rules": [
            {"id": f"off-{o}-{t}", "if": {"warmth": t}, "then": {o: "off"}}
            for o in ("tone_strength", "contrast_strength", "warmth_strength", "tint_strength", "saturation_strength")
            for t in ("NL", "NS", "Z", "PS", "PL")
        ],
    }
    start = correct_region(ref_img, None, {"warmth": -6}, {"warmth": 1.0})

    def swing(image, mask, params):
        sign = 1 if params.pass_index % 2 else -1
        return correct_region(ref_img, None, {"warmth": -sign * 14}, {"warmth": 1.0})

    res = refine(
        start,
        refs,
        settings=RefineSettings(max_passes=8, target=0.9999, patience=3),
        engine=MamdaniEngine(load_rulebase(zero)),
        regenerate=swing,
    )
    assert res.stop_reason == "oscillating"

    n = {"calls": 0}

    def interrupt():
        n["calls"] += 1
        if n["calls"] == 2:
            raise RefineInterrupted()

    res = refine(far, refs, settings=RefineSettings(max_passes=5, target=0.9999), check_interrupt=interrupt)
    assert res.stop_reason == "interrupted" and len(res.history) == 2 and res.best_pass == 1


def test_settings_are_validated():
    with pytest.raises(RefineSettingsError, match="strategy"):
        RefineSettings(strategy="reckless")
    with pytest.raises(RefineSettingsError, match="max_passes"):
        RefineSettings(max_passes=0)


def test_progress_reports_each_pass():
    ref_img = photo("chelsea")
    far = correct_region(ref_img, None, {"brightness": 15}, {"brightness": 1.0})
    seen = []
    refine(
        far,
        [Reference(ref_img, aspect="lighting")],
        settings=RefineSettings(max_passes=3, target=0.9999),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen and seen[0] == (1, 3) and all(t == 3 for _, t in seen)


def test_what_worked_store_records_and_orders_actions(tmp_path):
    ref_img = photo("coffee")
    far = correct_region(ref_img, None, {"warmth": 18, "brightness": -3}, {"warmth": 1.0, "brightness": 1.0})
    store = WhatWorkedStore(open_store(f"sqlite:///{tmp_path / 'pakati.db'}"))
    res = refine(far, [Reference(ref_img, aspect="color")], settings=RefineSettings(max_passes=2, target=0.9999), store=store)
    rows = store.load()
    assert len(rows) == len(res.records) > 0
    assert all(r["version"] == 1 and r["action"] in ("tone", "colour") for r in rows)
    colour = [r for r in rows if r["action"] == "colour"]
    assert colour[0]["gain"] > 0 and colour[0]["deltas"]["warmth"] < -10  # cooler than the reference
    assert store.order(["tone", "colour"]) == ["colour", "tone"]  # colour helped more here
    assert WhatWorkedStore(store.store.for_user("someone else")).load() == []
    # the next run tries colour first
    res2 = refine(far, [Reference(ref_img, aspect="color")], settings=RefineSettings(max_passes=1, target=0.9999), store=store)
    assert [a["action"] for a in res2.history[1]["actions"]] == ["colour", "tone"]
