"""Helpers of the store's host and browser tests: small API prompts and requests made as a given user."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import skimage.data
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
CANVAS = {
    "version": 1,
    "width": 128,
    "height": 128,
    "regions": [{"id": "r1", "name": "subject", "shape": "rect", "points": [[32, 32], [96, 96]], "prompt": "an astronaut"}],
}


def refine_prompt(seed: int) -> dict:
    """The shipped reference_refine twin with the tiny model, one pass of one step, and only the history previewed."""
    prompt = json.loads((REPO / "workflows" / "api" / "reference_refine.json").read_text())
    prompt = {k: n for k, n in prompt.items() if n["class_type"] not in ("SaveImage", "PakatiDeltaAnalysis")}
    for n in prompt.values():
        if n["class_type"] == "CheckpointLoaderSimple":
            n["class_type"], n["inputs"] = "PakatiTestTinySDXL", {"seed": 0, "model_channels": 32}
        if n["class_type"] == "PakatiRefine":
            n["inputs"].update(steps=1, max_passes=1, learn=False, seed=seed)
    return prompt


def put_inputs(base: Path) -> None:
    inp = base / "input"
    inp.mkdir(parents=True, exist_ok=True)
    ref = cv2.resize(skimage.data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    Image.fromarray(cv2.GaussianBlur(ref, (0, 0), 1.5)).save(inp / "pakati_refine_input.png")
    Image.fromarray(ref).save(inp / "pakati_reference.png")


def call(server, method: str, path: str, body=None, user: str | None = None):
    """(status, JSON body) of a request to the server, as the front end makes it (comfy-user header)."""
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["comfy-user"] = user
    req = urllib.request.Request(
        server.url + path, method=method, headers=headers, data=json.dumps(body).encode() if body is not None else None
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def queue_as(server, prompt: dict, user: str | None) -> str:
    status, body = call(server, "POST", "/prompt", {"prompt": prompt, "client_id": server.client_id}, user)
    assert status == 200, body
    return body["prompt_id"]


def template_prompt(name: str) -> dict:
    return {
        "1": {"class_type": "PakatiCanvas", "inputs": {"width": 128, "height": 128, "regions": json.dumps(CANVAS)}},
        "2": {
            "class_type": "PakatiSaveTemplate",
            "inputs": {"canvas": ["1", 0], "name": name, "description": "", "settings": "", "export_json": False},
        },
    }


def regional_prompt(seed: int, steps: int = 2, size: int = 128) -> dict:
    """The shipped regional_sdxl twin (it saves with PakatiSaveImage) with the tiny model, a small latent and a few steps."""
    prompt = json.loads((REPO / "workflows" / "api" / "regional_sdxl.json").read_text())
    for n in prompt.values():
        if n["class_type"] == "CheckpointLoaderSimple":
            n["class_type"], n["inputs"] = "PakatiTestTinySDXL", {"seed": 0, "model_channels": 32}
        if n["class_type"] in ("PakatiCanvas", "EmptyLatentImage"):
            n["inputs"].update(width=size, height=size)
        if n["class_type"] == "KSampler":
            n["inputs"].update(seed=seed, steps=steps)
    return prompt


def node_of(prompt: dict, class_type: str) -> str:
    (node_id,) = [k for k, n in prompt.items() if n["class_type"] == class_type]
    return node_id
