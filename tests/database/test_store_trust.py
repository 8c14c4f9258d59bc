"""The store's side of issue 20 (trust, round two), on SQLite and on a real PostgreSQL server:
template names are a safe alphabet at save, at import and when old rows are read; an imported
document is validated whole (canvas, settings, references, depth) and gives typed errors, never
AttributeError/KeyError/RecursionError; reads never take SQLite's write lock, and a store that
waits at most N seconds gives up with StoreUnavailableError instead of hanging."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from pakati_core.store import StoreError, StoreUnavailableError, TemplateNameError, open_store, validate_template_name
from pakati_core.store.templates import is_safe_template_name

CANVAS = {
    "version": 1,
    "width": 64,
    "height": 64,
    "regions": [{"id": "r1", "name": "sky", "shape": "rect", "points": [[0, 0], [64, 24]], "prompt": "blue sky"}],
}
XSS = "<img src=x onerror=alert(1)>"


def doc(**over) -> dict:
    return {"format": "pakati.template", "version": 1, "name": "shared", "description": "", "canvas": CANVAS, "settings": {}} | over


@pytest.fixture
def store(db_url):
    return open_store(db_url)


@pytest.mark.parametrize("name", [XSS, "a&b", 'say "hi"', "it's", "x`y", "a;b", "a+b", "50%", "a{b}", "mañana<"])
def test_names_outside_the_safe_alphabet_are_refused_at_save_and_import(store, name):
    with pytest.raises(TemplateNameError, match="letters, digits, spaces"):
        store.templates.save(name, CANVAS)
    with pytest.raises(TemplateNameError):
        store.templates.import_document(doc(name=name))
    assert store.templates.names() == []


@pytest.mark.parametrize("name", ["my template", "Ünïcode (1), v2.x", "नमस्ते दुनिया", "東京 夜景", "Привет-мир_2"])
def test_names_of_any_script_are_kept(store, name):
    assert store.templates.save(name, CANVAS)["name"] == name
    assert store.templates.names() == [name] and store.templates.load(name)["canvas"] == CANVAS


def test_old_rows_with_unsafe_names_are_listed_under_a_safe_display_name_never_dropped(store):
    """A row an earlier build wrote under a name with markup: listed, loaded, exported and deleted under a safe name."""
    store.templates.save("kept", CANVAS)
    with store.engine.begin() as conn:
        for raw in (XSS, "<b>bold</b>", "_b_bold__b_"):
            conn.execute(
                text(
                    "INSERT INTO templates (owner, name, description, canvas, settings, created_at, updated_at) "
                    "VALUES (:o, :n, '', :c, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"o": store.owner, "n": raw, "c": '{"version": 1, "width": 64, "height": 64, "regions": []}'},
            )
    names = store.templates.names()
    assert len(names) == 4 and "kept" in names and "_b_bold__b_" in names
    assert all(is_safe_template_name(n) and validate_template_name(n) == n for n in names), names
    assert not any(c in "".join(names) for c in "<>\"'&=")
    shown = [n for n in names if n.startswith("_img")]
    assert shown == ["_img src_x onerror_alert(1)_"]
    assert store.templates.load(shown[0])["name"] == shown[0]
    assert store.templates.export(shown[0])["name"] == shown[0]
    assert store.templates.delete(shown[0]) and len(store.templates.names()) == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=140))
def test_every_listed_name_is_safe_whatever_was_stored(store, raw):
    """Property: whatever an earlier build stored, validate_template_name accepts each listed name and nothing else is unsafe."""
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM templates WHERE owner = :o"), {"o": store.owner})
        conn.execute(
            text(
                "INSERT INTO templates (owner, name, description, canvas, settings, created_at, updated_at) "
                "VALUES (:o, :n, '', :c, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"o": store.owner, "n": raw.replace("\x00", "")[:128] or "x", "c": '{"version": 1, "width": 8, "height": 8, "regions": []}'},
        )
    (name,) = store.templates.names()
    assert validate_template_name(name) == name
    assert not set(name) & set("<>\"'&=/\\`;{}") and is_safe_template_name(name)
    assert store.templates.load(name)["name"] == name


@pytest.mark.parametrize(
    "bad, field",
    [
        (doc(settings=[1, 2]), "settings"),
        (doc(settings={"references": "nope"}), "settings.references"),
        (doc(settings={"references": [{"image_hash": "../../x"}]}), "settings.references[0]"),
        (doc(settings={"references": [{"image_hash": "a" * 64, "weight": "heavy"}]}), "settings.references[0]"),
        (doc(canvas={"version": 1, "width": "wide", "regions": 7}), "canvas"),
        (doc(canvas={"version": 1, "width": 64, "height": 64, "regions": [{"shape": "blob"}]}), "canvas"),
        (doc(canvas="garbage"), "canvas"),
        (doc(description=["not", "text"]), "description"),
        (doc(name=["x"]), "name"),
        (doc(thumbnail_png_base64=12), "thumbnail_png_base64"),
    ],
)
def test_an_import_is_validated_whole(store, bad, field):
    with pytest.raises(StoreError) as e:
        store.templates.import_document(bad)
    assert e.value.field == field, str(e.value)
    assert store.templates.names() == []


def test_deeply_nested_documents_are_refused_not_a_recursion_error(store):
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    for bad in (doc(settings={"x": deep}), doc(canvas=dict(CANVAS, extra=deep)), doc(extra=deep)):
        with pytest.raises(StoreError, match="nested deeper"):
            store.templates.import_document(bad)


HOLD = textwrap.dedent("""
    import sqlite3, sys, time
    c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO templates (owner, name, description, canvas, settings, created_at, updated_at) "
              "VALUES ('holder', 'h', '', '{}', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    c.execute("ROLLBACK")
""")


def hold_lock(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_reads_do_not_wait_for_another_process_holding_the_write_lock(tmp_path):
    db = tmp_path / "pakati.db"
    store = open_store(f"sqlite:///{db}")
    store.templates.save("mine", CANVAS)
    proc = hold_lock(db, 5)
    try:
        t0 = time.monotonic()
        assert store.templates.names() == ["mine"] and store.runs.count() == 0
        assert time.monotonic() - t0 < 0.5, "a read waited for the writer's lock"
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="lock"):
            store.waiting_at_most(0.3).templates.save("other", CANVAS)
        assert time.monotonic() - t0 < 1.5
    finally:
        proc.wait(timeout=30)


def test_a_bounded_read_gives_up_with_a_clear_error_when_another_session_locks_the_table(postgres_server):
    """On PostgreSQL a read can wait for a lock (ACCESS EXCLUSIVE from another session): a store that waits at most
    0.3 s gives up with StoreUnavailableError, as a route then answers 503. (SQLite in WAL mode never makes a read wait.)"""
    from sqlalchemy import create_engine

    url = postgres_server.new_database()
    store = open_store(url)
    store.templates.save("mine", CANVAS)
    other = create_engine(url)
    with other.connect() as conn, conn.begin():
        conn.execute(text("LOCK TABLE templates IN ACCESS EXCLUSIVE MODE"))
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="another process held the database lock"):
            store.waiting_at_most(0.3).templates.names()
        assert time.monotonic() - t0 < 1.5
    other.dispose()
    assert store.templates.names() == ["mine"]
