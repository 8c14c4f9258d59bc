"""pakati_core.store on SQLite and on a real PostgreSQL server: every table, user isolation,
strict JSON, template names, legacy JSON import, migrations on a populated database, and
concurrent writers (no ComfyUI needed)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text

from pakati_core.models.protocols import CallRecord, CallRecorder
from pakati_core.store import (
    Store,
    StoreError,
    StoreUnavailableError,
    TemplateNameError,
    TemplateNotFoundError,
    current_revision,
    get_engine,
    head_revision,
    image_hash,
    import_legacy,
    migrate,
    open_store,
    resolve_url,
)
from pakati_core.store.schema import Base

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CANVAS = {
    "version": 1,
    "width": 64,
    "height": 64,
    "regions": [{"id": "r1", "name": "sky", "shape": "rect", "points": [[0, 0], [64, 24]], "prompt": "blue sky"}],
}


def img(seed: int, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size, 3), dtype=np.float32)


@pytest.fixture
def store(db_url) -> Store:
    return open_store(db_url)


def test_migrations_create_exactly_the_mapped_schema(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = open_store(db_url)
    assert current_revision(store.engine) == head_revision() == "0002"
    with store.engine.connect() as conn:
        diffs = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True, "version_table": "pakati_alembic_version"}), Base.metadata
        )
    assert diffs == [], diffs


def test_history_records_lists_newest_first_with_thumbnails_and_parents(store):
    a = store.runs.add(
        "PakatiRefine",
        image=img(1),
        canvas=CANVAS,
        prompts={"base": "a field"},
        seeds=[7],
        params={"steps": 4, "cfg": 5.0, "sampler": "euler"},
        model_name="tiny.safetensors",
        scores={"overall": 0.8},
        timings={"total_s": 1.5},
        prompt_id="p1",
    )
    b = store.runs.add("PakatiRefine", image=img(2), parent_id=a, scores={"overall": 0.9})
    runs = store.runs.newest()
    assert [r["id"] for r in runs] == [b, a]
    assert runs[1]["canvas"] == CANVAS and runs[1]["seeds"] == [7] and runs[1]["params"]["sampler"] == "euler"
    assert runs[1]["image_hash"] == image_hash(img(1)) and runs[0]["parent_id"] == a
    assert runs[0]["thumbnail"].startswith("data:image/png;base64,")
    assert [r["id"] for r in store.runs.newest(limit=1, offset=1)] == [a]
    assert store.runs.count() == 2 and store.runs.get(a, thumbnails=False)["prompt_id"] == "p1"
    with pytest.raises(StoreError, match="parent"):
        store.runs.add("X", parent_id=10_000)


def test_each_user_sees_only_their_own_rows(store):
    alice, bob = store.for_user("alice"), store.for_user("bob")
    run = alice.runs.add("PakatiRefine", image=img(3))
    alice.templates.save("mine", CANVAS)
    alice.what_worked.append([{"run": "r", "pass": 1, "action": "tone", "gain": 0.1}])
    alice.context.save_record("goal", "plan", {"p": 1})
    assert bob.runs.newest() == [] and bob.runs.get(run) is None and bob.runs.count() == 0
    assert bob.templates.names() == [] and bob.what_worked.load() == [] and bob.context.load_records("goal") == []
    with pytest.raises(TemplateNotFoundError):
        bob.templates.load("mine")
    bob.templates.save("mine", dict(CANVAS, width=128))  # the same name is bob's own
    assert alice.templates.load("mine")["canvas"]["width"] == 64
    with pytest.raises(StoreError, match="no run .* of this user to be the parent"):
        bob.runs.add("X", parent_id=run)  # alice's run cannot be the parent of bob's
    bob.cache.cache_put("plan", "k", {"who": "bob"})
    assert alice.cache.cache_get("plan", "k") is None and bob.cache.cache_get("plan", "k") == ({"who": "bob"}, None)


def test_nan_is_refused_not_written(store):
    with pytest.raises(StoreError, match="scores.overall is nan"):
        store.runs.add("X", scores={"overall": float("nan")})
    with pytest.raises(StoreError, match="inf"):
        store.what_worked.append([{"action": "tone", "gain": float("inf")}])
    with pytest.raises(StoreError, match="NaN"):
        store.runs.add("X", image=np.full((8, 8, 3), np.nan, np.float32))
    assert store.runs.count() == 0 and store.what_worked.load() == []


def test_the_engine_writes_json_through_the_one_strict_writer(store):
    """A JSON column written past the repositories' checks still refuses NaN/Inf: the engine's JSON
    writer is the core's strict_json, which names where the number is; finite values round-trip."""
    from pakati_core.store.schema import Run

    db = store.runs.db
    for bad in (float("nan"), float("-inf")):
        with pytest.raises(StoreError, match=r"cannot be stored as JSON: .*NaN/infinite number at overall\[1\]\.x"):
            with db.session() as s:
                s.add(Run(owner=db.owner, node="X", scores={"overall": [0.5, {"x": bad}]}))
    assert store.runs.count() == 0
    with db.session() as s:
        s.add(Run(owner=db.owner, node="X", scores={"overall": [0.5, {"x": 1e308}]}))
    assert store.runs.count() == 1 and store.runs.newest()[0]["scores"] == {"overall": [0.5, {"x": 1e308}]}


def test_understanding_round_trip_preview_and_format_version(store):
    im = img(4)
    rec = {"image_hash": image_hash(im), "settings": {"fingerprint": "f" * 16}, "summary": "s", "score": 0.5}
    store.understandings.put(rec, im, format_version=1)
    assert store.understandings.get(rec["image_hash"], "f" * 16, 1) == rec
    assert store.understandings.get(rec["image_hash"], "f" * 16, 2) is None
    assert np.abs(store.understandings.image(rec["image_hash"]) - im).max() <= 0.5 / 255 + 1e-6
    store.understandings.put(dict(rec, score=0.7), im, format_version=1)  # replaces, never duplicates
    assert store.understandings.get(rec["image_hash"], "f" * 16, 1)["score"] == 0.7 and len(store.understandings.all()) == 1
    store.understandings.put_preview(rec["image_hash"], "f" * 16, img(5, 32))
    assert store.understandings.preview(rec["image_hash"], "f" * 16).shape == (32, 32, 3)
    assert store.for_user("other").understandings.get(rec["image_hash"], "f" * 16, 1) is None


def test_what_worked_gains_and_references(store):
    store.what_worked.append(
        [
            {"run": "a", "pass": 1, "action": "tone", "gain": 0.1, "kept": True},
            {"run": "a", "pass": 2, "action": "tone", "gain": 0.3},
            {"run": "a", "pass": 2, "action": "colour", "gain": -0.1},
        ]
    )
    gains = store.what_worked.gains()
    assert gains["tone"][0] == 2 and gains["tone"][1] == pytest.approx(0.2) and gains["colour"] == (1, pytest.approx(-0.1))
    assert [r["pass"] for r in store.what_worked.load()] == [1, 2, 2]
    key = store.references.put(img(6), "color", "warm dusk", 1.5)
    assert store.references.put(img(6), "color", "warm dusk", 1.5) == key  # once per image/aspect/description
    assert [(r["image_hash"], r["weight"]) for r in store.references.all()] == [(key, 1.5)]
    assert store.references.image(key).shape == (48, 48, 3)


def test_context_store_protocol_kinds_and_order(store):
    from pakati_core.orchestration import ContextStore
    from pakati_core.orchestration.context import best_plan, goal_key

    assert isinstance(store.context, ContextStore)
    store.context.save_record("goal-1", "plan", {"n": 1})
    store.context.save_record("goal-1", "check", {"n": 2})
    store.context.save_record("goal-1", "plan", {"n": 3})
    store.context.save_record("goal-2", "plan", {"n": 4})
    got = store.context.load_records("goal-1")
    assert [(r["kind"], r["n"]) for r in got] == [("plan", 1), ("check", 2), ("plan", 3)]
    assert all(isinstance(r["time"], float) for r in got) and [r["time"] for r in got] == sorted(r["time"] for r in got)
    assert [r["n"] for r in store.context.load_records("goal-1", "plan")] == [1, 3]
    with pytest.raises(StoreError, match="kind must be one of plan, check, generation"):
        store.context.save_record("goal-1", "dream", {})
    key = goal_key("a cat on a sofa", 256, 256)  # the orchestration reads its best earlier plan back
    store.context.save_record(key, "check", {"plan": {"p": "low"}, "score": 0.4})
    store.context.save_record(key, "check", {"plan": {"p": "high"}, "score": 0.8})
    assert best_plan(store.context, "A cat on a sofa.", 256, 256) == ({"p": "high"}, 0.8)


def test_call_recorder_keeps_no_key_and_no_prompt_unless_allowed(store):
    assert isinstance(store.calls, CallRecorder)
    store.calls.record(
        CallRecord(
            "openai",
            "gpt-image-1",
            "generate",
            2.5,
            True,
            size="1024x1024",
            estimated_cost_usd=0.04,
            prompt="a secret plan",
            extra={"api_key": "sk-abc", "Authorization": "Bearer x", "request_id": "r1", "note": "sk-live-123"},
        )
    )
    (row,) = store.calls.recent()
    assert row["prompt"] is None and row["extra"] == {"request_id": "r1"} and row["estimated_cost_usd"] == 0.04
    assert "sk-" not in json.dumps(row)
    allowed = Store(store.engine, "default", record_prompts=True)
    allowed.calls.record(CallRecord("anthropic", "claude", "ask", 1.0, False, error_kind="RateLimitedError", prompt="describe"))
    assert allowed.calls.recent()[0]["prompt"] == "describe" and allowed.calls.recent()[0]["ok"] is False


def test_content_hash_cache(store):
    assert store.cache.cache_get("delta", "k1") is None
    store.cache.cache_put("delta", "k1", {"overall": 0.5}, b"\x00\x01")
    store.cache.cache_put("delta", "k1", {"overall": 0.5}, b"\x00\x01")  # a second writer is a no-op
    assert store.cache.cache_get("delta", "k1") == ({"overall": 0.5}, b"\x00\x01")
    assert store.for_user("bob").cache.cache_get("delta", "k1") is None


@pytest.mark.parametrize(
    "bad", ["../x", "/etc/passwd", "a/b", "a\\b", "x\x00y", "..", ".hidden", "", "   ", "C:evil", "tab\tname", "n" * 129]
)
def test_template_names_that_could_leave_the_store_are_refused(tmp_path, bad):
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    with pytest.raises(TemplateNameError):
        store.templates.save(bad, CANVAS)
    with pytest.raises(TemplateNameError):
        store.templates.import_document({"format": "pakati.template", "version": 1, "name": bad, "canvas": CANVAS})
    assert store.templates.names() == []
    assert {p.name for p in tmp_path.iterdir()} <= {"p.db", "p.db-shm", "p.db-wal"}  # nothing written beside the database


def test_templates_save_replace_export_import(store, tmp_path):
    store.templates.save("Dusk field", CANVAS, {"refine": {"target": 0.9}}, "a field at dusk", thumbnail=img(7, 300))
    store.templates.save("Dusk field", dict(CANVAS, width=128), {"refine": {"target": 0.95}}, "replaced")
    t = store.templates.load("Dusk field")
    assert t["canvas"]["width"] == 128 and t["settings"]["refine"]["target"] == 0.95 and t["description"] == "replaced"
    assert t["thumbnail_png"].startswith(b"\x89PNG")  # kept from the first save
    path = store.templates.export_file("Dusk field", tmp_path / "exports")
    assert path == tmp_path / "exports" / "Dusk field.json"
    doc = json.loads(path.read_text())
    assert doc["format"] == "pakati.template" and doc["version"] == 1
    other = store.for_user("bob")
    assert other.templates.import_file(path)["name"] == "Dusk field"
    assert other.templates.load("Dusk field")["canvas"] == t["canvas"]
    with pytest.raises(StoreError, match="exists"):
        other.templates.import_file(path)
    with pytest.raises(StoreError, match="format"):
        other.templates.import_document({"name": "x", "canvas": CANVAS})
    with pytest.raises(StoreError, match="Region JSON v1"):
        other.templates.save("y", {"regions": []})
    assert store.templates.delete("Dusk field") and store.templates.names() == [] and other.templates.names() == ["Dusk field"]


def test_legacy_json_is_imported_once_and_left_in_place(store, tmp_path):
    from pakati_core.understanding.learner import FORMAT_VERSION

    base = tmp_path / "pakati"
    (base / "understanding").mkdir(parents=True)
    (base / "refine").mkdir()
    im = img(8)
    key = image_hash(im)
    record = {"image_hash": key, "settings": {"fingerprint": "a" * 16}, "summary": "old"}
    (base / "understanding" / f"{key}.json").write_text(
        json.dumps({"format": "pakati.understanding-store", "version": FORMAT_VERSION, "image_hash": key, "runs": {"a" * 16: record}})
    )
    from PIL import Image

    Image.fromarray((im * 255).round().astype(np.uint8)).save(base / "understanding" / f"{key}.png")
    (base / "understanding" / "notes.json").write_text("{}")  # not a content hash: ignored
    lines = [json.dumps({"version": 1, "run": "r", "pass": 1, "action": "tone", "gain": 0.2})] * 2 + [
        "garbage",
        json.dumps({"version": 9, "action": "x"}),
    ]
    ww = base / "refine" / "what_worked.v1.jsonl"
    ww.write_text("\n".join(lines) + "\n")
    from pakati_core.orchestration import goal_key

    key_g = goal_key("a cat", 64, 64)
    (base / "context").mkdir()  # as the JSON-lines context store of earlier builds wrote it
    (base / "context" / f"{key_g}.plan.jsonl").write_text(json.dumps({"time": 1.0, "plan": {"n": 1}}) + "\n")
    (base / "context" / f"{key_g}.check.jsonl").write_text(json.dumps({"time": 2.0, "plan": {"n": 1}, "score": 0.5}) + "\n")
    assert import_legacy(store, base) == {"understanding": 1, "what_worked": 2, "context": 2}
    assert import_legacy(store, base) == {"understanding": 0, "what_worked": 0, "context": 0}
    assert [r["kind"] for r in store.context.load_records(key_g)] == ["plan", "check"]
    assert store.understandings.get(key, "a" * 16, FORMAT_VERSION)["summary"] == "old"
    assert np.abs(store.understandings.image(key) - im).max() <= 0.5 / 255 + 1e-6
    with ww.open("a") as f:  # an older build appended after the import: only the new line comes in
        f.write(json.dumps({"version": 1, "run": "r", "pass": 2, "action": "colour", "gain": 0.1}) + "\n")
    assert import_legacy(store, base)["what_worked"] == 1
    assert [r["action"] for r in store.what_worked.load()] == ["tone", "tone", "colour"]
    assert ww.exists() and (base / "understanding" / f"{key}.json").exists()


def test_migration_from_the_first_revision_keeps_every_row(db_url):
    engine = create_engine(db_url)
    if engine.dialect.name == "sqlite":
        engine = get_engine(db_url)
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO blobs (sha256, media_type, data, created_at) VALUES ('b1', 'image/png', :d, :t)"), {"d": b"\x89PNG", "t": now}
        )
        for i in range(25):
            conn.execute(
                text(
                    "INSERT INTO runs (owner, created_at, node, prompts, seeds, params, scores, timings, thumbnail, canvas) "
                    "VALUES (:o, :t, 'PakatiRefine', '{}', :s, '{}', :sc, '{}', 'b1', :c)"
                ),
                {
                    "o": "alice" if i % 2 else "bob",
                    "t": now,
                    "s": json.dumps([i]),
                    "sc": json.dumps({"overall": i / 25}),
                    "c": json.dumps(CANVAS),
                },
            )
        conn.execute(
            text(
                "INSERT INTO templates (owner, name, description, canvas, settings, created_at, updated_at) "
                "VALUES ('alice', 't', '', :c, '{}', :t, :t)"
            ),
            {"c": json.dumps(CANVAS), "t": now},
        )
        conn.execute(
            text(
                "INSERT INTO what_worked (owner, run, pass_index, action, gain, kept, record, created_at) "
                "VALUES ('alice', 'r', 1, 'tone', 0.5, :k, '{\"action\": \"tone\"}', :t)"
            ),
            {"t": now, "k": True},
        )
    before = {t: _count(engine, t) for t in ("runs", "blobs", "templates", "what_worked")}
    migrate(engine)
    assert current_revision(engine) == head_revision()
    assert {t: _count(engine, t) for t in before} == before == {"runs": 25, "blobs": 1, "templates": 1, "what_worked": 1}
    store = Store(get_engine(db_url), "alice")
    runs = store.runs.newest(limit=100)
    assert len(runs) == 12 and all(r["parent_id"] is None and r["canvas"] == CANVAS for r in runs)
    assert sorted(r["seeds"][0] for r in runs) == list(range(1, 25, 2)) and runs[0]["thumbnail"] == "data:image/png;base64,iVBORw=="
    child = store.runs.add("PakatiRefine", parent_id=runs[0]["id"])
    assert store.runs.get(child)["parent_id"] == runs[0]["id"]
    assert "parent_id" in {c["name"] for c in inspect(engine).get_columns("runs")}
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []


def _count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()


def _writer(url: str, owner: str, n: int) -> None:
    from pakati_core.store import open_store

    store = open_store(url, owner=owner)
    for i in range(n):
        store.runs.add("PakatiRefine", seeds=[i], scores={"overall": 0.5})
        store.what_worked.append([{"run": owner, "pass": i, "action": "tone", "gain": 0.01}])


def test_two_processes_writing_at_once_lose_nothing(db_url):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_url, f"user{k}", 40)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = open_store(db_url)
    for k in range(2):
        s = store.for_user(f"user{k}")
        assert sorted(r["seeds"][0] for r in s.runs.newest(limit=500, thumbnails=False)) == list(range(40))
        assert len(s.what_worked.load()) == 40


KILL_WRITER = r"""
import sys
sys.path.insert(0, sys.argv[2])
from pakati_core.store import open_store
store = open_store(sys.argv[1])
i = 0
while True:
    rid = store.runs.add("PakatiRefine", seeds=[i], params={"pad": "x" * 2000}, scores={"overall": 0.5})
    print(rid, flush=True)  # printed only after the commit returned
    i += 1
"""


def test_sigkill_mid_writes_loses_no_committed_record_sqlite(tmp_path):
    db = tmp_path / "pakati.db"
    url = f"sqlite:///{db}"
    proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, url, REPO], stdout=subprocess.PIPE, text=True)
    committed = []
    for line in proc.stdout:
        committed.append(int(line))
        if len(committed) >= 150:
            break
    proc.kill()  # SIGKILL, in the middle of the next write
    proc.wait()
    committed += [int(x) for x in proc.stdout.read().split()]
    store = open_store(url)
    ids = {r["id"] for r in store.runs.newest(limit=500, thumbnails=False)}
    assert set(committed) <= ids
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_read_only_and_full_sqlite_give_a_clear_error(tmp_path):
    db = tmp_path / "pakati.db"
    open_store(f"sqlite:///{db}").runs.add("X")
    engine = create_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
    with pytest.raises(StoreUnavailableError, match="read-only"):
        Store(engine).runs.add("X")
    full = get_engine(f"sqlite:///{tmp_path / 'full.db'}")
    migrate(full)
    from sqlalchemy import event

    @event.listens_for(full, "connect")
    def cap(dbapi_conn, _):
        dbapi_conn.execute("PRAGMA max_page_count=1")

    full.dispose()
    with pytest.raises(StoreUnavailableError, match="the disk is full"):
        Store(full).runs.add("X", params={"pad": "y" * 200_000})


def test_url_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("PAKATI_DATABASE_URL", raising=False)
    assert resolve_url(None, tmp_path) == f"sqlite:///{tmp_path / 'pakati' / 'pakati.db'}"
    (tmp_path / "pakati").mkdir()
    (tmp_path / "pakati" / "database.json").write_text(json.dumps({"url": "postgresql+psycopg://u@h/db"}))
    assert resolve_url(None, tmp_path) == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("PAKATI_DATABASE_URL", "sqlite:////x/y.db")
    assert resolve_url(None, tmp_path) == "sqlite:////x/y.db"
    assert resolve_url("sqlite://", tmp_path) == "sqlite://"
    monkeypatch.delenv("PAKATI_DATABASE_URL")
    with pytest.raises(StoreError, match="PAKATI_DATABASE_URL"):
        resolve_url(None, None)


def test_command_line_upgrades_and_reports(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("PAKATI_DATABASE_URL", None)

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "pakati_core.store", *a, "--user-dir", str(tmp_path)], capture_output=True, text=True, env=env, cwd=REPO
        )

    assert json.loads(run("current").stdout)["revision"] is None
    assert json.loads(run("upgrade").stdout)["revision"] == head_revision()
    bad = run("upgrade", "--url", "nope://x")
    assert bad.returncode == 1 and "unknown database kind 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_sqlite_pragmas(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
