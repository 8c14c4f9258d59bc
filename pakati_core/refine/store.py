"""What worked: which adjustment raised which score, kept in Pakati's database (table ``what_worked``).

One record per tried action::

    {"version": 1, "run": "<16 hex>", "pass": 2, "action": "tone" | "colour" | "regenerate",
     "deltas": {"brightness": 12.1, ...},        # the weighted deltas that triggered it
     "before": 0.81, "after": 0.88, "gain": 0.07,  # overall score around the action
     "aspects_gain": {"lighting": 0.1, ...}, "kept": true}

The loop orders its cheap corrections by the mean past gain of each action (computed in the
database). ``what_worked.v1.jsonl`` files written by earlier builds are imported once
(``pakati_core.store.import_legacy``); lines of another version or that do not parse are skipped.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..jsonutil import strict_json
from ..store import Store

STORE_VERSION = 1
FILE_NAME = f"what_worked.v{STORE_VERSION}.jsonl"  # the file earlier builds wrote; imported once


class WhatWorkedStore:
    def __init__(self, store: Store):
        self.store = store

    def append(self, records: Iterable[dict]) -> int:
        """Keep the records; a NaN/Inf anywhere raises before anything is written."""
        rows = [dict(r, version=STORE_VERSION) for r in records]
        for r in rows:
            strict_json(r, "a what-worked record", "store")
        return self.store.what_worked.append(rows)

    def revision(self) -> str:
        """Changes whenever this user's records change: what a host's cache compares to know that
        a run reading this store may now differ."""
        return self.store.what_worked.revision()

    def load(self) -> list[dict]:
        return [r for r in self.store.what_worked.load() if r.get("version") == STORE_VERSION]

    def mean_gains(self) -> dict[str, tuple[int, float]]:
        """action -> (number of records, mean gain)."""
        return self.store.what_worked.gains()

    def order(self, actions: Sequence[str]) -> list[str]:
        """``actions`` by mean past gain, best first; actions never tried keep their given order
        after those that helped and before those that did not."""
        gains = self.mean_gains()
        return sorted(actions, key=lambda a: -gains[a][1] if a in gains else 0.0)
