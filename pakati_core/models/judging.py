"""What a vision judge is asked and how its structured answer is read, shared by both providers, and the
cache that keeps a judge from being asked the same thing about the same pixels twice."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import jsonschema
import numpy as np

from ..images import to_uint8
from .errors import MalformedResponseError
from .protocols import Answer

JUDGE_SYSTEM = (
    "You judge whether an image meets requirements. For each numbered question answer 'yes', 'no' or 'unsure', "
    "give a score from 0 (not met at all) to 1 (fully met) and one short sentence of reason that cites what is visible. "
    "Answer every question, in order, and judge only what the image shows."
)

ANSWERS_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "answers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "question": {"type": "string"},
                    "verdict": {"type": "string", "enum": ["yes", "no", "unsure"]},
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                    "reason": {"type": "string"},
                },
                "required": ["question", "verdict", "score", "reason"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["answers"],
    "additionalProperties": False,
}


GOAL_QUESTION = "Does the image show this: {goal}?"


def questions_from(text: str, goal: str = "") -> list[str]:
    """The questions to ask a judge: one per non-blank line of ``text``; with none, the goal as one question
    (:data:`GOAL_QUESTION`); with neither, none."""
    qs = [q.strip() for q in text.splitlines() if q.strip()]
    if not qs and goal.strip():
        qs = [GOAL_QUESTION.format(goal=goal.strip())]
    return qs


def judge_user_text(questions: Sequence[str]) -> str:
    return "Questions:\n" + "\n".join(f"{i + 1}. {q}" for i, q in enumerate(questions))


def check_schema(data: object, schema: dict, provider: str, what: str) -> dict:
    """``data`` if it is an object valid against ``schema``; else a ``MalformedResponseError`` saying where."""
    if not isinstance(data, dict):
        raise MalformedResponseError(f"provider {provider} returned {type(data).__name__} instead of a JSON object for {what}", provider)
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as e:
        path = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise MalformedResponseError(
            f"provider {provider} returned {what} that does not match the schema at {path}: {e.message[:200]}", provider
        ) from None
    except jsonschema.SchemaError as e:
        raise MalformedResponseError(
            f"the schema given for {what} is not a valid JSON schema: {e.message[:200]}", provider, field="schema"
        ) from None
    return data


def parse_answers(data: object, questions: Sequence[str], provider: str) -> list[Answer]:
    """One ``Answer`` per question, in order; a count mismatch or a bad field is a malformed response."""
    data = check_schema(data, ANSWERS_SCHEMA, provider, "judge answers")
    items = data["answers"]
    if len(items) != len(questions):
        raise MalformedResponseError(f"provider {provider} answered {len(items)} questions, but {len(questions)} were asked", provider)
    return [Answer(question=q, verdict=a["verdict"], score=float(a["score"]), reason=a["reason"].strip()) for q, a in zip(questions, items)]


JUDGE_CACHE_NAMESPACE = "judge"


def judge_cache_key(image: np.ndarray, questions: Sequence[str], model: str) -> str:
    """SHA-256 over the image's 8-bit pixels and shape, the questions, the model and what it is told (system text, schema)."""
    pixels = to_uint8(image)  # uint8 or float in [0, 1]; NaN/Inf refused (the one NaN policy)
    h = hashlib.sha256()
    for part in (
        str(pixels.shape).encode(),
        pixels.tobytes(),
        json.dumps(list(questions)).encode(),
        model.encode(),
        JUDGE_SYSTEM.encode(),
        json.dumps(ANSWERS_SCHEMA, sort_keys=True).encode(),
    ):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


class CachedJudge:
    """A ``VisionJudge`` that answers a question set it was asked before about the same pixels, with the
    same model, from a ``ResultCache`` (no provider call). Only verdicts, scores and reasons are kept:
    never the image, a key, or the request."""

    def __init__(self, judge: Any, cache: Any):
        from ..cache import BestEffortCache

        self.judge = judge
        self.cache = BestEffortCache(cache)
        self.name = judge.name
        self.hits = 0

    @property
    def model(self) -> str:
        return getattr(self.judge, "model", self.name)

    def ask(self, image: np.ndarray, questions: Sequence[str]) -> list[Answer]:
        questions = list(questions)
        key = judge_cache_key(image, questions, self.name)
        hit = self.cache.cache_get(JUDGE_CACHE_NAMESPACE, key)
        if hit is not None and isinstance(hit[0], list) and len(hit[0]) == len(questions):
            try:
                answers = [
                    Answer(question=q, verdict=a["verdict"], score=float(a["score"]), reason=str(a["reason"]))
                    for q, a in zip(questions, hit[0])
                ]
                self.hits += 1
                return answers
            except (KeyError, TypeError, ValueError):
                pass  # an entry of another shape: ask again
        answers = self.judge.ask(image, questions)
        self.cache.cache_put(
            JUDGE_CACHE_NAMESPACE, key, [{"verdict": a.verdict, "score": float(a.score), "reason": a.reason} for a in answers]
        )
        return answers
