"""The store inside real ComfyUI: template nodes in-process; through real servers the history
route, two servers writing one database at once, and --multi-user isolation (comfy-user header)."""
from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from pakati_core.store import open_store
from store_helpers import CANVAS, REPO, call, put_inputs, queue_as, refine_prompt, template_prompt

pytestmark = pytest.mark.host



def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


@pytest.fixture
def user_dir(comfy, tmp_path):
    import folder_paths

    old = folder_paths.get_user_directory()
    folder_paths.set_user_directory(str(tmp_path / "user"))
    yield tmp_path / "user"
    folder_paths.set_user_directory(old)


def test_template_nodes_save_export_load_and_refuse_bad_names(comfy, user_dir):
    (canvas,) = node(comfy, "PakatiCanvas").execute(width=128, height=128, regions=json.dumps(CANVAS)).result
    ref = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((64, 64)), np.float32) / 255
    (refs,) = node(comfy, "PakatiReference").execute(image=torch.from_numpy(ref)[None], aspect="color", description="suit",
                                                     weight=1.5).result
    save = node(comfy, "PakatiSaveTemplate")
    out = save.execute(canvas=canvas, name="Astronaut", description="centre subject", settings='{"refine": {"target": 0.9}}',
                       references=refs, image=torch.from_numpy(ref)[None], export_json=True)
    doc = json.loads(out.result[0])
    assert doc["format"] == "pakati.template" and doc["canvas"] == canvas.to_dict() and doc["thumbnail_png_base64"]
    assert "Saved template 'Astronaut' (1 regions, 1 references)" in out.ui.as_dict()["text"][0]
    exported = user_dir / "default" / "pakati" / "templates" / "Astronaut.json"
    assert json.loads(exported.read_text()) == doc

    load = node(comfy, "PakatiLoadTemplate")
    assert "Astronaut" in load.define_schema().inputs[0].options
    assert load.validate_inputs(name="Astronaut") is True
    c, settings, refs2, description = load.execute(name="Astronaut").result
    assert c.to_dict() == canvas.to_dict() and json.loads(settings) == {"refine": {"target": 0.9}} and description == "centre subject"
    assert len(refs2) == 1 and refs2[0].aspect == "color" and refs2[0].weight == 1.5
    assert np.abs(refs2[0].image - refs[0].image).max() <= 0.5 / 255 + 1e-6

    for bad in ("../x", "/etc/passwd", "a\x00b", ".."):
        msg = save.validate_inputs(name=bad, settings="")
        assert isinstance(msg, str) and msg.startswith("PakatiSaveTemplate: input 'name':"), msg
    assert "not strict JSON" in save.validate_inputs(name="ok", settings='{"a": NaN}')
    assert load.validate_inputs(name="missing").startswith("PakatiLoadTemplate: input 'name': name: no template named 'missing'")
    assert not (user_dir.parent / "x").exists() and list((user_dir / "default" / "pakati" / "templates").iterdir()) == [exported]


@pytest.fixture(scope="module")
def second_server(comfy_server, tmp_path_factory):
    """A second ComfyUI server, --multi-user, writing the first server's SQLite database (PAKATI_DATABASE_URL)."""
    from comfy_client import ComfyServer
    from conftest import HOST, HOST_NODES

    db = comfy_server.base / "user" / "pakati" / "pakati.db"
    open_store(f"sqlite:///{db}")  # the first server creates it on first use; make sure it exists
    base = tmp_path_factory.mktemp("comfy_second")
    old = os.environ.get("PAKATI_DATABASE_URL")
    os.environ["PAKATI_DATABASE_URL"] = f"sqlite:///{db}"
    server = ComfyServer(HOST, base, packs={"pakati": REPO, "pakati_test_nodes": HOST_NODES / "pakati_test_nodes"},
                         extra_args=["--multi-user"])
    try:
        server.start()
    finally:
        if old is None:
            os.environ.pop("PAKATI_DATABASE_URL")
        else:
            os.environ["PAKATI_DATABASE_URL"] = old
    put_inputs(comfy_server.base)
    put_inputs(base)
    try:
        yield server, db
    finally:
        server.stop()


def test_two_servers_writing_one_database_at_once_lose_nothing(comfy_server, second_server):
    """Both servers get a burst of template saves at once (fast writes that overlap); the first one a refinement too."""
    server_b, db = second_server
    store = open_store(f"sqlite:///{db}")
    before = store.count_runs()
    ids: list[tuple] = []
    lock = threading.Lock()

    def queue_many(server, tag, seed):
        prompts = [template_prompt(f"{tag}-{i}") for i in range(20)] + ([refine_prompt(seed)] if seed is not None else [])
        for p in prompts:
            pid = queue_as(server, p, None)
            with lock:
                ids.append((server, pid))

    threads = [threading.Thread(target=queue_many, args=(comfy_server, "A", 100)),
               threading.Thread(target=queue_many, args=(server_b, "B", None))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for server, pid in ids:
        server.wait(pid, timeout=600)
    runs = store.list_runs(limit=200, thumbnails=False)
    assert store.count_runs() == before + 1
    assert runs[0]["prompt_id"] in {pid for _, pid in ids}
    assert {f"{t}-{i}" for t in "AB" for i in range(20)} <= set(store.template_names())
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"

    status, hist = call(comfy_server, "GET", "/pakati/history?limit=2")
    assert status == 200 and hist["user"] == "default" and hist["total"] == before + 1 and len(hist["runs"]) == min(2, before + 1)
    newest = hist["runs"][0]
    assert newest["node"] == "PakatiRefine" and newest["thumbnail"].startswith("data:image/png;base64,")
    assert newest["canvas"]["regions"][0]["name"] == "subject" and newest["model_name"] is None
    assert newest["params"]["steps"] == 1 and 0 <= newest["scores"]["overall"] <= 1 and newest["scores"]["stop_reason"]
    assert call(comfy_server, "GET", "/pakati/history?limit=0")[0] == 400
    assert call(comfy_server, "GET", "/pakati/history?offset=x")[0] == 400


def test_multi_user_history_and_templates_are_each_users_own(comfy_server, second_server):
    server, _ = second_server
    alice = call(server, "POST", "/users", {"username": "alice"})[1]
    bob = call(server, "POST", "/users", {"username": "bob"})[1]
    pid = queue_as(server, refine_prompt(300), alice)
    server.wait(pid, timeout=600)
    tpl = template_prompt("alice only")
    server.wait(queue_as(server, tpl, alice), timeout=300)

    status, mine = call(server, "GET", "/pakati/history", user=alice)
    assert status == 200 and mine["user"] == alice and mine["total"] == 1 and mine["runs"][0]["prompt_id"] == pid
    status, theirs = call(server, "GET", "/pakati/history", user=bob)
    assert status == 200 and theirs["total"] == 0 and theirs["runs"] == []
    # the first server (single user, same database) shows "default" runs only
    assert pid not in {r["prompt_id"] for r in call(comfy_server, "GET", "/pakati/history?limit=200")[1]["runs"]}
    status, body = call(server, "GET", "/pakati/history", user="mallory")
    assert status == 403 and "Unknown user" in body["error"]

    assert call(server, "GET", "/pakati/templates", user=alice)[1] == {"templates": ["alice only"]}
    assert call(server, "GET", "/pakati/templates", user=bob)[1] == {"templates": []}
    info_a = call(server, "GET", "/object_info/PakatiLoadTemplate", user=alice)[1]
    info_b = call(server, "GET", "/object_info/PakatiLoadTemplate", user=bob)[1]
    assert "alice only" in json.dumps(info_a) and "alice only" not in json.dumps(info_b)
    status, doc = call(server, "GET", "/pakati/templates/export?name=alice%20only", user=alice)
    assert status == 200 and doc["name"] == "alice only"
    assert call(server, "GET", "/pakati/templates/export?name=alice%20only", user=bob)[0] == 404
    assert call(server, "POST", "/pakati/templates/import", dict(doc, name="../escape"), user=bob)[0] == 400
    assert call(server, "POST", "/pakati/templates/import", doc, user=bob)[1] == {"name": "alice only"}
    assert call(server, "GET", "/pakati/templates", user=bob)[1] == {"templates": ["alice only"]}

    bad = json.loads(json.dumps(tpl))
    bad["2"]["inputs"]["name"] = "../../etc/x"
    status, body = call(server, "POST", "/prompt", {"prompt": bad}, alice)
    assert status == 400 and "PakatiSaveTemplate: input 'name':" in json.dumps(body)
