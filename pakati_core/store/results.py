"""The content-hash result cache: expensive results (JSON and/or bytes) keyed by the hash of their inputs
(``pakati_core.cache.ResultCache``)."""

from __future__ import annotations

from typing import Any

from .database import Database, finite
from .schema import CacheEntry, utcnow


class CacheRepository:
    def __init__(self, db: Database):
        self.db = db

    def cache_get(self, namespace: str, key: str) -> tuple[Any, bytes | None] | None:
        """(value, data) stored under the content hash ``key``, or None."""
        with self.db.session(write=False) as s:
            row = s.get(CacheEntry, (self.db.owner, namespace, key))
            return (row.value, row.data) if row is not None else None

    def cache_put(self, namespace: str, key: str, value: Any = None, data: bytes | None = None) -> None:
        """Keep a result; a second writer of the same key (same inputs, same result) is a no-op."""
        finite(value, "value")
        with self.db.session() as s:
            self.db.insert_ignore(
                s,
                CacheEntry,
                {"owner": self.db.owner, "namespace": namespace, "key": key, "value": value, "data": data, "created_at": utcnow()},
                ["owner", "namespace", "key"],
            )
