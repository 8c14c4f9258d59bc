"""Understandings in Pakati's database, keyed by the reference's content hash and the settings fingerprint.

One row per (user, reference hash, fingerprint) holds the learned record; the reference pixels
and the preview grid are kept as content-addressed PNGs beside it, so an understanding can hand
back an init image. Each write is one transaction: a crash never leaves half a record. Records
of another format version read as absent (learn again with ``force``). Understandings written
as JSON files by earlier builds are imported once (``pakati_core.store.import_legacy``).
"""

from __future__ import annotations

import numpy as np

from ..finite import require_finite
from ..jsonutil import strict_json
from ..store import Store, StoreError
from .learner import FORMAT_VERSION

__all__ = ["StoreError", "UnderstandingStore"]


def _check_key(key: str) -> str:
    if not key or not all(c in "0123456789abcdef" for c in key):
        raise StoreError(f"not a content hash: {key!r}", "key")
    return key


class UnderstandingStore:
    def __init__(self, store: Store):
        self.store = store

    def revision(self) -> str:
        """Changes whenever one of this user's understandings is written or removed: what a
        host's cache compares to serve nothing stale."""
        return self.store.understandings.revision()

    def get(self, key: str, fingerprint: str) -> dict | None:
        """The understanding learned from this image with these settings, or None."""
        return self.store.understandings.get(_check_key(key), fingerprint, FORMAT_VERSION)

    def put(self, record: dict, image: np.ndarray) -> str:
        """Keep the record (replacing one with the same image and settings); returns where it is."""
        _check_key(record["image_hash"])
        strict_json(record, "the understanding record", "record")  # NaN/Inf: raise before writing anything
        require_finite(image, "the reference image", "image")
        self.store.understandings.put(record, image, FORMAT_VERSION)
        return self.location(record["image_hash"], record["settings"]["fingerprint"])

    def location(self, key: str, fingerprint: str) -> str:
        """Where a record lives, for reports: the database (password hidden), the key and fingerprint."""
        return f"{self.store.url} understanding {key[:16]}/{fingerprint}"

    def image(self, key: str) -> np.ndarray | None:
        return self.store.understandings.image(_check_key(key))

    def put_preview(self, key: str, fingerprint: str, grid: np.ndarray) -> None:
        require_finite(grid, "the preview grid", "preview")
        self.store.understandings.put_preview(_check_key(key), fingerprint, grid)

    def preview(self, key: str, fingerprint: str) -> np.ndarray | None:
        return self.store.understandings.preview(_check_key(key), fingerprint)
