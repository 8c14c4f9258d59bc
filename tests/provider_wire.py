"""The model layer's test transport: the real OpenAI/Anthropic SDK clients over an ``httpx2.MockTransport``.

Shared by the model-layer, planner and cache tests (tests/core/test_models.py, core/test_orch_llm_planner.py,
core/test_store_cache.py): a sentinel key and an isolated provider environment, ``Wire`` (a scripted
transport that keeps every request), ``opts`` (client, retry policy with recorded sleeps, recorder),
a real photograph, and a scripted LLM planner answer for one goal.
"""

from __future__ import annotations

import json
import random

import httpx2  # the SDKs' HTTP library
import numpy as np

from pakati_core.models import ListRecorder
from pakati_core.retry import RetryPolicy

SENTINEL = "sk-pakati-SENTINEL-5f2b9c1e7d3a4b6c8e0f"
FAST = {"version": 1, "providers": {p: {"requests_per_minute": 60000, "burst": 1000} for p in ("openai", "anthropic")}}


def isolate_provider_env(monkeypatch, tmp_path) -> None:
    """No key, endpoint, key file or database from the machine: the sentinel key for both providers,
    the FAST registry and a user directory under ``tmp_path`` (the model-layer tests' environment)."""
    for var in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "PAKATI_API_KEY_OPENAI",
        "PAKATI_API_KEY_ANTHROPIC",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "PAKATI_KEY_FILE",
        "PAKATI_USER_DIR",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_PROFILE",
        "PAKATI_DATABASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    models = tmp_path / "models.json"
    models.write_text(json.dumps(FAST))
    monkeypatch.setenv("PAKATI_MODELS_FILE", str(models))
    monkeypatch.setenv("PAKATI_USER_DIR", str(tmp_path / "user"))


class Wire:
    """A mocked transport answering from a script; keeps every request the SDK sent."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = answer if len(answer) == 3 else (*answer, {})
        return httpx2.Response(status, json=body, headers=headers, request=request)

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))


def opts(wire: Wire, sleeps: list | None = None, recorder=None) -> dict:
    policy = RetryPolicy(max_calls=3, backoff_s=1.0, cap_s=30.0, sleep=(sleeps if sleeps is not None else []).append, rng=random.Random(0))
    return {"http_client": wire.client(), "policy": policy, "recorder": recorder if recorder is not None else ListRecorder()}


def photo(h=96, w=128) -> np.ndarray:
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


# ---------------------------------------------------------------- a scripted LLM planner answer

GOAL = "a black cat on the left of a white pillow"


def answer(cat_box=(0.1, 0.4, 0.4, 0.8), pillow_box=(0.55, 0.45, 0.9, 0.8), cat_phrase="black cat", pillow_phrase="white pillow"):
    """What an LLM planner answers for ``GOAL`` (boxes and phrases can be bent to break the rules)."""
    return {
        "base_prompt": "a black cat and a white pillow, soft light",
        "base_negative": "blurry",
        "background": "living room",
        "objects": [
            {"id": "cat", "noun": "cat", "phrase": cat_phrase, "attributes": [{"kind": "colour", "value": "black"}], "box": list(cat_box)},
            {
                "id": "pillow",
                "noun": "pillow",
                "phrase": pillow_phrase,
                "attributes": [{"kind": "colour", "value": "white"}],
                "box": list(pillow_box),
            },
        ],
        "relations": [{"subject": "cat", "relation": "left_of", "object": "pillow"}],
    }
