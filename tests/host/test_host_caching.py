"""ComfyUI's cache tells the truth: nodes that read a Pakati store are re-run when the store changed,
and served from the cache when nothing changed. Same prompt queued twice on the real server."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import hardening_prompts as hp
from pakati_core.store import open_store

pytestmark = pytest.mark.host


def cached_nodes(entry: dict) -> set[str]:
    for kind, body in entry["status"]["messages"]:
        if kind == "execution_cached":
            return set(body["nodes"])
    return set()


@pytest.fixture(scope="module")
def server(comfy_server):
    hp.provide_photos(comfy_server.base / "input")
    return comfy_server


def test_learn_reference_is_rerun_after_its_store_changed(server):
    store = open_store(user_dir=server.base / "user")  # the server's own database
    prompt = hp.learn_prompt(seed=201)

    def report(entry) -> dict:
        text = entry["outputs"]["3"]["text"][0]
        return {"source": "learned" if text.startswith("Pakati understanding (learned") else "served", "text": text}

    first = server.run(prompt, timeout=300)
    assert report(first)["source"] == "learned" and "3" not in cached_nodes(first)
    # the first run wrote the store: the same prompt now reads it instead of replaying the cached "learned"
    second = server.run(prompt, timeout=300)
    assert "3" not in cached_nodes(second) and report(second)["source"] == "served"
    # nothing changed since: the cache may answer
    third = server.run(prompt, timeout=300)
    assert "3" in cached_nodes(third)
    # the store is emptied by hand: the same prompt must learn again, not replay "served from the store"
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM understandings"))
    fourth = server.run(prompt, timeout=300)
    assert "3" not in cached_nodes(fourth) and report(fourth)["source"] == "learned"
    assert store.understandings.all()


def test_refine_with_learn_is_rerun_after_its_store_changed(server):
    store = open_store(user_dir=server.base / "user")
    learning = hp.refine_prompt(learn=True, seed=202, target=1.0)
    server.run(learning, timeout=300)
    rows = store.what_worked.load()
    assert rows and all(r["version"] == 1 for r in rows)
    # another run changes the store (a record the next run orders its corrections by)
    server.run(hp.refine_prompt(learn=True, seed=203, target=1.0), timeout=300)
    grown = store.what_worked.load()
    assert len(grown) > len(rows)
    again = server.run(learning, timeout=300)
    assert "8" not in cached_nodes(again), "the store changed since: PakatiRefine must run again"
    assert len(store.what_worked.load()) > len(grown)


def test_refine_without_learn_is_served_from_the_cache(server):
    prompt = hp.refine_prompt(learn=False, seed=204, target=1.0)
    first = server.run(prompt, timeout=300)
    assert "8" not in cached_nodes(first)
    # a store change does not matter with learn off: the inputs alone decide
    open_store(user_dir=server.base / "user").what_worked.append([{"version": 1, "action": "tone", "gain": 0.5}])
    second = server.run(prompt, timeout=300)
    assert "8" in cached_nodes(second)
    assert server.images(second, "9")[0].tobytes() == server.images(first, "9")[0].tobytes()
