"""Context: goals, constraints, every plan, generation and check (with timings), kept per goal.

Persistence goes through :class:`ContextStore`, the seam: ``Store.context`` of ``pakati_core.store`` (the
database, per user) implements it, and so can anything with ``save_record``/``load_records``.
JSON-lines context directories written by earlier builds are imported into the database once
with ``python -m pakati_core.store import-legacy --context-dir DIR``. ``best_plan`` is how a
later plan for the same goal starts from what worked.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol, runtime_checkable

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


def record_plan(store: ContextStore, plan, seconds: float) -> None:
    store.save_record(goal_key(plan.goal, plan.width, plan.height), "plan", {"plan": plan.to_dict(), "seconds": round(seconds, 4)})


def record_check(store: ContextStore, plan, check, seconds: float) -> None:
    """A check with the plan it judged, so that the best-scoring plan can be started from."""
    store.save_record(
        goal_key(plan.goal, plan.width, plan.height),
        "check",
        {"score": round(float(check.score), 4), "plan": plan.to_dict(), "check": check.to_dict(), "seconds": round(seconds, 4)},
    )


def record_generation(store: ContextStore, plan, params: dict, seconds: float) -> None:
    store.save_record(goal_key(plan.goal, plan.width, plan.height), "generation", {"params": params, "seconds": round(seconds, 4)})


def best_plan(store: ContextStore, goal: str, width: int, height: int, min_score: float = 0.0) -> tuple[dict, float] | None:
    """The plan dict of the best-scoring check for this goal and size, and its score."""
    checks = [r for r in store.load_records(goal_key(goal, width, height), "check") if "plan" in r and "score" in r]
    if not checks:
        return None
    best = max(checks, key=lambda r: (r["score"], r.get("time", 0)))
    return (best["plan"], float(best["score"])) if best["score"] >= min_score else None
