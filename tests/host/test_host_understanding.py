"""PakatiLearnReference / PakatiUseUnderstanding through the real host: tiny model, real sampler, real server."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.transform import resize

from comfy_client import PromptRejected
from pakati_core.store import open_store

pytestmark = pytest.mark.host

ALL = ["random_patches", "progressive_reveal", "center_out", "edge_in", "quadrant_reveal", "frequency_bands", "semantic_regions"]


def reference(side: int = 64) -> torch.Tensor:
    a = resize(data.astronaut(), (side, side), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(a)[None]


def learn_inputs(tiny, image, **over):
    model, clip, vae = tiny
    inputs = dict(
        model=model,
        clip=clip,
        vae=vae,
        image=image,
        description="an astronaut in a white suit",
        strategies="all",
        levels=1,
        attempts=2,
        seed=0,
        steps=2,
        cfg=4.0,
        sampler_name="euler",
        scheduler="normal",
        negative="",
        max_side=64,
        force=False,
    )
    inputs.update(over)
    return inputs


@pytest.fixture
def user_dir(tmp_path, comfy):
    import folder_paths

    old = folder_paths.get_user_directory()
    folder_paths.set_user_directory(str(tmp_path / "user"))
    yield tmp_path / "user"
    folder_paths.set_user_directory(old)


def test_tiny_model_reports_all_seven_strategies_without_mastery(comfy, tiny, user_dir):
    node = comfy.NODE_CLASS_MAPPINGS["PakatiLearnReference"]
    out = node.execute(**learn_inputs(tiny, reference()))
    understanding, text, preview = out.result
    report = json.loads(text)
    assert list(report["strategies"]) == ALL and report["source"] == "learned"
    assert report["mastered"] is False and set(report["shortfalls"]) == set(ALL)
    for name, e in report["strategies"].items():
        lv = e["levels"][0]
        assert len(lv["attempts"]) == 2 and [a["seed"] for a in lv["attempts"]] == [0, 1]
        assert lv["best_baseline"] in (("unsharp", "richardson_lucy") if name == "frequency_bands" else ("telea", "biharmonic"))
        assert not lv["mastered"] and lv["shortfall"]
    # random weights cannot beat Telea/biharmonic on the spatial masks
    assert all(
        report["strategies"][n]["best_composite"] < report["strategies"][n]["best_baseline_composite"]
        for n in ALL
        if n != "frequency_bands"
    )
    assert preview.shape[0] == 1 and preview.shape[-1] == 3 and preview.shape[1] >= 128
    assert "text" in out.ui and out.ui["images"]
    assert set(report["statistics"]) == {"color", "texture", "composition"}
    stored = open_store(user_dir=user_dir).understandings.all()
    assert [u["image_hash"] for u in stored] == [report["image_hash"]] and report["store_path"].startswith("sqlite:///")


def test_use_understanding_outputs(comfy, tiny, user_dir):
    learn_node = comfy.NODE_CLASS_MAPPINGS["PakatiLearnReference"]
    understanding, text, _ = learn_node.execute(**learn_inputs(tiny, reference(), strategies="center_out")).result
    # same seed, same inputs -> same scores through the real sampler (forced relearn)
    again = learn_node.execute(**learn_inputs(tiny, reference(), strategies="center_out", force=True)).result[1]
    assert json.loads(again)["strategies"] == json.loads(text)["strategies"]
    use = comfy.NODE_CLASS_MAPPINGS["PakatiUseUnderstanding"]
    refs, prompt, init, info = use.execute(
        understanding=understanding, target_prompt="a cosmonaut on the moon", aspects="color, texture"
    ).result
    assert [r.aspect for r in refs] == ["color", "texture"] and refs[0].description == "an astronaut in a white suit"
    assert prompt.startswith("a cosmonaut on the moon, (an astronaut in a white suit:")
    assert init.shape == (1, 64, 64, 3)
    assert json.loads(info)["aspects"] == ["color", "texture"]
    # the references are the pack's PAKATI_REFERENCES: delta analysis of the reference against itself is exact
    report, overall = comfy.NODE_CLASS_MAPPINGS["PakatiDeltaAnalysis"].execute(image=init, references=refs).result
    assert overall == pytest.approx(1.0, abs=1e-6)


class PasteBack:
    """Reconstructor that pastes the original pixels back (what a perfect model would return)."""

    def __init__(self, original):
        self.original = original

    def inpaint(self, image, mask, prompt, seed):
        return self.original

    def img2img(self, image, denoise, prompt, seed):
        return self.original

    def attempts_done(self, done, total):
        self.progress = (done, total)  # the node's progress callback, as HostReconstructor has it


def test_mastery_declared_for_the_original_pasted_back(comfy, tiny, user_dir, monkeypatch):
    import sys

    from conftest import loaded_pack

    pack = loaded_pack()
    mod = sys.modules[pack.__name__ + ".nodes.understanding_nodes"]
    monkeypatch.setattr(mod, "HostReconstructor", lambda *a, **k: PasteBack(reference()[0].numpy()))
    report = json.loads(comfy.NODE_CLASS_MAPPINGS["PakatiLearnReference"].execute(**learn_inputs(tiny, reference(), seed=5)).result[1])
    assert report["mastered"] is True and report["shortfalls"] == {}
    assert all(e["mastered"] for e in report["strategies"].values())


REPO_WORKFLOW = __import__("pathlib").Path(__file__).resolve().parents[2] / "workflows" / "api" / "reference_understanding.json"


def small_prompt(image_name: str) -> dict:
    """The shipped API workflow with the tiny model, two strategies, one level, 2 steps, 64 px."""
    prompt = json.loads(REPO_WORKFLOW.read_text())
    for node in prompt.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["class_type"], node["inputs"] = "PakatiTestTinySDXL", {"seed": 0, "model_channels": 32}
        if node["class_type"] == "LoadImage":
            node["inputs"]["image"] = image_name
        if node["class_type"] == "PakatiLearnReference":
            node["inputs"].update(strategies="center_out, frequency_bands", levels=1, attempts=2, steps=2, max_side=64)
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = 2
    return prompt


def test_server_second_run_is_served_from_the_store_and_survives_a_restart(comfy_server):
    """Restarts the shared server once (it is left running)."""
    inputs = comfy_server.base / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    Image.fromarray((reference(64)[0].numpy() * 255).round().astype(np.uint8)).save(inputs / "pakati_understanding_ref.png")
    shutil.copy(inputs / "pakati_understanding_ref.png", inputs / "pakati_understanding_ref_copy.png")
    learn_id = next(k for k, n in small_prompt("x").items() if n["class_type"] == "PakatiLearnReference")
    save_id = next(k for k, n in small_prompt("x").items() if n["class_type"] == "PakatiSaveImage")

    def text(entry) -> str:
        return entry["outputs"][learn_id]["text"][0]

    bad = small_prompt("pakati_understanding_ref.png")
    bad[learn_id]["inputs"]["strategies"] = "center_out, melting"
    with pytest.raises(PromptRejected) as info:
        comfy_server.queue(bad)
    assert "PakatiLearnReference: input 'strategies': strategies: unknown strategy 'melting'" in json.dumps(info.value.body)

    first = comfy_server.run(small_prompt("pakati_understanding_ref.png"), timeout=600)
    assert text(first).startswith("Pakati understanding (learned;"), text(first)
    assert "center_out" in text(first) and "frequency_bands" in text(first)
    (made,) = comfy_server.images(first, save_id)
    assert made.shape[:2] == (64, 64)
    store = open_store(user_dir=comfy_server.base / "user")
    rows = store.understandings.all()  # the shared server's other tests may have learned other references
    (row,) = [r for r in rows if r["image_hash"][:16] in text(first)]
    assert row["format_version"] == 1

    # the same pixels under another file name: the node runs again and is answered from the store
    second = comfy_server.run(small_prompt("pakati_understanding_ref_copy.png"), timeout=600)
    assert text(second).startswith("Pakati understanding (served from the store;"), text(second)
    assert store.understandings.all() == rows  # served, not written again

    comfy_server.restart()
    third = comfy_server.run(small_prompt("pakati_understanding_ref.png"), timeout=600)
    assert text(third).startswith("Pakati understanding (served from the store;"), text(third)
    assert third["outputs"][learn_id]["images"]


def test_progress_over_strategies_levels_attempts_and_interrupt(comfy, tiny, user_dir):
    import comfy.model_management as mm
    import comfy.utils as cu

    seen = []
    old = cu.PROGRESS_BAR_HOOK
    cu.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total)))
    try:
        node = comfy.NODE_CLASS_MAPPINGS["PakatiLearnReference"]
        node.execute(**learn_inputs(tiny, reference(), strategies="center_out, edge_in", attempts=2, seed=7))
        # 2 strategies x 1 level x 2 attempts x 2 sampler steps, reported per step and per attempt
        assert {t for _, t in seen} == {8} and [v for v, _ in seen] == sorted(v for v, _ in seen)
        assert {2, 4, 6, 8} <= {v for v, _ in seen} and seen[-1] == (8, 8) and len({v for v, _ in seen}) == 8
        mm.interrupt_current_processing(True)
        try:
            with pytest.raises(mm.InterruptProcessingException):
                node.execute(**learn_inputs(tiny, reference(), strategies="center_out", seed=8))
        finally:
            mm.interrupt_current_processing(False)
    finally:
        cu.set_progress_bar_global_hook(old)
