"""What a vision judge is asked and how its structured answer is read, shared by both providers."""
from __future__ import annotations

from typing import Sequence

import jsonschema

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
        raise MalformedResponseError(f"provider {provider} returned {what} that does not match the schema at {path}: {e.message[:200]}",
                                     provider) from None
    except jsonschema.SchemaError as e:
        raise MalformedResponseError(f"the schema given for {what} is not a valid JSON schema: {e.message[:200]}", provider,
                                     field="schema") from None
    return data


def parse_answers(data: object, questions: Sequence[str], provider: str) -> list[Answer]:
    """One ``Answer`` per question, in order; a count mismatch or a bad field is a malformed response."""
    data = check_schema(data, ANSWERS_SCHEMA, provider, "judge answers")
    items = data["answers"]
    if len(items) != len(questions):
        raise MalformedResponseError(f"provider {provider} answered {len(items)} questions, but {len(questions)} were asked", provider)
    return [Answer(question=q, verdict=a["verdict"], score=float(a["score"]), reason=a["reason"].strip()) for q, a in zip(questions, items)]
