"""Context: goals, constraints, every plan, generation and check (with timings), kept per goal.

Persistence goes through :class:`ContextStore` (the seam the database store also implements);
:class:`JsonlContextStore` is the default: one JSON-lines file per goal key and kind under a
directory. ``best_plan`` is how a later plan for the same goal starts from what worked.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import ContextError

KINDS = ("plan", "check", "generation")


@runtime_checkable
class ContextStore(Protocol):
    def save_record(self, goal_key: str, kind: str, record: dict) -> None: ...

    def load_records(self, goal_key: str, kind: str | None = None) -> list[dict]: ...


def goal_key(goal: str, width: int | None = None, height: int | None = None) -> str:
    """A stable key for a goal: case, spacing and end punctuation do not matter."""
    norm = re.sub(r"\s+", " ", goal.strip().lower()).rstrip(" .!")
    size = f"@{width}x{height}" if width and height else ""
    return hashlib.sha256((norm + size).encode()).hexdigest()[:24]


class JsonlContextStore:
    """``<dir>/<goal_key>.<kind>.jsonl``; appends are one ``write`` of one line (safe for one writer per goal)."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    def _path(self, key: str, kind: str) -> Path:
        if kind not in KINDS:
            raise ContextError(f"unknown record kind {kind!r}; expected one of {KINDS}", field="kind")
        if not re.fullmatch(r"[0-9a-f]{8,64}", key):
            raise ContextError(f"goal key {key!r} is not a hex key from goal_key()", field="goal_key")
        return self.dir / f"{key}.{kind}.jsonl"

    def save_record(self, goal_key: str, kind: str, record: dict) -> None:
        path = self._path(goal_key, kind)
        try:
            line = json.dumps({"time": round(time.time(), 6), **record}, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise ContextError(f"record cannot be written as strict JSON: {e}", field="record") from None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as e:
            raise ContextError(f"cannot write {path}: {e.strerror}", field="context") from None

    def load_records(self, goal_key: str, kind: str | None = None) -> list[dict]:
        out: list[dict] = []
        for k in (kind,) if kind else KINDS:
            path = self._path(goal_key, k)
            if not path.is_file():
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    raise ContextError(f"{path.name} line {n} is not valid JSON", field="context") from None
                out.append({"kind": k, **rec})
        return sorted(out, key=lambda r: r.get("time", 0))


def record_plan(store: ContextStore, plan, seconds: float) -> None:
    store.save_record(goal_key(plan.goal, plan.width, plan.height), "plan", {"plan": plan.to_dict(), "seconds": round(seconds, 4)})


def record_check(store: ContextStore, plan, check, seconds: float) -> None:
    """A check with the plan it judged, so that the best-scoring plan can be started from."""
    store.save_record(goal_key(plan.goal, plan.width, plan.height), "check",
                      {"score": round(float(check.score), 4), "plan": plan.to_dict(), "check": check.to_dict(), "seconds": round(seconds, 4)})


def record_generation(store: ContextStore, plan, params: dict, seconds: float) -> None:
    store.save_record(goal_key(plan.goal, plan.width, plan.height), "generation", {"params": params, "seconds": round(seconds, 4)})


def best_plan(store: ContextStore, goal: str, width: int, height: int, min_score: float = 0.0) -> tuple[dict, float] | None:
    """The plan dict of the best-scoring check for this goal and size, and its score."""
    checks = [r for r in store.load_records(goal_key(goal, width, height), "check") if "plan" in r and "score" in r]
    if not checks:
        return None
    best = max(checks, key=lambda r: (r["score"], r.get("time", 0)))
    return (best["plan"], float(best["score"])) if best["score"] >= min_score else None
