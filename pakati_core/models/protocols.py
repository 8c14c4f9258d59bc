"""The seams of the model layer: what the rest of Pakati may ask of any model.

Orchestration (planner, checker), the nodes and the client code against these protocols only,
never against a provider SDK. Images are float32 ``[H, W, 3]`` arrays in [0, 1]; masks are
float32 ``[H, W]`` arrays in [0, 1] where 1 means "may change".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence, runtime_checkable

import numpy as np

Verdict = Literal["yes", "no", "unsure"]


@dataclass(frozen=True)
class Answer:
    """One judged question: a verdict, a score in [0, 1] (1 = fully met) and the judge's reason."""

    question: str
    verdict: Verdict
    score: float
    reason: str = ""


@dataclass(frozen=True)
class CallRecord:
    """What is kept of one provider call: never a key, prompt text only where the user allows it."""

    provider: str
    model: str
    operation: str
    duration_s: float
    ok: bool
    size: str | None = None
    estimated_cost_usd: float | None = None
    error_kind: str | None = None
    prompt: str | None = None
    extra: dict = field(default_factory=dict)


@runtime_checkable
class ImageBackend(Protocol):
    """Makes and edits whole images (OpenAI Images, the host's SDXL, diffusers)."""

    name: str

    def generate(self, prompt: str, size: tuple[int, int], seed: int | None = None) -> np.ndarray: ...

    def edit(self, image: np.ndarray, mask: np.ndarray, prompt: str) -> np.ndarray: ...


@runtime_checkable
class VisionJudge(Protocol):
    """Answers yes/no/score questions about an image, with reasons (Claude or OpenAI vision)."""

    name: str

    def ask(self, image: np.ndarray, questions: Sequence[str]) -> list[Answer]: ...


@runtime_checkable
class TextPlanner(Protocol):
    """Returns a dict that validates against ``schema`` (forced structured output, never free text)."""

    name: str

    def complete_json(self, system: str, user: str, schema: dict) -> dict: ...


@runtime_checkable
class CallRecorder(Protocol):
    """Where provider calls are recorded (the store implements it; a no-op or a log by default)."""

    def record(self, call: CallRecord) -> None: ...
