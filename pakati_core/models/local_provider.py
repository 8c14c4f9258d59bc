"""Local LLMs as planners and judges: any OpenAI-compatible chat endpoint a user runs on their own machine
(Ollama, llama.cpp's server, vLLM, LM Studio), over the official ``openai`` SDK.

The endpoint is ``PAKATI_LOCAL_LLM_URL`` (e.g. ``http://127.0.0.1:11434/v1``) or ``base_url=``; the model is
the ``model`` argument or ``PAKATI_LOCAL_LLM_MODEL``; no key is needed (``PAKATI_LOCAL_LLM_KEY`` is sent when
a server wants one). Structured output: a ``json_schema`` response format first; a server that rejects it
(4xx) or answers without valid JSON is asked again in JSON mode (``json_object``, the schema in the system
prompt); an answer that is not valid JSON for the schema is repaired at most twice, quoting what was wrong.
JSON inside prose or a fenced block is read out of it. Every call goes through the same call context as the
cloud providers (token bucket, retries, one call record each).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ..images import shrink_to
from ..retry import RetryPolicy
from .base import ProviderModel, import_sdk
from .calls import CallContext
from .errors import MalformedResponseError, ModelConfigError, ProviderRefusedError, ProviderRequestError
from .images import b64_png
from .judging import ANSWERS_SCHEMA, JUDGE_SYSTEM, check_schema, judge_user_text, parse_answers
from .protocols import Answer, CallRecorder
from .recording import LoggingRecorder
from .registry import ModelSpec, Registry, Resolved, default_registry

URL_ENV, MODEL_ENV, KEY_ENV = "PAKATI_LOCAL_LLM_URL", "PAKATI_LOCAL_LLM_MODEL", "PAKATI_LOCAL_LLM_KEY"
MAX_REPAIRS = 2
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def local_endpoint(base_url: str | None = None) -> str:
    """The endpoint URL (argument, else ``PAKATI_LOCAL_LLM_URL``), checked to be an http(s) URL."""
    url = (base_url or os.environ.get(URL_ENV, "")).strip()
    if not url:
        raise ModelConfigError(f"no local LLM endpoint: set {URL_ENV} (for example http://127.0.0.1:11434/v1 for Ollama)", field="model")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ModelConfigError(f"{URL_ENV} must be an http(s) URL of an OpenAI-compatible endpoint, got {url[:80]!r}", field="model")
    return url


def extract_json(text: str) -> Any:
    """The JSON value in ``text``: the whole text, a fenced block, or the first balanced {...} in prose."""
    text = text.strip()
    candidates = [text, *_FENCE.findall(text)]
    start = text.find("{")
    if start >= 0:
        depth, in_str, esc = 0, False, False
        for i, ch in enumerate(text[start:], start):
            if in_str:
                esc, in_str = (not esc and ch == "\\"), in_str and (esc or ch != '"')
                continue
            if ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    candidates.append(text[start : i + 1])
                    break
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object found in the answer")


class _LocalChat(ProviderModel):
    provider = "local"

    def __init__(
        self,
        model: str | None = None,
        credential: str | None = None,
        recorder: CallRecorder | None = None,
        *,
        registry: Registry | None = None,
        http_client: Any = None,
        record_prompts: bool = False,
        model_setting: str | None = None,
        policy: RetryPolicy | None = None,
        check_interrupt: Callable[[], None] | None = None,
        base_url: str | None = None,
    ):
        self.sdk = import_sdk("openai")
        self.registry = registry or default_registry()
        self.base_url = local_endpoint(base_url)
        name = (model or os.environ.get(MODEL_ENV, "")).strip()
        if not name:
            raise ModelConfigError(f"no local model named: give the model name (as the server lists it) or set {MODEL_ENV}", field="model")
        self.resolved = Resolved(
            ModelSpec(name=name, provider="local", kinds=(self.kind,), known=False), model_setting or "the 'model' setting"
        )
        self.credential_name = "local"
        self.settings = self.registry.settings("local")
        self.ctx = CallContext(
            provider="local",
            resolved=self.resolved,
            credential_name="local",
            key=os.environ.get(KEY_ENV, ""),
            settings=self.settings,
            recorder=recorder if recorder is not None else LoggingRecorder(),
            record_prompts=record_prompts,
            policy=policy,
            check_interrupt=check_interrupt,
        )
        self.schema_supported = True  # until the server shows otherwise
        kwargs: dict[str, Any] = {
            "api_key": self.ctx.key or "not-needed",
            "base_url": self.base_url,
            "max_retries": 0,
            "timeout": self.settings.timeout_s,
        }
        if http_client is not None:
            kwargs["http_client"] = http_client
        self.client = self.sdk.OpenAI(**kwargs)

    def _send(self, operation: str, messages: list[dict], fmt: dict, prompt: str) -> str:
        response = self._call(
            operation, lambda: self.client.chat.completions.create(model=self.model, messages=messages, response_format=fmt), prompt=prompt
        )
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise MalformedResponseError(f"the local model '{self.model}' returned no choices", "local")
        message = choices[0].message
        if getattr(message, "refusal", None) or choices[0].finish_reason == "content_filter":
            raise ProviderRefusedError(f"the local model '{self.model}' refused to answer", "local")
        return message.content or ""

    def _json(
        self, operation: str, system: str, content: list[dict], schema: dict, what: str, prompt: str, check: Callable[[Any], Any]
    ) -> Any:
        """A schema-checked answer: structured output where the server takes it, else JSON mode and at most two repairs."""
        messages: list[dict] = [{"role": "system", "content": system}, {"role": "user", "content": content}]
        if self.schema_supported:
            fmt = {"type": "json_schema", "json_schema": {"name": "pakati_output", "schema": schema, "strict": False}}
            try:
                text = self._send(operation, messages, fmt, prompt)
                return check(extract_json(text))
            except ProviderRequestError:
                self.schema_supported = False  # the server does not take json_schema: JSON mode from now on
            except (ValueError, MalformedResponseError):
                pass  # it ignored the schema: JSON mode below
        messages[0] = {
            "role": "system",
            "content": system
            + "\nAnswer with one JSON object, and nothing else, that matches this JSON schema:\n"
            + json.dumps(schema, separators=(",", ":")),
        }
        problem = ""
        for repair in range(MAX_REPAIRS + 1):
            text = self._send(operation, messages, {"type": "json_object"}, prompt)
            try:
                return check(extract_json(text))
            except (ValueError, MalformedResponseError) as e:
                problem = e.message if isinstance(e, MalformedResponseError) else str(e)
            if repair < MAX_REPAIRS:
                messages += [
                    {"role": "assistant", "content": text[:4000]},
                    {"role": "user", "content": f"That answer was not valid ({problem[:300]}). Answer again with only the JSON object."},
                ]
        raise MalformedResponseError(
            f"the local model '{self.model}' gave no valid JSON for {what} after {MAX_REPAIRS} repairs ({problem[:200]})", "local"
        )


class LocalPlanner(_LocalChat):
    """``TextPlanner`` over a local OpenAI-compatible chat endpoint."""

    kind = "text"

    def complete_json(self, system: str, user: str, schema: dict) -> dict:
        return self._json(
            "complete_json",
            system,
            [{"type": "text", "text": user}],
            schema,
            "the plan",
            user,
            lambda data: check_schema(data, schema, "local", "the plan"),
        )


class LocalVisionJudge(_LocalChat):
    """``VisionJudge`` over a local vision-language model (an image in the chat message)."""

    kind = "vision"

    def ask(self, image: np.ndarray, questions: Sequence[str]) -> list[Answer]:
        questions = list(questions)
        url = "data:image/png;base64," + b64_png(shrink_to(image, self.resolved.spec.max_side))
        content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": judge_user_text(questions)}]
        return self._json(
            "ask",
            JUDGE_SYSTEM,
            content,
            ANSWERS_SCHEMA,
            "judge answers",
            judge_user_text(questions),
            lambda data: parse_answers(check_schema(data, ANSWERS_SCHEMA, "local", "judge answers"), questions, "local"),
        )
