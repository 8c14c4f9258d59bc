"""What Pakati Save Image keeps about a generation, read from ComfyUI's API-format prompt
(``pakati_core.store.from_prompt``): the shipped templates' twins, the branch that made the image
when a graph samples twice, settings one link away (SamplerCustomAdvanced), nothing key-shaped."""

from __future__ import annotations

import json
from pathlib import Path

from pakati_core.store.from_prompt import generation_fields, looks_secret, upstream

API = Path(__file__).resolve().parents[2] / "workflows" / "api"


def twin(name: str) -> dict:
    return json.loads((API / f"{name}.json").read_text())


def save_node(prompt: dict) -> str:
    (node_id,) = [k for k, n in prompt.items() if n["class_type"] == "PakatiSaveImage"]
    return node_id


def test_the_regional_template_gives_canvas_prompts_seed_and_sampler_settings():
    prompt = twin("regional_sdxl")
    f = generation_fields(prompt, save_node(prompt))
    canvas = json.loads(prompt["2"]["inputs"]["regions"])
    assert f["canvas"] == canvas and [r["id"] for r in f["prompts"]["regions"]] == ["sky", "towers", "market"]
    assert f["prompts"]["regions"][2]["negative"] == "empty street"
    assert (
        f["prompts"]["base"] == prompt["3"]["inputs"]["base_prompt"]
        and f["prompts"]["base_negative"] == prompt["3"]["inputs"]["base_negative"]
    )
    assert f["seeds"] == [123456]
    assert f["params"] == {
        "class_type": "KSampler",
        "steps": 30,
        "cfg": 6.0,
        "sampler_name": "dpmpp_2m",
        "scheduler": "karras",
        "denoise": 1.0,
    }
    assert f["model_name"] == "sd_xl_base_1.0.safetensors" and f["parent_hint"] is None


def test_only_the_branch_that_made_the_image_counts():
    prompt = twin("attention_mask_edit")
    saves = [k for k, n in prompt.items() if n["class_type"] in ("SaveImage", "PakatiSaveImage")]
    by_sampler = {}
    for k in saves:
        samplers = [i for i in upstream(prompt, k) if prompt[i]["class_type"] == "KSampler"]
        by_sampler[k] = sorted(samplers)
    final = max(saves, key=lambda k: len(by_sampler[k]))
    f = generation_fields(prompt, final)
    assert len(f["params"]["samplers"]) == 2, "the edit pass and the first pass both made the final image"
    nearest = f["params"]["samplers"][0]["node"]
    assert upstream(prompt, final)[nearest] < upstream(prompt, final)[f["params"]["samplers"][1]["node"]]
    assert f["params"]["steps"] == prompt[nearest]["inputs"]["steps"]
    assert f["prompts"]["positive"] == prompt[prompt[nearest]["inputs"]["positive"][0]]["inputs"]["text"]


def test_settings_one_link_away_and_no_key_shaped_text():
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a lighthouse, api key sk-abcdefghijklmnop1234"}},
        "3": {"class_type": "RandomNoise", "inputs": {"noise_seed": 77}},
        "4": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
        "5": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": 12, "denoise": 0.8}},
        "6": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0], "cfg": 4.5}},
        "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "8": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {"noise": ["3", 0], "guider": ["6", 0], "sampler": ["4", 0], "sigmas": ["5", 0], "latent_image": ["7", 0]},
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "PakatiSaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "x"}},
        "11": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 99}},  # not upstream of node 10
    }
    f = generation_fields(prompt, "10")
    assert f["seeds"] == [77]
    assert f["params"] == {
        "class_type": "SamplerCustomAdvanced",
        "steps": 12,
        "cfg": 4.5,
        "sampler_name": "euler_ancestral",
        "scheduler": "simple",
        "denoise": 0.8,
    }
    assert f["canvas"] is None and f["model_name"] == "m.safetensors"
    assert "sk-abcdefghijklmnop1234" not in json.dumps(f) and looks_secret("Bearer abcdefghijk123") and not looks_secret("a sky")


def test_the_parent_run_is_the_one_the_sidebar_loaded_into_the_canvas():
    prompt = twin("regional_sdxl")
    workflow = {
        "nodes": [
            {"id": 2, "type": "PakatiCanvas", "properties": {"pakati_run": 41}},
            {"id": 99, "type": "PakatiCanvas", "properties": {"pakati_run": 7}},
        ]
    }  # 99 is not in the prompt
    assert generation_fields(prompt, save_node(prompt), workflow)["parent_hint"] == 41
    workflow["nodes"][0]["properties"] = {"pakati_run": "41"}
    assert generation_fields(prompt, save_node(prompt), workflow)["parent_hint"] is None
