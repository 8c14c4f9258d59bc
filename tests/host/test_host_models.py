"""The model nodes in the real ComfyUI: in process against a local fake endpoint, and on the real server.

The SDK is pointed at ``tests/model_fakes.FakeImagesServer`` through its own ``OPENAI_BASE_URL``
variable; the fake paints the *whole* picture, so the only reason pixels outside the region
survive is Pakati's paste. The server run also scans everything the server wrote or served
for the sentinel key.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from comfy_client import ExecutionFailed, PromptRejected
from model_fakes import SENTINEL_KEY, key_leaks
from pakati_core.canvas import Canvas
from pakati_core.regenerate import blend_mask, regeneration_mask
from pakati_core.store import open_store

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
RED = np.array([230, 20, 30], np.float32) / 255.0
MODEL_NODES = ("PakatiOpenAIGenerate", "PakatiOpenAIEditRegion", "PakatiAskVision")


def photo(w=160, h=120) -> np.ndarray:
    return cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)


@pytest.fixture
def provider_env(monkeypatch, fake_openai, tmp_path):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PAKATI_API_KEY_OPENAI", "PAKATI_API_KEY_ANTHROPIC", "PAKATI_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_openai.url.removesuffix("/v1"))
    monkeypatch.setenv("PAKATI_MODELS_FILE", str(tmp_path / "none.json"))
    return fake_openai


def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


def test_model_nodes_are_registered_with_tooltips(comfy):
    for name in MODEL_NODES:
        schema = node(comfy, name).define_schema()
        assert schema.category == "Pakati/models"
        assert all(i.tooltip for i in schema.inputs), name
        assert not any("key" in i.id.lower() for i in schema.inputs), f"{name} must offer a credential name, never a key field"


def test_queue_time_checks_name_node_input_and_variable(comfy, monkeypatch, tmp_path):
    for var in ("OPENAI_API_KEY", "PAKATI_API_KEY_OPENAI", "ANTHROPIC_API_KEY", "PAKATI_API_KEY_ANTHROPIC", "PAKATI_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PAKATI_USER_DIR", str(tmp_path))
    msg = node(comfy, "PakatiOpenAIEditRegion").validate_inputs(model="", credential="default", prompt="a hat")
    assert msg.startswith("PakatiOpenAIEditRegion: input 'credential': no key for provider openai") and "OPENAI_API_KEY" in msg
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    assert node(comfy, "PakatiOpenAIEditRegion").validate_inputs(model="", credential="default", prompt="a hat") is True
    msg = node(comfy, "PakatiOpenAIGenerate").validate_inputs(model="dall-e-2", credential="default", prompt="x")
    assert "input 'model'" in msg and "PakatiOpenAIGenerate input 'model'" in msg and "retired" in msg
    msg = node(comfy, "PakatiAskVision").validate_inputs(questions="", goal="", provider="anthropic", model="", credential="default")
    assert "input 'questions'" in msg


def test_without_the_sdk_only_these_nodes_say_so_at_queue_time(comfy, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    monkeypatch.setitem(sys.modules, "openai", None)  # what an environment without the package looks like to an import
    msg = node(comfy, "PakatiOpenAIGenerate").validate_inputs(model="", credential="default", prompt="x")
    assert msg == "PakatiOpenAIGenerate: the optional package 'openai' is not installed; install it with: pip install openai"
    assert node(comfy, "PakatiCanvas") is not None  # the rest of the pack is loaded regardless
    with pytest.raises(ValueError, match="pip install openai"):
        node(comfy, "PakatiOpenAIGenerate").execute(prompt="x", width=64, height=64, model="", quality="auto", seed=0, credential="default")


def test_edit_region_node_changes_only_the_region(comfy, provider_env):
    img = photo()
    image = torch.from_numpy(img.astype(np.float32) / 255.0)[None]
    mask = np.zeros((120, 160), np.float32)
    cv2.ellipse(mask, (70, 50), (22, 16), 0, 0, 360, 1.0, -1)
    out, blend, info = (
        node(comfy, "PakatiOpenAIEditRegion")
        .execute(
            image=image,
            prompt="a red helmet",
            model="",
            quality="low",
            grow=4,
            feather=6.0,
            context=16,
            credential="default",
            mask=torch.from_numpy(mask)[None],
        )
        .result
    )
    got, src = out[0].numpy(), image[0].numpy()
    expected_blend = blend_mask(mask, 4, 6.0)
    assert np.array_equal(blend[0].numpy(), expected_blend)
    assert np.array_equal(got[expected_blend == 0], src[expected_blend == 0])
    assert np.allclose(got[mask >= 1], RED, atol=1 / 255)
    meta = json.loads(info)
    assert meta["sent_size"] in ([1024, 1024], [1536, 1024], [1024, 1536]) and "resized" in meta["size_handling"][0]
    req = provider_env.requests[-1]
    assert req["path"].endswith("/images/edits") and req["image_shape"][:2] == req["mask_shape"][:2]


def test_generate_and_ask_vision_nodes(comfy, provider_env, tmp_path):
    import folder_paths

    old_user_dir = folder_paths.get_user_directory()
    folder_paths.set_user_directory(str(tmp_path / "user"))
    try:
        _generate_and_ask(comfy)
    finally:
        folder_paths.set_user_directory(old_user_dir)
    asks = [r for r in provider_env.requests if r["path"].endswith(("/messages", "/chat/completions"))][-2:]
    assert [(r["model"], r["format"], r["forced_tool"], r["sampling"]) for r in asks] == [  # the shipped defaults, structured output
        ("claude-sonnet-5-5", "json_schema", False, []),
        ("gpt-6.2-sol", "json_schema", False, []),
    ]
    calls = open_store(user_dir=tmp_path / "user").calls.recent()  # every provider call kept, newest first, no prompt, no key
    assert [(c["provider"], c["ok"]) for c in reversed(calls)] == [("openai", True), ("anthropic", True), ("openai", True)]
    assert all(c["prompt"] is None and SENTINEL_KEY not in json.dumps(c) for c in calls)


def _generate_and_ask(comfy):
    out, info = (
        node(comfy, "PakatiOpenAIGenerate")
        .execute(prompt="a red wall", width=640, height=480, model="", quality="auto", seed=1, credential="default")
        .result
    )
    assert out.shape == (1, 480, 640, 3) and torch.isfinite(out).all()
    notes = json.loads(info)["notes"]
    assert any("640x480 is not a size" in n for n in notes) and any("takes no seed" in n for n in notes)
    answers, score = (
        node(comfy, "PakatiAskVision")
        .execute(image=out, questions="Is the wall red?\nIs it a wall?", goal="", provider="anthropic", model="", credential="default")
        .result
    )
    parsed = json.loads(answers)
    assert score == pytest.approx(0.75) and [a["question"] for a in parsed["frames"][0]["answers"]] == ["Is the wall red?", "Is it a wall?"]
    answers, score = (
        node(comfy, "PakatiAskVision")
        .execute(image=out, questions="", goal="a red wall", provider="openai", model="", credential="default")
        .result
    )
    assert json.loads(answers)["frames"][0]["answers"][0]["question"] == "Does the image show this: a red wall?"


def canvas_json(w=160, h=120) -> str:
    return json.dumps(
        {
            "version": 1,
            "width": w,
            "height": h,
            "regions": [
                {
                    "id": "hat",
                    "name": "helmet",
                    "shape": "polygon",
                    "points": [
                        [92, 50],
                        [89, 58],
                        [81, 64],
                        [70, 66],
                        [59, 64],
                        [51, 58],
                        [48, 50],
                        [51, 42],
                        [59, 36],
                        [70, 34],
                        [81, 36],
                        [89, 42],
                    ],
                    "prompt": "a red helmet",
                }
            ],
        }
    )


def edit_prompt(image_name: str, prompt_text: str, regions: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "PakatiCanvas", "inputs": {"width": 160, "height": 120, "regions": regions}},
        "3": {
            "class_type": "PakatiOpenAIEditRegion",
            "inputs": {
                "image": ["1", 0],
                "prompt": prompt_text,
                "model": "",
                "quality": "low",
                "grow": 4,
                "feather": 6.0,
                "context": 16,
                "credential": "default",
                "canvas": ["2", 0],
                "region": "helmet",
            },
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "pakati_openai_edit"}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 2]}},
    }


def test_server_edit_is_bit_identical_outside_the_band_and_the_key_appears_nowhere(provider_comfy_server, fake_openai):
    server = provider_comfy_server
    src = photo()
    (server.base / "input").mkdir(parents=True, exist_ok=True)
    Image.fromarray(src).save(server.base / "input" / "openai_edit_src.png")
    regions = canvas_json()
    ui_workflow = json.loads((REPO / "workflows" / "openai_region_edit.json").read_text())
    api = edit_prompt("openai_edit_src.png", "a red helmet [wrong-size]", regions)
    entry = server.wait(server.queue(api, extra_data={"extra_pnginfo": {"workflow": ui_workflow}}))
    (saved,) = server.images(entry, "4")
    mask, keep = regeneration_mask(Canvas.from_json(regions), "helmet", 160, 120)
    band = blend_mask(mask, 4, 6.0)
    assert np.array_equal(saved[band == 0], src[band == 0]), "pixels outside mask + feather band changed"
    assert np.abs(saved[mask >= 1].astype(int) - (RED * 255).round().astype(int)).max() <= 1
    info = json.loads(entry["outputs"]["5"]["text"][0])
    assert any("instead of the" in n for n in info["size_handling"]), info  # the fake answered at a wrong size: resized, no crash

    # a provider answer that echoes the key (as OpenAI's 401 does): the failure names provider and credential, never the key
    failed = edit_prompt("openai_edit_src.png", "a red helmet [401]", regions)
    with pytest.raises(ExecutionFailed) as e:
        server.run(failed)
    error_text = json.dumps(e.value.status)
    assert "key rejected for provider openai (credential name 'default')" in error_text and "PakatiOpenAIEditRegion" in error_text

    # queue-time rejection of a named credential that has no key
    bad = edit_prompt("openai_edit_src.png", "x", regions)
    bad["3"]["inputs"]["credential"] = "team"
    with pytest.raises(PromptRejected) as rejected:
        server.queue(bad)
    assert "PAKATI_API_KEY_OPENAI_TEAM" in json.dumps(rejected.value.body)
    calls = open_store(user_dir=server.base / "user").calls.recent()  # the server's database has both calls
    assert calls[0]["provider"] == "openai" and calls[0]["ok"] is False and calls[0]["error_kind"] and calls[1]["ok"] is True

    assert any(SENTINEL_KEY in h for h in fake_openai.auth_headers), "the sentinel key never reached the provider"
    png = Image.open(
        io.BytesIO(server.get_bytes(f"/view?filename={entry['outputs']['4']['images'][0]['filename']}&type=output&subfolder="))
    )
    leaks = key_leaks(
        server,
        {
            "API prompt": json.dumps(api),
            "saved workflow": json.dumps(ui_workflow),
            "PNG metadata": json.dumps(dict(png.text)),
            "exception text": error_text + json.dumps(rejected.value.body),
            "report": json.dumps(info),
        },
    )
    assert not leaks, f"the key (or a fragment of it) appears in: {leaks}"
    assert "workflow" in png.text and "prompt" in png.text


def _queued(server) -> set[str]:
    """Prompt ids in the server's queue, running or pending."""
    queue = server.get_json("/queue")
    return {item[1] for item in queue.get("queue_running", []) + queue.get("queue_pending", [])}


@pytest.mark.browser
def test_front_end_queue_and_save_carry_no_key(provider_comfy_server, fake_openai):
    """The template queued by the real front end (its own graphToPrompt and queue path): output made, key nowhere."""
    from browser import FrontEnd, require_browser

    require_browser()
    server = provider_comfy_server
    (server.base / "input").mkdir(parents=True, exist_ok=True)
    Image.fromarray(cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)).save(server.base / "input" / "example.png")
    before = set(server.get_json("/history")) | _queued(server)
    template = json.loads((REPO / "workflows" / "openai_region_edit.json").read_text())
    front = FrontEnd(server.url)
    try:
        front.open()
        front.watch()
        front.load_workflow(template)
        front.js("async () => { await app.queuePrompt(0, 1); }")
        prompt_id = None
        for _ in range(240):  # queued (running or pending) or already finished: the front end's queue reached the server
            new = (_queued(server) | set(server.get_json("/history"))) - before
            if new:
                prompt_id = new.pop()
                break
            front.page.wait_for_timeout(250)
        assert prompt_id, f"the front end's queue reached neither the server's queue nor its history; front-end errors: {front.errors}"
        entry = server.wait(prompt_id)
        saved_workflow = front.js("() => JSON.stringify(app.graph.serialize())")
        api_prompt = front.js("async () => JSON.stringify(await app.graphToPrompt())")
        assert not front.errors, front.errors
    finally:
        front.close()
    (saved,) = server.images(entry, "4")
    assert saved.shape[:2] == (256, 256)
    texts = [saved_workflow, api_prompt, json.dumps(server.get_json("/history")), json.dumps(server.get_json("/queue")), server.log()]
    texts += [p.read_bytes().decode("latin-1") for p in server.base.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000]
    assert not [t[:200] for t in texts if SENTINEL_KEY in t or SENTINEL_KEY[-8:] in t]
    assert any(SENTINEL_KEY in h for h in fake_openai.auth_headers)
