"""Context through the ContextStore protocol: JSON-lines default, a later plan starts from what worked."""
from __future__ import annotations

import numpy as np
import pytest

from pakati_core.orchestration import (
    CheckResult, ContextError, ContextStore, JsonlContextStore, check_alignment, goal_key, plan, record_check, record_generation,
)


def test_jsonl_store_round_trip_and_protocol(tmp_path):
    store = JsonlContextStore(tmp_path / "ctx")
    assert isinstance(store, ContextStore)
    key = goal_key("A red cat.", 512, 512)
    assert key == goal_key("  a red   cat", 512, 512) and key != goal_key("a red cat", 1024, 1024)
    store.save_record(key, "generation", {"params": {"cfg": 6.0}, "seconds": 1.5})
    store.save_record(key, "plan", {"plan": {"x": 1}})
    recs = store.load_records(key)
    assert sorted(r["kind"] for r in recs) == ["generation", "plan"]
    assert next(r for r in recs if r["kind"] == "generation")["params"] == {"cfg": 6.0}
    assert store.load_records(key, "check") == []
    with pytest.raises(ContextError):
        store.save_record(key, "dream", {})
    with pytest.raises(ContextError):
        store.save_record(key, "plan", {"bad": float("nan")})
    with pytest.raises(ContextError):
        store.load_records("../etc", "plan")


def test_later_plan_starts_from_what_worked(tmp_path):
    store = JsonlContextStore(tmp_path)
    goal = "a red cat on the left of a blue cup"
    first = plan(goal, 512, 512, context=store)
    assert len(store.load_records(goal_key(goal, 512, 512), "plan")) == 1
    # a check of a hand-improved layout scores well; the next plan for the goal starts from it
    better = first.to_dict()
    better["canvas"]["regions"][0]["prompt"] = "red cat, detailed fur"
    from pakati_core.orchestration import Plan

    improved = Plan.from_dict(better)
    img = np.zeros((64, 64, 3), np.float32)
    img[:, :32] = (0.85, 0.1, 0.1)
    img[:, 32:] = (0.1, 0.3, 0.9)
    check = check_alignment(img, improved)
    record_check(store, improved, CheckResult(0.9, check.verdicts), 0.01)
    record_generation(store, improved, {"cfg": 6.5, "steps": 20}, 2.0)
    again = plan(goal, 512, 512, context=store)
    assert again.canvas["regions"][0]["prompt"] == "red cat, detailed fur"
    assert any("started from an earlier plan" in n for n in again.notes)
    # a low-scoring history is not reused
    other = JsonlContextStore(tmp_path / "low")
    record_check(other, improved, CheckResult(0.2, []), 0.01)
    assert plan(goal, 512, 512, context=other).canvas["regions"][0]["prompt"] == "red cat"
