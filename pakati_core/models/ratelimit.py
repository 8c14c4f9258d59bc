"""A client-side token bucket per provider, so Pakati stays under the configured request rate."""

from __future__ import annotations

import threading
import time
from typing import Callable


class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; ``acquire`` waits until a token is free."""

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ):
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate, self.capacity = float(rate), float(capacity)
        self.clock, self.sleep = clock, sleep
        self.tokens = float(capacity)
        self.stamp = clock()
        self.lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, sleeping as long as needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.lock:
                self._refill()
                if self.tokens >= tokens:
                    self.tokens -= tokens
                    return waited
                wait = (tokens - self.tokens) / self.rate
            self.sleep(wait)
            waited += wait


_buckets: dict[str, tuple[tuple[float, float], TokenBucket]] = {}
_lock = threading.Lock()


def bucket_for(provider: str, requests_per_minute: float, burst: float) -> TokenBucket:
    """The shared bucket of ``provider`` (rebuilt when its configured rate changes)."""
    key = (float(requests_per_minute), float(burst))
    with _lock:
        held = _buckets.get(provider)
        if held is None or held[0] != key:
            held = (key, TokenBucket(requests_per_minute / 60.0, max(1.0, burst)))
            _buckets[provider] = held
        return held[1]
