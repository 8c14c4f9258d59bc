"""Bounded retries, the one retry loop of the core: at most ``max_calls`` calls, exponential backoff (with full
jitter by default), a server's ``Retry-After`` honoured. Provider calls and the ComfyUI client both retry through it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Retryable(Exception):
    """Raised by an attempt that may be retried; ``final`` is the error to raise when retries run out."""

    def __init__(self, final: Exception, retry_after: float | None = None):
        self.final = final
        self.retry_after = retry_after
        super().__init__(str(final))


@dataclass
class RetryPolicy:
    max_calls: int = 3
    backoff_s: float = 1.0
    cap_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random | None = None
    jitter: bool = True  # False: exactly backoff_s * 2 ** (attempt - 1) (capped)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before call ``attempt + 1``: the server's Retry-After when given, else jittered backoff."""
        if retry_after is not None and retry_after >= 0:
            return min(float(retry_after), self.cap_s)
        ceiling = min(self.cap_s, self.backoff_s * (2 ** (attempt - 1)))
        if not self.jitter:
            return ceiling
        rng = self.rng or random
        return rng.uniform(0.0, ceiling)


def call_with_retries(attempt: Callable[[int], T], policy: RetryPolicy, before_retry: Callable[[], None] | None = None) -> tuple[T, int]:
    """Run ``attempt(n)`` until it returns; a ``Retryable`` is retried until ``max_calls`` calls were made.

    Returns the result and the number of calls made. ``before_retry`` runs before each retry
    (the nodes check for an interrupt there).
    """
    calls = max(1, int(policy.max_calls))
    for n in range(1, calls + 1):
        try:
            return attempt(n), n
        except Retryable as r:
            if n == calls:
                raise r.final from None
            policy.sleep(policy.delay(n, r.retry_after))
            if before_retry:
                before_retry()
    raise AssertionError("unreachable")
