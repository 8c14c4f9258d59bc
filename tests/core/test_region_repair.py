"""The region repair loop (pakati_core.orchestration.repair): a check that fails on one region redraws only that region.

The plan is "a red ball on the left and a blue cube on the right"; the image has a red ball and a
*red* cube, so the offline colour check fails on the cube's colour only.
"""

from __future__ import annotations

import numpy as np
import pytest

from pakati_core.errors import NonFiniteError
from pakati_core.orchestration import RepairError, RepairSettings, check_alignment, crop_regenerator, plan, repair_loop
from pakati_core.orchestration.repair import keep_outside, plan_repairs, repair_blend

RED, BLUE, GREY = (220, 30, 30), (30, 40, 220), (128, 128, 128)
SIZE = 256


@pytest.fixture(scope="module")
def scene():
    p = plan("a red ball on the left and a blue cube on the right", SIZE, SIZE)
    img = np.full((SIZE, SIZE, 3), GREY, np.uint8)
    for o in p.objects:
        x0, y0, x1, y1 = (int(round(v)) for v in p.box(o.id))
        img[y0:y1, x0:x1] = RED  # the cube too: wrong colour
    return p, img


def _region_box(p, rid):
    r = next(r for r in p.canvas["regions"] if r["id"] == rid)
    (x0, y0), (x1, y1) = r["points"]
    return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))


def test_only_the_failing_region_is_redrawn(scene):
    p, img = scene
    first = check_alignment(img, p)
    assert [v.question.id for v in first.failed] == ["attr:cube:blue"]
    calls = []

    def regenerate(image, repairs, the_plan, round_index):
        calls.append(([r.region_id for r in repairs], [r.prompt for r in repairs], round_index))
        out = np.array(image, copy=True)
        out[:] = (0, 255, 0)  # a careless regenerator that changes everything: only the region's pixels may be kept
        for r in repairs:
            out[r.mask > 0.5] = BLUE
        return out

    settings = RepairSettings(max_rounds=3, grow=2, feather=1.0)  # a narrow band: the ball is 9 px away
    run = repair_loop(img, p, regenerate, settings, initial=first)
    assert calls == [(["cube"], ["(blue:1.4) cube"], 1)]
    assert run.stop_reason == "target" and run.best_round == 1
    assert [r.round for r in run.rounds] == [0, 1] and run.rounds[1].regions == ["cube"]
    assert run.rounds[1].score > run.rounds[0].score == pytest.approx(first.score)
    assert run.image.dtype == np.uint8 and run.image.shape == img.shape
    changed = (run.image != img).any(-1)
    repairs, _ = plan_repairs(p, first, SIZE, SIZE)
    blend = repair_blend(repairs, settings.grow, settings.feather)
    assert changed.any() and not changed[blend == 0].any()  # bit-identical outside the cube's grown, feathered mask
    bx0, by0, bx1, by1 = _region_box(p, "ball")
    assert (run.image[by0:by1, bx0:bx1] == img[by0:by1, bx0:bx1]).all()
    cx0, cy0, cx1, cy1 = _region_box(p, "cube")
    inner = run.image[cy0 + 10 : cy1 - 10, cx0 + 10 : cx1 - 10]
    assert (inner == BLUE).all()
    report = run.to_dict()
    assert report["regions_repaired"] == ["cube"] and report["stop_reason"] == "target"


def test_crop_regenerator_keeps_every_other_pixel(scene):
    """crop → sample (here: paint the noise mask blue) → stitch, through the core's crop and stitch."""
    p, img = scene
    seen = []

    def sample_crop(crop, noise_mask, repair):
        seen.append((repair.region_id, crop.shape, noise_mask.shape))
        out = crop.copy()
        out[noise_mask > 0.5] = np.array(BLUE, np.float32) / 255
        return out

    settings = RepairSettings(max_rounds=2, grow=4, feather=6.0, context=16, crop_mode="keep", colour_match=False)
    run = repair_loop(img.astype(np.float32) / 255, p, crop_regenerator(sample_crop, settings), settings)
    assert [s[0] for s in seen] == ["cube"] and seen[0][1][:2] == seen[0][2]
    assert run.stop_reason == "target" and run.image.dtype == np.float32
    src = img.astype(np.float32) / 255
    changed = (run.image != src).any(-1)
    blend = repair_blend(plan_repairs(p, check_alignment(img, p), SIZE, SIZE)[0], settings.grow, settings.feather)
    assert changed.any() and not changed[blend == 0].any()


def test_max_rounds_respected_and_ties_keep_the_earlier(scene):
    p, img = scene
    calls = []

    def no_better(image, repairs, the_plan, round_index):
        calls.append(round_index)
        out = np.array(image, copy=True)
        for r in repairs:
            out[r.mask > 0.5] = (RED[0], RED[1] + round_index, RED[2])  # still red: the same score
        return out

    run = repair_loop(img, p, no_better, RepairSettings(max_rounds=3, patience=10))
    assert calls == [1, 2, 3] and run.stop_reason == "max_rounds"
    assert run.best_round == 0 and (run.image == img).all()
    assert [r.improved for r in run.rounds] == [False] * 4
    calls.clear()
    run = repair_loop(img, p, no_better, RepairSettings(max_rounds=3))
    assert calls == [1] and run.stop_reason == "no_improvement" and len(run.rounds) == 2


def test_stop_reasons_without_a_repair(scene):
    p, img = scene
    never = []

    def regenerate(image, repairs, the_plan, round_index):
        never.append(round_index)
        return image

    good = img.copy()
    x0, y0, x1, y1 = (int(round(v)) for v in p.box("cube"))
    good[y0:y1, x0:x1] = BLUE
    assert repair_loop(good, p, regenerate).stop_reason == "target"
    data = p.to_dict()
    for r in data["canvas"]["regions"]:
        r["locked"] = r["id"] == "cube"
    locked = type(p).from_dict(data)
    assert repair_loop(img, locked, regenerate).stop_reason == "no_repairs"  # the failing region is locked
    assert repair_loop(img, p, regenerate, interrupted=lambda: True).stop_reason == "interrupted"
    assert never == []


def test_bad_input_is_a_typed_error(scene):
    p, img = scene
    with pytest.raises(RepairError) as e:
        RepairSettings(max_rounds=0)
    assert e.value.field == "max_rounds"
    with pytest.raises(NonFiniteError, match="NaN") as nan:
        keep_outside(img.astype(np.float32) / 255, np.full(img.shape, np.nan, np.float32), np.ones(img.shape[:2], np.float32))
    assert nan.value.field == "regenerated"
    with pytest.raises(RepairError, match="keep the size"):
        repair_loop(img, p, lambda image, repairs, pl, r: image[:10])
