"""The client's pure parts: workflow substitution, seed lists, errors, an unreachable server."""

from __future__ import annotations

import json
import pickle
import socket
from pathlib import Path

import pytest

from pakati_core import Canvas
from pakati_core.client import (
    ComfyClient,
    ExecutionError,
    MissingNodeTypeError,
    PromptRejectedError,
    ServerUnavailableError,
    Workflow,
    WorkflowError,
    make_tasks,
    parse_seeds,
)

REPO = Path(__file__).resolve().parents[2]
REGIONAL = REPO / "workflows" / "api" / "regional_sdxl.json"


def small_canvas() -> Canvas:
    return Canvas.from_dict(
        {
            "version": 1,
            "width": 128,
            "height": 96,
            "regions": [
                {"id": "a", "shape": "rect", "points": [[0, 0], [64, 96]], "prompt": "a red door"},
                {"id": "b", "shape": "polygon", "points": [[64, 0], [128, 0], [128, 96]], "prompt": "a blue sky"},
            ],
        }
    )


def test_render_substitutes_only_pakati_inputs_and_seeds():
    wf = Workflow.load(REGIONAL)
    before = json.loads(json.dumps(wf.prompt))
    p = wf.render(canvas=small_canvas(), prompt="a harbour", negative="fog", seed=17)
    assert json.loads(p["2"]["inputs"]["regions"]) == small_canvas().to_dict()
    assert (p["2"]["inputs"]["width"], p["2"]["inputs"]["height"]) == (128, 96)
    assert (p["5"]["inputs"]["width"], p["5"]["inputs"]["height"]) == (128, 96)  # the empty latent follows the canvas
    assert p["3"]["inputs"]["base_prompt"] == "a harbour" and p["3"]["inputs"]["base_negative"] == "fog"
    assert p["6"]["inputs"]["seed"] == 17
    assert p["1"] == before["1"], "the user's loader is untouched"
    for nid in ("4", "7", "8", "9"):
        assert p[nid] == before[nid]
    assert wf.prompt == before, "render does not change the workflow"


def test_seed_reaches_every_sampler_but_no_loader_seed():
    prompt = {
        "1": {"class_type": "PakatiTestTinySDXL", "inputs": {"seed": 3, "model_channels": 32}},
        "2": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": 0, "model": ["1", 0]}},
        "3": {"class_type": "PrimitiveInt", "inputs": {"value": 0}},
        "4": {"class_type": "KSampler", "inputs": {"seed": ["3", 0], "model": ["1", 0]}},
        "5": {"class_type": "PakatiCropRegion", "inputs": {"seed": 0}},
        "6": {"class_type": "KSampler", "inputs": {"seed": ["5", 4]}},
        "7": {"class_type": "SomeSeedMath", "inputs": {"a": ["3", 0]}},
        "8": {"class_type": "KSampler", "inputs": {"seed": ["7", 0]}},
    }
    p = Workflow(prompt).render(seed=9)
    assert p["1"]["inputs"]["seed"] == 3
    assert p["2"]["inputs"]["noise_seed"] == 9
    assert p["3"]["inputs"]["value"] == 9, "a primitive wired to a sampler's seed takes the seed"
    assert p["5"]["inputs"]["seed"] == 9 and p["6"]["inputs"]["seed"] == ["5", 4], "PakatiCropRegion's seed input"
    assert p["7"]["inputs"] == {"a": ["3", 0]} and p["8"]["inputs"]["seed"] == ["7", 0], "a computed seed is left alone"


def test_images_overrides_and_titles():
    wf = Workflow.load(REPO / "workflows" / "api" / "region_regenerate.json")
    (load,) = wf.image_nodes
    p = wf.render(images={"*": "pakati/x.png"}, overrides={load: {"upload": "image"}})
    assert p[load]["inputs"]["image"] == "pakati/x.png"
    tasks = make_tasks(wf, [1, 2], images={"*": b"\x89PNG..."})
    assert [t.meta["seed"] for t in tasks] == [1, 2] and all(t.images == {load: b"\x89PNG..."} for t in tasks)
    with pytest.raises(WorkflowError, match="no node with id or title 'nope'"):
        wf.render(overrides={"nope": {"x": 1}})


def test_bad_workflows_and_inputs_are_named():
    with pytest.raises(WorkflowError, match="UI-format workflow"):
        Workflow({"nodes": [], "links": [], "version": 0.4})
    with pytest.raises(WorkflowError, match="node 1 has no class_type"):
        Workflow({"1": {"inputs": {}}})
    wf = Workflow.load(REGIONAL)
    with pytest.raises(Exception, match=r"regions\[0\]\.points"):
        wf.render(
            canvas={"version": 1, "width": 64, "height": 64, "regions": [{"id": "a", "shape": "polygon", "points": [[0, 0], [1, 1]]}]}
        )
    no_canvas = Workflow({"1": {"class_type": "KSampler", "inputs": {"seed": 0}}})
    with pytest.raises(WorkflowError, match="no PakatiCanvas node"):
        no_canvas.render(canvas=small_canvas())
    with pytest.raises(WorkflowError, match="no sampler seed"):
        Workflow({"1": {"class_type": "SaveImage", "inputs": {}}}).render(seed=1)
    with pytest.raises(WorkflowError, match="non-negative"):
        wf.render(seed=-1)


def test_parse_seeds():
    assert parse_seeds("0-7") == list(range(8))
    assert parse_seeds("3, 1,5-6,1") == [3, 1, 5, 6]
    for bad in ("7-3", "a", "", "1-x"):
        with pytest.raises(WorkflowError, match="bad seed list"):
            parse_seeds(bad)


def test_errors_survive_pickling_with_their_fields():
    errs = [
        ExecutionError("http://h:1", "pid", "6", "KSampler", "out of memory", "RuntimeError"),
        MissingNodeTypeError("http://h:1", {"PakatiCanvas": ["2"]}),
        PromptRejectedError(
            "http://h:1",
            {"message": "Prompt outputs failed validation"},
            {"2": {"class_type": "PakatiCanvas", "errors": [{"message": "bad", "details": "x", "extra_info": {"input_name": "regions"}}]}},
        ),
        ServerUnavailableError("gone", "http://h:1"),
    ]
    for e in errs:
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e) and back.__dict__ == e.__dict__
    assert "node 6 (KSampler) failed: RuntimeError: out of memory" in str(errs[0])
    assert "node 2 (PakatiCanvas) input 'regions': bad x" in str(errs[2])


def test_unreachable_server_is_reported_after_retries():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ComfyClient(f"127.0.0.1:{port}", timeout=2, retries=2, backoff=0.01)
    with pytest.raises(ServerUnavailableError, match=r"failed after 3 tries \(ConnectionError\)"):
        client.system_stats()
    assert not client.alive()


def test_region_workflow_is_the_users_workflow_redrawing_one_region():
    """run-goal's region-only prompt: the user's loader, conditioning, sampler settings and VAE, sampling a crop."""
    from pakati_core.client.region_round import CROP, ENCODE, LOAD, NOISE_MASK, SAVE, STITCH, region_workflow

    wf = Workflow.load(REPO / "workflows" / "api" / "regional_sdxl.json")
    canvas = wf.canvas()
    region = canvas["regions"][1]["id"]
    out = region_workflow(
        wf, canvas=canvas, region=region, prompt="base", negative="neg", seed=7, denoise=0.55, grow=8, feather=16.0, context=32,
        crop_mode="keep",
    )  # fmt: skip
    ks = out["6"]["inputs"]
    assert out["1"] == wf.prompt["1"], "the user's loader is kept"
    assert (ks["seed"], ks["denoise"], ks["steps"], ks["sampler_name"]) == (7, 0.55, 30, "dpmpp_2m")
    assert ks["latent_image"] == [NOISE_MASK, 0] and ks["model"] == ["4", 0] and ks["positive"] == ["3", 1]
    assert out["3"]["inputs"]["canvas"] == [CROP, 3] and out["3"]["inputs"]["base_prompt"] == "base"
    assert out[CROP]["inputs"]["region"] == region and out[CROP]["inputs"]["image"] == [LOAD, 0]
    assert out[CROP]["inputs"]["canvas"] == ["2", 0] and out[ENCODE]["inputs"]["vae"] == ["1", 2]
    assert out[STITCH]["inputs"]["image"] == ["7", 0] and out[SAVE]["inputs"]["images"] == [STITCH, 0]
    assert "8" not in out and "9" not in out, "the whole render's save and preview are left out"
    two = Workflow({**wf.prompt, "99": {"class_type": "KSampler", "inputs": dict(wf.prompt["6"]["inputs"])}}, name="two.json")
    with pytest.raises(WorkflowError, match="exactly one KSampler"):
        region_workflow(
            two, canvas=canvas, region=region, prompt=None, negative=None, seed=0, denoise=1.0, grow=0, feather=0.0, context=0,
            crop_mode="keep",
        )  # fmt: skip
