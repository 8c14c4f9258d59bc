"""What worked: a versioned, append-only record of which adjustment raised which score.

File: ``<directory>/what_worked.v1.jsonl``, UTF-8 JSON Lines, one record per tried action::

    {"version": 1, "run": "<16 hex>", "pass": 2, "action": "tone" | "colour" | "regenerate",
     "deltas": {"brightness": 12.1, ...},        # the weighted deltas that triggered it
     "before": 0.81, "after": 0.88, "gain": 0.07,  # overall score around the action
     "aspects_gain": {"lighting": 0.1, ...}, "kept": true}

Lines of another version, or that do not parse, are skipped (and counted), so old files never
break a newer build. The loop orders its cheap corrections by the mean past gain of each action.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from ..finite import strict_json

STORE_VERSION = 1
FILE_NAME = f"what_worked.v{STORE_VERSION}.jsonl"


class WhatWorkedStore:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.skipped = 0

    def append(self, records: Iterable[dict]) -> int:
        """Append records as strict JSON lines; a NaN/Inf anywhere raises before anything is written."""
        rows = [dict(r, version=STORE_VERSION) for r in records]
        if not rows:
            return 0
        lines = [strict_json(r, "a what-worked record", "store", sort_keys=True) + "\n" for r in rows]
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(lines)
        return len(rows)

    def revision(self) -> str:
        """Changes whenever the records change (size and modification time of the file): what a
        host's cache compares to know that a run reading this store may now differ."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return "empty"
        return f"{st.st_size}:{st.st_mtime_ns}"

    def load(self) -> list[dict]:
        self.skipped = 0
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                self.skipped += 1
                continue
            if not isinstance(rec, dict) or rec.get("version") != STORE_VERSION or "action" not in rec:
                self.skipped += 1
                continue
            out.append(rec)
        return out

    def mean_gains(self) -> dict[str, tuple[int, float]]:
        """action -> (number of records, mean gain)."""
        sums: dict[str, list[float]] = {}
        for r in self.load():
            sums.setdefault(r["action"], []).append(float(r.get("gain", 0.0)))
        return {a: (len(g), sum(g) / len(g)) for a, g in sums.items()}

    def order(self, actions: Sequence[str]) -> list[str]:
        """``actions`` by mean past gain, best first; actions never tried keep their given order
        after those that helped and before those that did not."""
        gains = self.mean_gains()
        return sorted(actions, key=lambda a: -gains[a][1] if a in gains else 0.0)
