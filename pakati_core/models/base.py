"""What every provider object shares: the resolved model, the key (kept private), the call context."""

from __future__ import annotations

import importlib
import json
from typing import Any, Callable

from ..retry import RetryPolicy
from .calls import CallContext, run_call
from .credentials import normalise_name, resolve_key
from .errors import MalformedResponseError, OptionalPackageMissingError
from .protocols import CallRecorder
from .recording import LoggingRecorder
from .registry import Registry, default_registry


def import_sdk(provider: str) -> Any:
    """The provider's official SDK; a missing one names the package to install."""
    try:
        return importlib.import_module(provider)
    except ModuleNotFoundError:
        raise OptionalPackageMissingError(
            f"the optional package '{provider}' is not installed; install it with: pip install {provider}",
            provider,
            field="provider",
        ) from None


class ProviderModel:
    """Base of the provider implementations. ``repr`` and errors never show the key."""

    provider = ""
    kind = ""

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
    ):
        self.sdk = import_sdk(self.provider)
        self.registry = registry or default_registry()
        self.resolved = self.registry.resolve(self.provider, self.kind, model, model_setting)
        self.credential_name = normalise_name(credential)
        self.settings = self.registry.settings(self.provider)
        self.ctx = CallContext(
            provider=self.provider,
            resolved=self.resolved,
            credential_name=self.credential_name,
            key=resolve_key(self.provider, self.credential_name),
            settings=self.settings,
            recorder=recorder if recorder is not None else LoggingRecorder(),
            record_prompts=record_prompts,
            policy=policy,
            check_interrupt=check_interrupt,
        )
        self.client = self._client(http_client)

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.resolved.spec.name}"

    @property
    def model(self) -> str:
        return self.resolved.spec.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, credential={self.credential_name!r})"

    def _client(self, http_client: Any) -> Any:
        """The SDK client: SDK retries off (Pakati retries), the configured timeout, base URL from the SDK's env var."""
        cls = self.sdk.OpenAI if self.provider == "openai" else self.sdk.Anthropic
        kwargs: dict[str, Any] = dict(api_key=self.ctx.key, max_retries=0, timeout=self.settings.timeout_s)
        if http_client is not None:
            kwargs["http_client"] = http_client
        return cls(**kwargs)

    def _call(
        self, operation: str, send: Callable[[], Any], size: str | None = None, cost: float | None = None, prompt: str | None = None
    ) -> Any:
        return run_call(self.ctx, operation, send, size=size, cost=cost, prompt=prompt)

    def _json_answer(self, text: str, what: str, ended: str) -> Any:
        """The structured output's JSON text parsed; an empty or non-JSON answer is a malformed
        response naming the provider, the model and how the answer ended (``ended``)."""
        if not text.strip():
            raise MalformedResponseError(
                f"provider {self.provider} answered without the structured output for {what} (model '{self.model}', {ended})", self.provider
            )
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise MalformedResponseError(
                f"provider {self.provider} returned text that is not JSON for {what} (model '{self.model}': {e.msg} at character {e.pos})",
                self.provider,
            ) from None

    def _checked(self, read: Callable[[], Any]) -> Any:
        """``read()`` (schema checks of an answer), with the model named in a malformed-answer error."""
        try:
            return read()
        except MalformedResponseError as e:
            raise MalformedResponseError(f"{e.message} (model '{self.model}')", self.provider, field=e.field) from None
