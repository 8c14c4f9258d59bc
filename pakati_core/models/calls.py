"""One provider call: rate limit, bounded retries, SDK errors mapped to Pakati's typed errors, a call record.

Works on the exception classes both official SDKs share (``APIStatusError`` with
``status_code``/``body``/``response``, ``APITimeoutError``, ``APIConnectionError``). The SDK's
own retries are switched off (``max_retries=0``) so that at most ``max_calls`` calls are made.
Provider error text is quoted only after redaction, and our errors never chain the SDK's
exception (its text and request carry headers), so neither a traceback nor a log shows a key.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from ..redaction import redact
from ..retry import Retryable, RetryPolicy, call_with_retries
from .credentials import env_names
from .errors import (
    KeyRejectedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRequestError,
    ProviderUnavailableError,
    RateLimitedError,
)
from .protocols import CallRecord, CallRecorder
from .ratelimit import bucket_for
from .registry import ProviderSettings, Resolved, retired_error

T = TypeVar("T")
REFUSAL_CODES = ("content_policy_violation", "moderation_blocked", "content_filter", "safety", "image_generation_user_error")
MODEL_CODES = ("model_not_found", "not_found_error", "invalid_model")


@dataclass
class CallContext:
    """Who is calling what: everything an error message or a call record may name (never the key itself)."""

    provider: str
    resolved: Resolved
    credential_name: str
    key: str = field(repr=False)
    settings: ProviderSettings = field(default_factory=ProviderSettings)
    recorder: CallRecorder | None = None
    record_prompts: bool = False
    policy: RetryPolicy | None = None
    check_interrupt: Callable[[], None] | None = None

    @property
    def model(self) -> str:
        return self.resolved.spec.name


def _body_error(exc: Any) -> tuple[str, str]:
    """(code or type, message) from an SDK status error's body, both possibly empty."""
    body = getattr(exc, "body", None)
    err = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(err, dict):
        code = str(err.get("code") or err.get("type") or "")
        return code, str(err.get("message") or "")
    return "", str(body or "")[:300]


def retry_after(exc: Any) -> float | None:
    """Seconds from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), if the response has them."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000.0
        value = headers.get("retry-after")
        if value:
            try:
                return float(value)
            except ValueError:
                when = email.utils.parsedate_to_datetime(value)
                return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None
    return None


def map_error(exc: Exception, ctx: CallContext) -> Exception:
    """The typed error for an SDK exception, wrapped in ``Retryable`` when another call may succeed."""
    p, c, model = ctx.provider, ctx.credential_name, ctx.model
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    if status is None:
        if "Timeout" in name:
            return Retryable(ProviderUnavailableError(f"provider {p} timed out (model '{model}', limit {ctx.settings.timeout_s:g}s)", p))
        if "Connection" in name:
            return Retryable(ProviderUnavailableError(f"could not connect to provider {p} (check the network and {p.upper()}_BASE_URL)", p))
        return ProviderError(f"provider {p} call failed: {name}", p)
    code, message = _body_error(exc)
    said = redact(message, ctx.key)[:300]
    low = f"{code} {said}".lower()
    if status == 401:
        return KeyRejectedError(
            f"key rejected for provider {p} (credential name '{c}'): check {' / '.join(env_names(p, c))} or the key file",
            p,
            field="credential",
            status=status,
        )
    if status == 403:
        return KeyRejectedError(
            f"the key for provider {p} (credential name '{c}') may not use model '{model}' (403)", p, field="credential", status=status
        )
    if (
        status == 404
        or any(k in low for k in MODEL_CODES)
        or ("model" in low and ("does not exist" in low or "deprecat" in low or "retired" in low))
    ):
        spec = ctx.resolved.spec
        return retired_error(p, model, ctx.resolved.setting, spec.replacement)
    if status == 429:
        if "insufficient_quota" in low or "quota" in code:
            return RateLimitedError(f"provider {p} says the account's quota is used up (credential name '{c}')", p, status=status)
        return Retryable(
            RateLimitedError(f"provider {p} is rate limiting (429) model '{model}'; retried with backoff", p, status=status),
            retry_after(exc),
        )
    if status in (408, 409, 529) or status >= 500:
        what = "overloaded (529)" if status == 529 else f"unavailable ({status})"
        return Retryable(ProviderUnavailableError(f"provider {p} is {what} for model '{model}'", p, status=status), retry_after(exc))
    if any(k in low for k in REFUSAL_CODES):
        return ProviderRefusedError(f"provider {p} refused the request (content policy): {said}", p, status=status)
    return ProviderRequestError(f"provider {p} rejected the request ({status}): {said}", p, status=status)


def run_call(
    ctx: CallContext, operation: str, send: Callable[[], T], size: str | None = None, cost: float | None = None, prompt: str | None = None
) -> T:
    """``send()`` under the provider's token bucket and retry policy; records one ``CallRecord``."""
    s = ctx.settings
    policy = ctx.policy or RetryPolicy(max_calls=s.max_calls, backoff_s=s.backoff_s, cap_s=s.backoff_cap_s)
    rpm = ctx.resolved.spec.requests_per_minute or s.requests_per_minute
    bucket = bucket_for(ctx.provider, rpm, s.burst)

    made = [0]

    def attempt(n: int) -> T:
        bucket.acquire()
        made[0] = n
        try:
            return send()
        except ProviderError:
            raise
        except Exception as e:  # the SDK's errors: mapped, never chained (their text holds request details)
            mapped = map_error(e, ctx)
        raise mapped

    start = time.monotonic()
    error: BaseException | None = None
    try:
        return call_with_retries(attempt, policy, before_retry=ctx.check_interrupt)[0]
    except ProviderError as e:
        error = e
        raise e from None
    except BaseException as e:  # an interrupt between calls
        error = e
        raise
    finally:
        if ctx.recorder is not None:
            ctx.recorder.record(
                CallRecord(
                    provider=ctx.provider,
                    model=ctx.model,
                    operation=operation,
                    duration_s=round(time.monotonic() - start, 4),
                    ok=error is None,
                    size=size,
                    estimated_cost_usd=cost if error is None else None,
                    error_kind=None if error is None else getattr(error, "kind", type(error).__name__),
                    prompt=prompt if ctx.record_prompts else None,
                    extra={"calls": made[0], "credential": ctx.credential_name},
                )
            )
