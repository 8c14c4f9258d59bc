"""Solver: minimum-displacement layout, colour coherence by CIEDE2000, parameter tuning within a budget."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from pakati_core.orchestration import PlannerError, check_alignment, plan
from pakati_core.orchestration.coherence import colour_coherence, harmonise
from pakati_core.orchestration.rules import relation_holds
from pakati_core.orchestration.solver import solve_layout
from pakati_core.orchestration.tuning import apply_parameters, optimise_parameters
from plan_helpers import equal_boxes


def test_layout_solver_moves_little_and_satisfies_relations():
    boxes = {"a": (600.0, 400.0, 800.0, 600.0), "b": (100.0, 400.0, 300.0, 600.0), "c": (120.0, 420.0, 280.0, 580.0)}
    rels = [("a", "left_of", "b"), ("c", "above", "b"), ("c", "near", "b")]
    out, ok = solve_layout(boxes, rels, 1024, 1024)
    assert ok
    for a, r, b in rels:
        assert relation_holds(r, out[a], out[b], 1024, 1024)
    assert all(abs((o[2] - o[0]) - (i[2] - i[0])) < 1e-6 for o, i in zip(out.values(), boxes.values()))  # sizes kept
    moved = sum(np.hypot(o[0] - i[0], o[1] - i[1]) for o, i in zip(out.values(), boxes.values()))
    assert moved < 1200  # a swap of two columns and a lift, not a rebuild
    same, ok = solve_layout(out, rels, 1024, 1024)
    assert ok and all(np.allclose(same[k], out[k], atol=1.0) for k in out)  # already satisfied: nothing moves


def _scene(p, light_shift=0.0):
    img = np.zeros((256, 256, 3), np.float32) + 0.5
    photo = cv2.resize(skimage.data.coffee(), (256, 256)).astype(np.float32) / 255.0
    img[:] = photo
    s = 256 / p.width
    o = p.objects[0]
    x0, y0, x1, y1 = (int(v * s) for v in p.box(o.id))
    img[y0:y1, x0:x1] = np.clip(img[y0:y1, x0:x1] * (1 + light_shift) + 0.1 * light_shift, 0, 1)
    return img


def test_colour_coherence_flags_and_fixes_a_region_under_other_light():
    p = equal_boxes(plan("a cup next to a bowl next to a plate", 512, 512), 225.0, 123.0)
    even = colour_coherence(_scene(p), p)
    odd = colour_coherence(_scene(p, 0.6), p)
    assert even.tasks == [] and odd.tasks and odd.score < even.score
    assert odd.tasks[0].region_ids == (p.objects[0].region_id,) and odd.tasks[0].params["action"] == "match_light"
    fixed = colour_coherence(harmonise(_scene(p, 0.6), p, odd), p)
    assert fixed.regions[p.objects[0].region_id]["delta_e"] < odd.regions[p.objects[0].region_id]["delta_e"] / 2


def test_parameter_tuning_respects_the_budget_and_improves_the_checker_score():
    p = plan("a red cat", 256, 256)
    photo = cv2.resize(skimage.data.chelsea(), (256, 256)).astype(np.float32) / 255.0
    grey = photo.mean(axis=2, keepdims=True)

    def render(params):  # the region's colour saturation follows strength and cfg: a deterministic stand-in renderer
        sat = float(np.clip(params["strength"] * params["cfg"] / 6.5 - 0.45, 0, 1))
        img = photo.copy()
        x0, y0, x1, y1 = (int(v) for v in p.box(p.objects[0].id))
        red = grey[y0:y1, x0:x1] * np.array([1.0, 0.15, 0.12], np.float32)
        img[y0:y1, x0:x1] = (1 - sat) * grey[y0:y1, x0:x1] + sat * red
        return img

    calls = []

    def evaluate(params):
        calls.append(params)
        return check_alignment(render(params), p).score

    res = optimise_parameters(evaluate, budget=8, seed=1)
    assert len(calls) == res.evaluations <= 8
    assert res.best_score > res.history[0][1] and res.best_score >= 0.7  # 0.75 is the most without an exemplar or judge
    again = optimise_parameters(evaluate, budget=8, seed=1)
    assert again.best_params == res.best_params  # deterministic
    tuned = apply_parameters(p, res.best_params)
    assert tuned.tasks[0].params["cfg"] == res.best_params["cfg"]
    with pytest.raises(PlannerError):
        optimise_parameters(evaluate, budget=0)
