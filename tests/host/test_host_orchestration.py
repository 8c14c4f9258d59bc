"""PakatiPlan and PakatiCheckAlignment inside real ComfyUI: plan -> regional conditioning -> sample -> check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.host

GOAL = "a red apple on the left of a blue cup"


def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


def test_plan_plugs_into_regional_conditioning_and_the_check_scores_the_image(comfy, tiny):
    model, clip, vae = tiny
    out = node(comfy, "PakatiPlan").execute(goal=GOAL, width=128, height=128, planner="offline", model="", seed=3, remember=False)
    canvas, base, negative, plan, plan_json = out.result
    assert [r.id for r in canvas.regions] == ["apple", "cup"] and "red" in canvas.regions[0].prompt
    assert json.loads(plan_json)["goal"] == GOAL and plan.tasks[0].params["seed"] == 3
    assert out.ui["text"][0] == plan_json and out.ui["images"]  # plan JSON and layout preview on the node
    regions, pos, neg = (
        node(comfy, "PakatiRegionalConditioning").execute(clip=clip, canvas=canvas, base_prompt=base, base_negative=negative).result
    )
    patched = (
        node(comfy, "PakatiApplyRegions")
        .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )
    latent = comfy.common_ksampler(patched, 5, 2, 5.0, "euler", "normal", pos, neg, {"samples": torch.zeros(1, 4, 16, 16)})[0]
    image = vae.decode(latent["samples"])
    check = node(comfy, "PakatiCheckAlignment").execute(image=image, checker="offline", plan=plan, remember=False)
    score, report, suggestions, replanned, repaired = check.result
    assert 0.0 <= score <= 1.0 and np.isfinite(score) and image.shape[1:3] == (128, 128)
    rep = json.loads(report)
    assert {v["kind"] for v in rep["verdicts"]} >= {"exist", "attribute", "relation"}
    assert isinstance(json.loads(suggestions), list) and repaired.width == 128
    assert "score" in check.ui["text"][0]


def test_check_from_a_goal_and_a_hand_drawn_canvas(comfy):
    img = torch.zeros(1, 128, 128, 3)
    img[:, :, :64] = torch.tensor([0.85, 0.1, 0.1])
    img[:, :, 64:] = torch.tensor([0.1, 0.3, 0.9])
    canvas = (
        node(comfy, "PakatiCanvas")
        .execute(
            width=128,
            height=128,
            regions=json.dumps(
                {
                    "version": 1,
                    "width": 128,
                    "height": 128,
                    "regions": [
                        {"id": "apple", "shape": "rect", "points": [[0, 16], [60, 112]], "prompt": "red apple"},
                        {"id": "cup", "shape": "rect", "points": [[68, 16], [128, 112]], "prompt": "blue cup"},
                    ],
                }
            ),
        )
        .result[0]
    )
    score, report, *_ = (
        node(comfy, "PakatiCheckAlignment").execute(image=img, checker="offline", goal=GOAL, canvas=canvas, remember=False).result
    )
    by = {v["id"]: v for v in json.loads(report)["verdicts"]}
    assert by["attr:apple:red"]["verdict"] == "yes" and by["attr:cup:blue"]["verdict"] == "yes"
    img2 = img.flip(2)  # colours swapped: both colour questions fail
    score2, report2, *_ = (
        node(comfy, "PakatiCheckAlignment").execute(image=img2, checker="offline", goal=GOAL, canvas=canvas, remember=False).result
    )
    assert score2 < score and json.loads(report2)["repair_tasks"]


def test_errors_name_the_node_and_the_input(comfy):
    plan_node, check_node = node(comfy, "PakatiPlan"), node(comfy, "PakatiCheckAlignment")
    assert "PakatiPlan: input 'goal'" in plan_node.validate_inputs(goal="   ")
    assert "input 'planner'" in plan_node.validate_inputs(planner="oracle")
    assert "input 'checker'" in check_node.validate_inputs(checker="psychic")
    with pytest.raises(ValueError, match="PakatiPlan: input 'goal'"):
        plan_node.execute(goal="   ", width=256, height=256, planner="offline", model="", seed=0, remember=False)
    nothing = plan_node.execute(goal="the and of", width=256, height=256, planner="offline", model="", seed=0, remember=False).result[3]
    assert len(nothing.canvas["regions"]) == 1 and any("no concrete noun" in n for n in nothing.notes)  # a plan, not an error
    with pytest.raises(ValueError, match="PakatiCheckAlignment: input 'plan'"):
        check_node.execute(image=torch.zeros(1, 64, 64, 3), checker="offline", remember=False)
    with pytest.raises(ValueError, match="PakatiCheckAlignment: input 'image'"):
        check_node.execute(image=torch.full((1, 64, 64, 3), float("nan")), checker="offline", goal="a cat", remember=False)


def test_check_errors_word_for_word(comfy):
    """PakatiCheckAlignment's errors go through nodes.common.node_error: a goal error names 'goal' once (no
    'goal: goal:'), an image error names 'image', a plan error 'plan' (the messages the node wrote itself before)."""
    check = node(comfy, "PakatiCheckAlignment")

    def message(**kw) -> str:
        with pytest.raises(ValueError) as e:
            check.execute(checker="offline", remember=False, **{"image": torch.zeros(1, 64, 64, 3), **kw})
        return str(e.value)

    assert message(goal="x" * 2001) == "PakatiCheckAlignment: input 'goal': the goal is 2001 characters; at most 2000 are read"
    assert message() == "PakatiCheckAlignment: input 'plan': connect a plan from Pakati Plan, or give a goal"
    assert message(goal="a cat", image=torch.zeros(1, 4, 4, 3)) == (
        "PakatiCheckAlignment: input 'image': image: expected an HxWx3 image of at least 8x8 pixels, got shape (4, 4, 3)"
    )


def test_llm_planner_without_a_key_plans_offline_with_a_note(comfy, monkeypatch):
    for var in ("ANTHROPIC_API_KEY", "PAKATI_API_KEY_ANTHROPIC", "PAKATI_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PAKATI_USER_DIR", "/nonexistent-pakati-user")
    out = node(comfy, "PakatiPlan").execute(goal=GOAL, width=256, height=256, planner="anthropic", model="", seed=0, remember=False)
    plan = out.result[3]
    assert plan.planner == "offline" and any("no API key" in n for n in plan.notes)


def test_plan_and_check_through_the_server_show_text_and_remember(comfy_server):
    """Through /prompt (the full template run is in test_workflow_templates): the plan JSON and preview on
    PakatiPlan, the check's summary on PakatiCheckAlignment, and both remembered under the user folder."""
    from comfy_client import provide_input_images

    prompt = {
        "1": {
            "class_type": "PakatiPlan",
            "inputs": {
                "goal": "a red cat next to a white pillow on a sofa",
                "width": 256,
                "height": 256,
                "planner": "offline",
                "model": "",
                "seed": 0,
                "remember": True,
            },
        },
        "2": {"class_type": "LoadImage", "inputs": {"image": "pakati_orch_photo.png"}},
        "3": {
            "class_type": "PakatiCheckAlignment",
            "inputs": {"image": ["2", 0], "plan": ["1", 3], "checker": "offline", "remember": True},
        },
    }
    provide_input_images(prompt, comfy_server.base / "input")
    out = comfy_server.run(prompt, timeout=300)["outputs"]
    plan = json.loads(out["1"]["text"][0])
    assert plan["canvas"]["width"] == 256 and {o["noun"] for o in plan["objects"]} >= {"cat", "pillow", "sofa"}
    assert out["1"]["images"] and out["3"]["text"][0].startswith("score ")
    from pakati_core.orchestration import goal_key
    from pakati_core.store import open_store

    store = open_store(user_dir=comfy_server.base / "user")  # the server's own database (SQLite default)
    kinds = sorted({r["kind"] for r in store.context.load_records(goal_key(plan["goal"], 256, 256))})
    assert kinds == ["check", "plan"]


def test_references_let_the_check_find_objects_and_judge_where_they_are(comfy):
    import cv2
    import skimage.data

    cat = skimage.data.chelsea()[40:260, 100:330].astype(np.float32) / 255.0
    cup = skimage.data.coffee()[20:380, 120:480].astype(np.float32) / 255.0
    plan = (
        node(comfy, "PakatiPlan")
        .execute(goal="a cat on the left of a cup", width=256, height=256, planner="offline", model="", seed=0, remember=False)
        .result[3]
    )
    refs = (
        node(comfy, "PakatiReference")
        .execute(image=torch.from_numpy(cat)[None], aspect="general", description="a cat", weight=1.0)
        .result[0]
    )
    refs = (
        node(comfy, "PakatiReference")
        .execute(image=torch.from_numpy(cup)[None], aspect="general", description="my cup", weight=1.0, references=refs)
        .result[0]
    )

    def scene(swap: bool) -> torch.Tensor:
        img = np.full((256, 256, 3), 0.5, np.float32)
        for oid, photo in (("cat", cat), ("cup", cup)):
            where = {"cat": "cup", "cup": "cat"}[oid] if swap else oid
            x0, y0, x1, y1 = (int(round(v)) for v in plan.box(where))
            img[y0:y1, x0:x1] = cv2.resize(photo, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(img)[None]

    def relation(image):
        report = (
            node(comfy, "PakatiCheckAlignment")
            .execute(image=image, checker="offline", plan=plan, references=refs, remember=False)
            .result[1]
        )
        return next(v for v in json.loads(report)["verdicts"] if v["kind"] == "relation")

    ok, bad = relation(scene(False)), relation(scene(True))
    assert (ok["verdict"], ok["source"]) == ("yes", "exemplar")
    assert bad["verdict"] == "no"


@pytest.mark.parametrize("checker,model", [("anthropic", "claude-sonnet-5-5"), ("openai", "gpt-6.2-sol")])
def test_check_with_a_vision_judge_through_the_server_keeps_the_key_out(provider_comfy_server, fake_openai, checker, model):
    """PakatiCheckAlignment with a vision checker on the real server, its SDK pointed at the fake provider: what colour
    cannot measure (existence, the relation) is answered by the judge, the same questions are only guessed offline,
    and the sentinel key reaches the provider but nothing the server shows or writes."""
    from PIL import Image

    from model_fakes import SENTINEL_KEY, key_leaks

    server = provider_comfy_server
    img = np.zeros((128, 128, 3), np.uint8)
    img[:, :64], img[:, 64:] = (217, 26, 26), (26, 77, 230)  # a red left half, a blue right half
    (server.base / "input").mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(server.base / "input" / "pakati_judge_check.png")

    def check(which: str) -> tuple[dict, dict]:
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "pakati_judge_check.png"}},
            "2": {
                "class_type": "PakatiCheckAlignment",
                "inputs": {"image": ["1", 0], "goal": GOAL, "checker": which, "model": "", "remember": True},
            },
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
        }
        entry = server.run(prompt, timeout=300)
        return prompt, entry

    sent_before, auth_before = len(fake_openai.requests), len(fake_openai.auth_headers)
    prompt, entry = check(checker)
    report = json.loads(entry["outputs"]["3"]["text"][0])
    by_source: dict[str, list[dict]] = {}
    for v in report["verdicts"]:
        by_source.setdefault(v["source"], []).append(v)
    judged = by_source.get("judge", [])
    assert {v["kind"] for v in judged} >= {"exist", "relation"} and {v["kind"] for v in by_source["colour"]} == {"attribute"}
    assert all((v["verdict"], v["score"], v["reason"]) == ("yes", 0.75, "the fake judge sees it") for v in judged)
    calls = fake_openai.requests[sent_before:]
    (call,) = calls  # one judge call for every question colour could not answer
    assert call["path"].endswith("/messages" if checker == "anthropic" else "/chat/completions") and call["model"] == model
    assert call["questions"] == len(judged) and call["format"] == "json_schema" and not call["forced_tool"] and call["sampling"] == []
    assert any(SENTINEL_KEY in h for h in fake_openai.auth_headers[auth_before:]), "the sentinel key never reached the provider"
    assert entry["outputs"]["2"]["text"][0].startswith(f"score {report['score']:.2f}") and "(judge)" in entry["outputs"]["2"]["text"][0]

    _, offline = check("offline")  # the same questions without a judge: guessed, and the score is not the judge's
    plain = {v["id"]: v for v in json.loads(offline["outputs"]["3"]["text"][0])["verdicts"]}
    assert all(plain[v["id"]]["source"] in ("plan", "none") and plain[v["id"]]["verdict"] == "unsure" for v in judged)
    assert len(fake_openai.requests) == sent_before + 1
    assert report["score"] != json.loads(offline["outputs"]["3"]["text"][0])["score"]

    leaks = key_leaks(server, {"API prompt": json.dumps(prompt), "report": json.dumps(report), "history entry": json.dumps(entry)})
    assert not leaks, f"the key (or a fragment of it) appears in: {leaks}"
