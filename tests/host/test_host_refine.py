"""Reference-guided refinement inside real ComfyUI: nodes in-process with the tiny model through
the real sampler, and the shipped workflow through the real server."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from pakati_core.store import open_store

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
NODES = ("PakatiReference", "PakatiDeltaAnalysis", "PakatiRefine")
STOP_REASONS = {"target", "converged", "oscillating", "max_passes", "interrupted"}


def photo(name: str, side: int) -> np.ndarray:
    a = getattr(skimage.data, name)().astype(np.float32) / 255.0
    return cv2.resize(a[..., :3], (side, side), interpolation=cv2.INTER_AREA)


def as_image(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)[None].float()


def run(comfy, name, **inputs):
    return comfy.NODE_CLASS_MAPPINGS[name].execute(**inputs)


@pytest.fixture(scope="module")
def refine_inputs(comfy, tiny):
    model, clip, vae = tiny
    ref = photo("astronaut", 64)
    start = cv2.GaussianBlur(ref, (0, 0), 1.5)
    start[..., 2] = np.clip(start[..., 2] * 0.7, 0, 1)  # cooler and softer than the reference
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 12:44] = 1.0
    (refs,) = run(comfy, "PakatiReference", image=as_image(ref), aspect="general", description="astronaut", weight=1.0).result
    pos = clip.encode_from_tokens_scheduled(clip.tokenize("an astronaut portrait"))
    neg = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    return dict(
        model=model,
        clip=clip,
        vae=vae,
        image=as_image(start),
        positive=pos,
        negative=neg,
        references=refs,
        mask=torch.from_numpy(mask)[None],
        max_passes=3,
        target=0.999,
        strategy="adaptive",
        seed=5,
        steps=2,
        cfg=4.0,
        sampler_name="euler",
        scheduler="normal",
        learn=False,
    )


def test_nodes_are_registered_with_tooltips(comfy):
    for name in NODES:
        info = comfy.NODE_CLASS_MAPPINGS[name].GET_NODE_INFO_V1()
        assert info["category"] == "Pakati/refine"
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{name}.{input_name}"
    assert comfy.NODE_CLASS_MAPPINGS["PakatiReference"].GET_NODE_INFO_V1()["output"] == ["PAKATI_REFERENCES"]
    assert comfy.NODE_CLASS_MAPPINGS["PakatiDeltaAnalysis"].GET_NODE_INFO_V1()["output_node"] is True


def test_references_chain_and_delta_analysis_shows_the_report(comfy):
    a = photo("coffee", 96)
    (one,) = run(comfy, "PakatiReference", image=as_image(a), aspect="color", description="warm", weight=2.0).result
    (two,) = run(comfy, "PakatiReference", image=as_image(a), aspect="texture", description="grain", weight=1.0, references=one).result
    assert [r.aspect for r in two] == ["color", "texture"] and two[0] is one[0]
    out = run(comfy, "PakatiDeltaAnalysis", image=as_image(a), references=two)
    report, overall = out.result
    assert overall == 1.0 and json.loads(report)["overall"] == 1.0
    assert out.ui.as_dict() == {"text": (report,)}
    regions = json.dumps(
        {
            "version": 1,
            "width": 96,
            "height": 96,
            "regions": [{"id": "r1", "name": "cup", "shape": "rect", "points": [[16, 16], [64, 80]], "prompt": "", "feather": 0}],
        }
    )
    (canvas,) = run(comfy, "PakatiCanvas", width=96, height=96, regions=regions).result
    (part,) = run(
        comfy, "PakatiReference", image=as_image(a), aspect="color", description="", weight=1.0, canvas=canvas, region="cup"
    ).result
    assert part[0].mask is not None and float(part[0].mask.sum()) == 48 * 64
    darker = run(comfy, "PakatiDeltaAnalysis", image=as_image(np.clip(a - 0.1, 0, 1)), references=two).result
    d = {x["name"]: x for x in json.loads(darker[0])["references"][0]["deltas"]}
    assert d["brightness"]["direction"] == "less" and darker[1] < 1.0


def test_delta_analysis_names_the_input_on_bad_mask(comfy):
    a = photo("coffee", 64)
    (refs,) = run(comfy, "PakatiReference", image=as_image(a), aspect="general", description="", weight=1.0).result
    with pytest.raises(ValueError, match="PakatiDeltaAnalysis: input 'mask': the mask is empty"):
        run(comfy, "PakatiDeltaAnalysis", image=as_image(a), references=refs, mask=torch.zeros(1, 64, 64))


def test_refine_through_the_real_sampler(comfy, refine_inputs):
    import comfy.utils as cu

    updates = []
    cu.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value, total)))
    try:
        out = run(comfy, "PakatiRefine", **refine_inputs)
    finally:
        cu.set_progress_bar_global_hook(None)
    image, history, score = out.result
    h = json.loads(history)
    assert h["stop_reason"] in STOP_REASONS
    best = [p["best_so_far"] for p in h["passes"]]
    assert best == sorted(best), best
    assert score == pytest.approx(max(p["score"] for p in h["passes"]), abs=1e-6)
    regens = [a for p in h["passes"] for a in p["actions"] if a["action"] == "regenerate"]
    assert regens, "the region still missed after corrections, so it went through the sampler"
    assert all(set(p) >= {"pass", "seed", "score", "deltas", "adjustments", "aspects"} for p in h["passes"])
    # pixels outside the mask are bit-identical to the input
    outside = refine_inputs["mask"][0] == 0
    assert torch.equal(image[0][outside], refine_inputs["image"][0][outside])
    assert not torch.equal(image, refine_inputs["image"])
    # progress went across passes and sampling steps, ending full
    assert len(updates) > 3 and updates[-1][0] == updates[-1][1] == 3 * 100
    values = [v for v, _ in updates]
    assert values == sorted(values)
    # same seed, same history; another seed, another history
    again = run(comfy, "PakatiRefine", **refine_inputs).result
    assert again[1] == history and torch.equal(again[0], image)
    other = run(comfy, "PakatiRefine", **(refine_inputs | {"seed": 6})).result
    assert other[1] != history


def test_refine_learns_and_records_history_in_the_store_and_honours_interrupts(comfy, refine_inputs, tmp_path):
    import comfy.model_management as mm
    import folder_paths

    old = folder_paths.get_user_directory()
    folder_paths.set_user_directory(str(tmp_path))
    try:
        run(comfy, "PakatiRefine", **(refine_inputs | {"learn": True, "max_passes": 1}))
        store = open_store(user_dir=tmp_path)
        rows = store.what_worked.load()
        (run_row,) = store.runs.newest()
        assert run_row["node"] == "PakatiRefine" and run_row["params"]["max_passes"] == 1 and run_row["thumbnail"]
        assert 0 <= run_row["scores"]["overall"] <= 1 and run_row["seeds"]
        assert rows and {r["action"] for r in rows} <= {"tone", "colour", "regenerate"} and all(r["version"] == 1 for r in rows)
        mm.interrupt_current_processing(True)
        with pytest.raises(mm.InterruptProcessingException):
            run(comfy, "PakatiRefine", **(refine_inputs | {"learn": True}))
        assert not mm.processing_interrupted()
        assert store.runs.count() == 1  # an interrupted run is no history
    finally:
        mm.interrupt_current_processing(False)
        folder_paths.set_user_directory(old)


def test_a_read_only_database_is_logged_and_the_refined_image_still_returned(comfy, refine_inputs, tmp_path, monkeypatch, caplog):
    db = tmp_path / "ro.db"
    open_store(f"sqlite:///{db}").runs.add("Earlier")
    monkeypatch.setenv("PAKATI_DATABASE_URL", f"sqlite:///file:{db}?mode=ro&uri=true")
    with caplog.at_level("ERROR", logger="pakati"):
        image, history, score = run(comfy, "PakatiRefine", **(refine_inputs | {"learn": True, "max_passes": 1})).result
    assert image.shape == refine_inputs["image"].shape and torch.isfinite(image).all() and 0 <= score <= 1
    assert json.loads(history)["passes"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "the history of this PakatiRefine run was not recorded (the result is unaffected)" in logged
    assert "read-only" in logged and "what worked in this PakatiRefine run was not recorded" in logged
    assert open_store(f"sqlite:///{db}").runs.count() == 1


def test_bad_rules_override_is_refused_at_queue_time(comfy):
    cls = comfy.NODE_CLASS_MAPPINGS["PakatiRefine"]
    msg = cls.validate_inputs(rules='{"version": 1, "rules": [{"id": "x", "if": {"nope": "Z"}, "then": {"denoise": "low"}}]}')
    assert msg.startswith("PakatiRefine: input 'rules': rules[78].if.nope: unknown variable 'nope'")
    assert cls.validate_inputs(rules="") is True


def api_workflow() -> dict:
    prompt = json.loads((REPO / "workflows" / "api" / "reference_refine.json").read_text())
    for node in prompt.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["class_type"], node["inputs"] = "PakatiTestTinySDXL", {"seed": 0, "model_channels": 32}
        if node["class_type"] == "PakatiRefine":
            node["inputs"].update(steps=2, max_passes=2, learn=False)
    return prompt


def test_reference_refine_workflow_runs_on_the_server(comfy_server):
    inp = comfy_server.base / "input"
    inp.mkdir(parents=True, exist_ok=True)
    ref = (photo("astronaut", 128) * 255).round().astype(np.uint8)
    start = cv2.GaussianBlur(ref, (0, 0), 1.5)
    Image.fromarray(start).save(inp / "pakati_refine_input.png")
    Image.fromarray(ref).save(inp / "pakati_reference.png")
    prompt = api_workflow()
    entry = comfy_server.run(prompt, timeout=600)
    ids = {n["class_type"]: k for k, n in prompt.items()}
    (refined,) = comfy_server.images(entry, ids["SaveImage"])
    original = start  # LoadImage's /255 and SaveImage's *255 round-trip every uint8 value exactly
    # the canvas region is the centre square (256..768 of 1024 -> 32..96 of 128): outside is untouched
    outside = np.ones((128, 128), bool)
    outside[30:98, 30:98] = False
    assert np.array_equal(refined[outside], original[outside])
    assert not np.array_equal(refined, original)
    texts = {k: v["text"][0] for k, v in entry["outputs"].items() if "text" in v}
    history = json.loads(texts[next(k for k, n in prompt.items() if n["class_type"] == "PreviewAny")])
    assert history["stop_reason"] in STOP_REASONS and history["passes"]
    report = json.loads(texts[ids["PakatiDeltaAnalysis"]])
    assert 0 < report["overall"] <= 1 and report["references"][0]["aspect"] == "general"


def test_refine_with_a_regional_model(comfy, refine_inputs, monkeypatch):
    """Regions compose with refinement: a PakatiApplyRegions model regenerates the region with its prompts."""
    from conftest import loaded_pack

    doc = json.dumps(
        {
            "version": 1,
            "width": 64,
            "height": 64,
            "regions": [{"id": "face", "shape": "rect", "points": [[20, 24], [36, 40]], "prompt": "a smiling face"}],
        }
    )
    (canvas,) = run(comfy, "PakatiCanvas", width=64, height=64, regions=doc).result
    regions, pos, neg = run(
        comfy,
        "PakatiRegionalConditioning",
        clip=refine_inputs["clip"],
        canvas=canvas,
        base_prompt="an astronaut portrait",
        base_negative="",
    ).result
    (patched,) = run(
        comfy,
        "PakatiApplyRegions",
        model=refine_inputs["model"],
        regions=regions,
        base_weight=0.3,
        auto_negative=0.0,
        start_percent=0.0,
        end_percent=1.0,
    ).result
    wrapper = loaded_pack().nodes.regional_patch.RegionalWrapper
    regional_calls = []
    original = wrapper.__call__
    monkeypatch.setattr(
        wrapper,
        "__call__",
        lambda self, executor, x, *a, **k: regional_calls.append(tuple(x.shape)) or original(self, executor, x, *a, **k),
    )
    inputs = refine_inputs | {"model": patched, "positive": pos, "negative": neg, "canvas": canvas, "region": "face"}
    inputs.pop("mask")
    image, history, _ = run(comfy, "PakatiRefine", **inputs).result
    h = json.loads(history)
    assert any(a["action"] == "regenerate" for p in h["passes"] for a in p["actions"])
    assert regional_calls, "the regenerations went through Pakati's regional attention"
    # the box around this region alone would be 32x32 pixels (latent 4x4); a regional model samples
    # the whole image (latent 8x8) so its region masks stay where they were drawn
    box = loaded_pack().nodes.refine_nodes.HostRegenerator.crop_box(np.pad(np.ones((16, 16), np.float32), ((24, 24), (20, 28))))
    assert (box.height, box.width) == (48, 48) != (64, 64)
    assert set(regional_calls) == {(2, 4, 8, 8)}
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[24:40, 20:36] = False
    assert torch.equal(image[0][outside], refine_inputs["image"][0][outside])
