"""Anthropic Messages over the official SDK: image input, structured output forced through one tool's input schema."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .base import ProviderModel
from .errors import MalformedResponseError, ProviderRefusedError
from .images import b64_png, shrink_to
from .judging import ANSWERS_SCHEMA, JUDGE_SYSTEM, check_schema, judge_user_text, parse_answers
from .protocols import Answer

TOOL = "submit"


class _AnthropicTool(ProviderModel):
    provider = "anthropic"

    def _tool_input(self, operation: str, system: str, content: list[dict], schema: dict, prompt: str) -> Any:
        tools = [{"name": TOOL, "description": "Submit the answer in the required structure.", "input_schema": schema}]
        response = self._call(operation, lambda: self.client.messages.create(
            model=self.model, max_tokens=self.settings.max_tokens, system=system,
            messages=[{"role": "user", "content": content}], tools=tools, tool_choice={"type": "tool", "name": TOOL},
        ), cost=self.resolved.spec.cost(), prompt=prompt)
        if getattr(response, "stop_reason", None) == "refusal":
            raise ProviderRefusedError(f"provider anthropic refused to answer (model '{self.model}')", "anthropic")
        for block in getattr(response, "content", None) or []:
            if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == TOOL:
                return block.input
        if getattr(response, "stop_reason", None) == "max_tokens":
            raise MalformedResponseError(f"provider anthropic ran out of tokens before answering (model '{self.model}', "
                                         f"max_tokens {self.settings.max_tokens}: raise providers.anthropic.max_tokens)", "anthropic")
        raise MalformedResponseError(f"provider anthropic answered without the structured output (model '{self.model}')", "anthropic")


class AnthropicVisionJudge(_AnthropicTool):
    """``VisionJudge``: the image and the numbered questions in, the answers through the tool's schema out."""

    kind = "vision"

    def ask(self, image: np.ndarray, questions: Sequence[str]) -> list[Answer]:
        questions = list(questions)
        source = {"type": "base64", "media_type": "image/png", "data": b64_png(shrink_to(image, self.resolved.spec.max_side))}
        content = [{"type": "image", "source": source}, {"type": "text", "text": judge_user_text(questions)}]
        data = self._tool_input("ask", JUDGE_SYSTEM, content, ANSWERS_SCHEMA, judge_user_text(questions))
        return parse_answers(data, questions, "anthropic")


class AnthropicPlanner(_AnthropicTool):
    """``TextPlanner``: the user's schema is the tool's input schema, and the input is validated again here."""

    kind = "text"

    def complete_json(self, system: str, user: str, schema: dict) -> dict:
        data = self._tool_input("complete_json", system, [{"type": "text", "text": user}], schema, user)
        return check_schema(data, schema, "anthropic", "the plan")
