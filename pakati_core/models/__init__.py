"""Pakati's model layer: protocols, a configured registry, a selector, and providers over the official SDKs.

Nothing here imports ComfyUI, and the SDKs (``openai``, ``anthropic``) are imported only when
a provider object is made, so Pakati works where they are missing.
"""

from __future__ import annotations

from typing import Any

from .credentials import resolve_key, set_user_dir
from .errors import (
    KeyFileInsecureError,
    KeyMissingError,
    KeyRejectedError,
    MalformedResponseError,
    ModelConfigError,
    ModelRetiredError,
    NoModelError,
    OptionalPackageMissingError,
    ProviderError,
    ProviderRefusedError,
    ProviderRequestError,
    ProviderUnavailableError,
    RateLimitedError,
)
from .judging import CachedJudge
from .protocols import Answer, CallRecord, CallRecorder, ImageBackend, TextPlanner, VisionJudge
from .recording import ListRecorder, LoggingRecorder
from .registry import ModelSpec, Registry, default_registry
from .selector import ModelNeeds, Selection, select_model

PROVIDERS = ("openai", "anthropic")
CHAT_PROVIDERS = (*PROVIDERS, "local")  # "local": an OpenAI-compatible endpoint on the user's machine (local_provider.py)


def _check_provider(provider: str, allowed: tuple[str, ...], what: str) -> str:
    p = (provider or "").strip().lower()
    if p not in allowed:
        raise ProviderError(f"no {what} for provider {provider!r}; expected one of {', '.join(allowed)}", provider, field="provider")
    return p


def make_planner(
    provider: str, model: str | None = None, credential: str | None = None, recorder: CallRecorder | None = None, **options: Any
) -> TextPlanner:
    """A ``TextPlanner`` (forced structured output) for ``provider``; ``KeyMissingError`` when no key is configured."""
    p = _check_provider(provider, CHAT_PROVIDERS, "planner")
    if p == "local":
        from .local_provider import LocalPlanner as cls
    elif p == "openai":
        from .openai_provider import OpenAIPlanner as cls
    else:
        from .anthropic_provider import AnthropicPlanner as cls
    return cls(model, credential, recorder, **options)


def make_judge(
    provider: str, model: str | None = None, credential: str | None = None, recorder: CallRecorder | None = None, **options: Any
) -> VisionJudge:
    """A ``VisionJudge`` (image + questions -> answers) for ``provider``."""
    p = _check_provider(provider, CHAT_PROVIDERS, "vision judge")
    if p == "local":
        from .local_provider import LocalVisionJudge as cls
    elif p == "openai":
        from .openai_provider import OpenAIVisionJudge as cls
    else:
        from .anthropic_provider import AnthropicVisionJudge as cls
    return cls(model, credential, recorder, **options)


def make_image_backend(
    provider: str, model: str | None = None, credential: str | None = None, recorder: CallRecorder | None = None, **options: Any
) -> ImageBackend:
    """An ``ImageBackend`` for ``provider`` (OpenAI Images; Anthropic makes no images)."""
    _check_provider(provider, ("openai",), "image backend")
    from .openai_provider import OpenAIImages

    return OpenAIImages(model, credential, recorder, **options)


__all__ = [
    "Answer",
    "CachedJudge",
    "CallRecord",
    "CallRecorder",
    "ImageBackend",
    "TextPlanner",
    "VisionJudge",
    "ListRecorder",
    "LoggingRecorder",
    "ModelSpec",
    "Registry",
    "Selection",
    "ModelNeeds",
    "PROVIDERS",
    "CHAT_PROVIDERS",
    "default_registry",
    "make_image_backend",
    "make_judge",
    "make_planner",
    "resolve_key",
    "select_model",
    "set_user_dir",
    "KeyFileInsecureError",
    "KeyMissingError",
    "KeyRejectedError",
    "MalformedResponseError",
    "ModelConfigError",
    "ModelRetiredError",
    "NoModelError",
    "OptionalPackageMissingError",
    "ProviderError",
    "ProviderRefusedError",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "RateLimitedError",
]
