"""The seam for caches of expensive results (LLM plans, vision-judge answers) keyed by a content hash.

``ResultCache`` is what the planner and the judge wrapper ask for; ``pakati_core.store``'s ``Store.cache``
implements it on the database's ``cache_entries`` table (per user), ``MemoryCache`` in a dict
for one process. ``BestEffortCache`` wraps either so that a cache that cannot be read or
written costs only the cache: the call it serves never fails because of it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol, runtime_checkable

from .errors import PakatiError

log = logging.getLogger("pakati")


@runtime_checkable
class ResultCache(Protocol):
    def cache_get(self, namespace: str, key: str) -> tuple[Any, bytes | None] | None: ...

    def cache_put(self, namespace: str, key: str, value: Any = None, data: bytes | None = None) -> None: ...


class MemoryCache:
    """A ResultCache in a dict (one process); values are kept as given, so store only plain JSON."""

    def __init__(self):
        self._items: dict[tuple[str, str], tuple[Any, bytes | None]] = {}
        self._lock = threading.Lock()

    def cache_get(self, namespace: str, key: str) -> tuple[Any, bytes | None] | None:
        with self._lock:
            return self._items.get((namespace, key))

    def cache_put(self, namespace: str, key: str, value: Any = None, data: bytes | None = None) -> None:
        with self._lock:
            self._items.setdefault((namespace, key), (value, data))

    def __len__(self) -> int:
        return len(self._items)


class BestEffortCache:
    """A cache whose failures (a read-only or unreachable database) are logged and read as a miss."""

    def __init__(self, inner: ResultCache | None):
        self.inner = inner

    def cache_get(self, namespace: str, key: str) -> tuple[Any, bytes | None] | None:
        if self.inner is None:
            return None
        try:
            return self.inner.cache_get(namespace, key)
        except (PakatiError, OSError) as e:
            log.error("Pakati: the %s cache cannot be read, calling the provider instead: %s", namespace, e)
            return None

    def cache_put(self, namespace: str, key: str, value: Any = None, data: bytes | None = None) -> None:
        if self.inner is None:
            return
        try:
            self.inner.cache_put(namespace, key, value, data)
        except (PakatiError, OSError) as e:
            log.error("Pakati: a %s result was not cached (the result is unaffected): %s", namespace, e)
