"""Context through the ContextStore protocol, on the database (``pakati_core.store.Store``, SQLite and
PostgreSQL): a later plan starts from what worked; old JSON-lines context directories are imported once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pakati_core.orchestration import (
    CheckResult,
    ContextStore,
    check_alignment,
    goal_key,
    plan,
    record_check,
    record_generation,
)
from pakati_core.store import StoreError, open_store

REPO = Path(__file__).resolve().parents[2]


def test_store_round_trip_and_protocol(db_url):
    store = open_store(db_url)
    assert isinstance(store.context, ContextStore)
    key = goal_key("A red cat.", 512, 512)
    assert key == goal_key("  a red   cat", 512, 512) and key != goal_key("a red cat", 1024, 1024)
    store.context.save_record(key, "generation", {"params": {"cfg": 6.0}, "seconds": 1.5})
    store.context.save_record(key, "plan", {"plan": {"x": 1}})
    recs = store.context.load_records(key)
    assert sorted(r["kind"] for r in recs) == ["generation", "plan"]
    assert next(r for r in recs if r["kind"] == "generation")["params"] == {"cfg": 6.0}
    assert store.context.load_records(key, "check") == []
    with pytest.raises(StoreError, match="kind must be one of"):
        store.context.save_record(key, "dream", {})
    with pytest.raises(StoreError, match="only finite numbers"):
        store.context.save_record(key, "plan", {"bad": float("nan")})
    assert store.context.load_records("../etc", "plan") == []  # a key is a value in a column, never a path
    assert store.for_user("someone else").context.load_records(key) == []


def test_later_plan_starts_from_what_worked(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'pakati.db'}")
    goal = "a red cat on the left of a blue cup"
    first = plan(goal, 512, 512, context=store.context)
    assert len(store.context.load_records(goal_key(goal, 512, 512), "plan")) == 1
    # a check of a hand-improved layout scores well; the next plan for the goal starts from it
    better = first.to_dict()
    better["canvas"]["regions"][0]["prompt"] = "red cat, detailed fur"
    from pakati_core.orchestration import Plan

    improved = Plan.from_dict(better)
    img = np.zeros((64, 64, 3), np.float32)
    img[:, :32] = (0.85, 0.1, 0.1)
    img[:, 32:] = (0.1, 0.3, 0.9)
    check = check_alignment(img, improved)
    record_check(store.context, improved, CheckResult(0.9, check.verdicts), 0.01)
    record_generation(store.context, improved, {"cfg": 6.5, "steps": 20}, 2.0)
    again = plan(goal, 512, 512, context=store.context)
    assert again.canvas["regions"][0]["prompt"] == "red cat, detailed fur"
    assert any("started from an earlier plan" in n for n in again.notes)
    # a low-scoring history is not reused
    other = store.for_user("low scorer")
    record_check(other.context, improved, CheckResult(0.2, []), 0.01)
    assert plan(goal, 512, 512, context=other.context).canvas["regions"][0]["prompt"] == "red cat"


def write_jsonl_context(directory: Path, key: str, kind: str, records: list[dict], t0: float = 1_700_000_000.0) -> None:
    """A context file as the JSON-lines store of earlier builds wrote it: one ``{"time": ..., **record}`` line per record."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{key}.{kind}.jsonl", "a", encoding="utf-8") as f:
        for i, rec in enumerate(records):
            f.write(json.dumps({"time": t0 + i, **rec}, sort_keys=True) + "\n")


def test_an_old_jsonl_context_directory_is_imported_once_and_reused(tmp_path):
    goal = "a red cat on the left of a blue cup"
    key = goal_key(goal, 512, 512)
    good = plan(goal, 512, 512).to_dict()
    good["canvas"]["regions"][0]["prompt"] = "red cat, imported from the old context"
    old = tmp_path / "old-context"
    write_jsonl_context(old, key, "plan", [{"plan": good, "seconds": 0.1}])
    write_jsonl_context(old, key, "check", [{"score": 0.9, "plan": good, "check": {}, "seconds": 0.2}], t0=1_700_000_010.0)
    (old / "notes.txt").write_text("not a context file")
    url = f"sqlite:///{tmp_path / 'client.db'}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("PAKATI_DATABASE_URL", None)
    cmd = [
        sys.executable,
        "-m",
        "pakati_core.store",
        "import-legacy",
        "--url",
        url,
        "--user-dir",
        str(tmp_path / "nothing"),
        "--context-dir",
        str(old),
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"url": url, "understanding": 0, "what_worked": 0, "context": 2}
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert json.loads(again.stdout)["context"] == 0, "a second import adds nothing"
    store = open_store(url)
    assert [r["kind"] for r in store.context.load_records(key)] == ["plan", "check"]
    reused = plan(goal, 512, 512, context=store.context)
    assert reused.canvas["regions"][0]["prompt"] == "red cat, imported from the old context"
    missing = subprocess.run(cmd[:-1] + [str(tmp_path / "absent")], capture_output=True, text=True, env=env, cwd=REPO)
    assert missing.returncode == 1 and "is not a directory" in missing.stderr and "Traceback" not in missing.stderr


def test_the_plain_python_default_database_is_under_the_user_data_dir(tmp_path, monkeypatch):
    from pakati_core.store import default_user_dir, resolve_url

    monkeypatch.delenv("PAKATI_DATABASE_URL", raising=False)
    monkeypatch.delenv("PAKATI_USER_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert default_user_dir() == tmp_path / "xdg"
    monkeypatch.setenv("PAKATI_USER_DIR", str(tmp_path / "mine"))
    assert default_user_dir() == tmp_path / "mine"
    assert resolve_url(None, default_user_dir()) == f"sqlite:///{tmp_path / 'mine' / 'pakati' / 'pakati.db'}"
