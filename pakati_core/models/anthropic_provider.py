"""Anthropic Messages over the official SDK: image input, JSON answers through structured outputs.

Structured output is ``output_config={"format": {"type": "json_schema", "schema": ...}}``: the
answer comes back as text holding JSON. Forcing one tool (``tool_choice``) is refused by the
current models (Claude Sonnet 5.5, Opus 5.5), and no sampling parameter is sent (Sonnet 5 and
later reject non-default ones). The API accepts only a subset of JSON Schema (every object closed
with ``additionalProperties: false``; no numeric ranges, string lengths or ``maxItems``), so the
schema is sent through the SDK's own ``transform_schema`` (which moves unsupported keywords into
the description) and the answer is validated against the caller's original schema.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..images import shrink_to
from .base import ProviderModel
from .errors import MalformedResponseError, ProviderRefusedError, ProviderRequestError
from .images import b64_png
from .judging import ANSWERS_SCHEMA, JUDGE_SYSTEM, check_schema, judge_user_text, parse_answers
from .protocols import Answer


class _AnthropicJSON(ProviderModel):
    provider = "anthropic"

    def _wire_schema(self, schema: dict, what: str) -> dict:
        """``schema`` in the subset the API accepts (the SDK's transform); a schema it cannot take fails before any call."""
        transform = getattr(self.sdk, "transform_schema", None)
        if transform is None:
            raise ProviderRequestError(
                "the installed anthropic package has no structured-output support (transform_schema); "
                "upgrade it with: pip install -U anthropic",
                "anthropic",
                field="provider",
            )
        try:
            return transform(schema)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ProviderRequestError(
                f"the schema for {what} cannot be sent to provider anthropic (model '{self.model}'): {e}", "anthropic", field="schema"
            ) from None

    def _json(self, operation: str, system: str, content: list[dict], schema: dict, what: str, prompt: str) -> Any:
        """The JSON object the model wrote in its text block(s), or the typed error that says why there is none."""
        fmt = {"type": "json_schema", "schema": self._wire_schema(schema, what)}
        response = self._call(
            operation,
            lambda: self.client.messages.create(
                model=self.model,
                max_tokens=self.settings.max_tokens,
                system=system,
                messages=[{"role": "user", "content": content}],
                output_config={"format": fmt},
            ),
            cost=self.resolved.spec.cost(),
            prompt=prompt,
        )
        stop = getattr(response, "stop_reason", None)
        if stop == "refusal":
            raise ProviderRefusedError(f"provider anthropic refused to answer (model '{self.model}')", "anthropic")
        if stop == "max_tokens":
            raise MalformedResponseError(
                f"provider anthropic ran out of tokens before finishing {what} (model '{self.model}', "
                f"max_tokens {self.settings.max_tokens}: raise providers.anthropic.max_tokens)",
                "anthropic",
            )
        # thinking blocks may come first (adaptive thinking is on by default on current models): read text blocks only
        text = "".join(getattr(b, "text", "") or "" for b in getattr(response, "content", None) or [] if getattr(b, "type", None) == "text")
        return self._json_answer(text, what, f"stop reason {stop!r}")


class AnthropicVisionJudge(_AnthropicJSON):
    """``VisionJudge``: the image and the numbered questions in, the answers as schema-checked JSON out."""

    kind = "vision"

    def ask(self, image: np.ndarray, questions: Sequence[str]) -> list[Answer]:
        questions = list(questions)
        source = {"type": "base64", "media_type": "image/png", "data": b64_png(shrink_to(image, self.resolved.spec.max_side))}
        content = [{"type": "image", "source": source}, {"type": "text", "text": judge_user_text(questions)}]
        data = self._json("ask", JUDGE_SYSTEM, content, ANSWERS_SCHEMA, "judge answers", judge_user_text(questions))
        return self._checked(lambda: parse_answers(data, questions, "anthropic"))


class AnthropicPlanner(_AnthropicJSON):
    """``TextPlanner``: the caller's schema (in the API's subset) constrains the answer, which is validated against the original."""

    kind = "text"

    def complete_json(self, system: str, user: str, schema: dict) -> dict:
        data = self._json("complete_json", system, [{"type": "text", "text": user}], schema, "the plan", user)
        return self._checked(lambda: check_schema(data, schema, "anthropic", "the plan"))
