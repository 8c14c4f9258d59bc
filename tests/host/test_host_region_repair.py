"""PakatiRepairRegions in real ComfyUI: the goal_repair template's repair node, queued on /prompt with the tiny
SDXL-class model, redraws exactly the region whose check failed and leaves every other pixel as it was.

The image is painted for the plan "a red ball on the left and a brown cube on the right" with a blue cube,
so the offline check fails on the cube's colour only. (Brown, because the tiny random-weight model draws
brownish noise whatever the prompt: its redraw passes the colour question, so the repair round is kept.)
The whole template, render included, runs in tests/browser/test_workflow_templates.py like every API twin.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_client import api_template
from pakati_core.orchestration import check_alignment, plan
from pakati_core.orchestration.repair import plan_repairs, repair_blend

pytestmark = pytest.mark.host

GOAL = "a red ball on the left and a brown cube on the right"
SIZE = 256
RED, BLUE, GREY = (220, 30, 30), (30, 40, 220), (128, 128, 128)


def painted():
    p = plan(GOAL, SIZE, SIZE)
    img = np.full((SIZE, SIZE, 3), GREY, np.uint8)
    for o in p.objects:
        x0, y0, x1, y1 = (int(round(v)) for v in p.box(o.id))
        img[y0:y1, x0:x1] = RED if o.noun == "ball" else BLUE
    return p, img


def repair_prompt(image_name: str) -> tuple[dict, str, str]:
    """goal_repair's plan and repair nodes on a loaded image (the render nodes dropped), at 256² and crops at their own size."""
    prompt = api_template("goal_repair")
    repair_id = next(k for k, v in prompt.items() if v["class_type"] == "PakatiRepairRegions")
    plan_id = next(k for k, v in prompt.items() if v["class_type"] == "PakatiPlan")
    keep = {repair_id, plan_id}
    for k, v in list(prompt.items()):
        keep |= {x[0] for x in v["inputs"].values() if isinstance(x, list) and k in keep}
    keep |= {x[0] for k in list(keep) for x in prompt[k]["inputs"].values() if isinstance(x, list)}
    prompt = {k: v for k, v in prompt.items() if k in keep}
    prompt[plan_id]["inputs"].update(goal=GOAL, width=SIZE, height=SIZE, remember=False)
    prompt["load"] = {"class_type": "LoadImage", "inputs": {"image": image_name}}
    prompt["save"] = {"class_type": "SaveImage", "inputs": {"images": [repair_id, 0], "filename_prefix": "pakati_repair_test"}}
    prompt[repair_id]["inputs"].update(image=["load", 0], crop="keep", max_rounds=2, context=16)
    return prompt, repair_id, "save"


def test_repair_node_on_the_server_changes_only_the_failing_region(comfy_server):
    p, src = painted()
    (comfy_server.base / "input").mkdir(parents=True, exist_ok=True)
    Image.fromarray(src).save(comfy_server.base / "input" / "pakati_repair_red_cube.png")
    prompt, repair_id, save_id = repair_prompt("pakati_repair_red_cube.png")
    entry = comfy_server.run(prompt)
    (got,) = comfy_server.images(entry, save_id)
    assert got.shape == src.shape and np.isfinite(got).all()
    summary = entry["outputs"][repair_id]["text"][0]
    assert summary.startswith("score") and "cube" in summary
    first = check_alignment(src, p)
    assert [v.question.id for v in first.failed] == ["attr:cube:brown"]
    inputs = prompt[repair_id]["inputs"]
    repairs, _ = plan_repairs(p, first, SIZE, SIZE)
    assert [r.region_id for r in repairs] == ["cube"]
    blend = repair_blend(repairs, inputs["grow"], inputs["feather"])
    changed = (got != src).any(-1)
    assert not changed[blend == 0].any(), "a pixel outside the cube's grown, feathered mask changed"
    assert changed[repairs[0].mask >= 1].mean() > 0.9, "the cube was not redrawn"
    assert "round 1" in summary.split("\n")[0] and "stop: target" in summary
    info = comfy_server.get_json("/object_info/PakatiRepairRegions")["PakatiRepairRegions"]
    assert info["category"] == "Pakati/orchestration"
    for group in ("required", "optional"):
        for name, spec in info["input"].get(group, {}).items():
            assert len(spec) > 1 and spec[1].get("tooltip"), f"input {name} has no tooltip"


def test_repair_node_in_process_report_and_errors(comfy, tiny):
    """The report names rounds, scores and regions; bad inputs name the node and the input."""
    model, clip, vae = tiny
    p, src = painted()
    cls = comfy.NODE_CLASS_MAPPINGS["PakatiRepairRegions"]
    node_plan = comfy.NODE_CLASS_MAPPINGS["PakatiPlan"].execute(GOAL, SIZE, SIZE, "offline", "", 0, False).result[3]
    neg = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    args = dict(
        model=model, clip=clip, vae=vae, plan=node_plan, negative=neg, seed=1, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal",
        denoise=1.0, checker="offline", max_rounds=1, grow=8, feather=16.0, context=16, crop="keep",
    )  # fmt: skip
    image = torch.from_numpy(src.astype(np.float32) / 255)[None]
    out, report, score = cls.execute(image=image, **args).result
    rep = json.loads(report)
    assert torch.isfinite(out).all() and out.shape == image.shape
    assert rep["rounds"][0]["failed"] == ["attr:cube:brown"] and rep["rounds"][1]["regions"] == ["cube"]
    assert rep["rounds"][1]["repairs"][0]["prompt"] == "(brown:1.4) cube" and len(rep["rounds"]) == 2
    assert rep["stop_reason"] == "target" and rep["best_round"] == 1 and score == pytest.approx(rep["score"])
    assert rep["score"] > rep["rounds"][0]["score"]
    changed = (out[0] != image[0]).any(-1).numpy()
    repairs = plan_repairs(p, check_alignment(src, p), SIZE, SIZE)[0]
    assert not changed[repair_blend(repairs, 8, 16.0) == 0].any() and changed[repairs[0].mask >= 1].mean() > 0.9
    with pytest.raises(ValueError, match="PakatiRepairRegions: input 'image'"):
        cls.execute(image=image.repeat(2, 1, 1, 1), **args)
    with pytest.raises(ValueError, match="PakatiRepairRegions: input 'max_rounds'"):
        cls.execute(image=image, **{**args, "max_rounds": 0})
    nan = image.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="PakatiRepairRegions: input 'image'.*NaN"):
        cls.execute(image=nan, **args)
