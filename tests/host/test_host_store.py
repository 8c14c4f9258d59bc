"""The store inside real ComfyUI: template nodes and Pakati Save Image in-process; through real servers
the history route (a regional generation saved by Pakati Save Image), two servers writing one database
at once, and --multi-user isolation (comfy-user header), ComfyUI's output cache included."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import urllib.parse

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from pakati_core.store import image_hash, open_store
from store_helpers import CANVAS, REPO, call, node_of, put_inputs, queue_as, refine_prompt, regional_prompt, template_prompt

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
    (refs,) = (
        node(comfy, "PakatiReference").execute(image=torch.from_numpy(ref)[None], aspect="color", description="suit", weight=1.5).result
    )
    save = node(comfy, "PakatiSaveTemplate")
    out = save.execute(
        canvas=canvas,
        name="Astronaut",
        description="centre subject",
        settings='{"refine": {"target": 0.9}}',
        references=refs,
        image=torch.from_numpy(ref)[None],
        export_json=True,
    )
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
    with pytest.raises(ValueError) as missing:
        load.execute(name="missing")
    assert str(missing.value).startswith("PakatiLoadTemplate: input 'name': name: no template named 'missing'")
    assert str(missing.value).endswith(" (for user 'default')")
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
    server = ComfyServer(
        HOST, base, packs={"pakati": REPO, "pakati_test_nodes": HOST_NODES / "pakati_test_nodes"}, extra_args=["--multi-user"]
    )
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
    before = store.runs.count()
    ids: list[tuple] = []
    lock = threading.Lock()

    writer = call(server_b, "POST", "/users", {"username": "writer"})[1]  # --multi-user: a prompt of an unknown user is refused

    def queue_many(server, tag, seed, user):
        prompts = [template_prompt(f"{tag}-{i}") for i in range(20)] + ([refine_prompt(seed)] if seed is not None else [])
        for p in prompts:
            pid = queue_as(server, p, user)
            with lock:
                ids.append((server, pid))

    threads = [
        threading.Thread(target=queue_many, args=(comfy_server, "A", 100, None)),
        threading.Thread(target=queue_many, args=(server_b, "B", None, writer)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for server, pid in ids:
        server.wait(pid, timeout=600)
    runs = store.runs.newest(limit=200, thumbnails=False)
    assert store.runs.count() == before + 1
    assert runs[0]["prompt_id"] in {pid for _, pid in ids}
    assert {f"A-{i}" for i in range(20)} <= set(store.templates.names())
    assert {f"B-{i}" for i in range(20)} <= set(store.for_user(writer).templates.names())
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


def saved_png(server, info: dict) -> Image.Image:
    q = urllib.parse.urlencode({"filename": info["filename"], "subfolder": info["subfolder"], "type": info["type"]})
    img = Image.open(io.BytesIO(server.get_bytes(f"/view?{q}")))
    img.load()
    return img


def test_a_regional_generation_saved_by_pakati_save_image_is_in_the_history(comfy_server):
    """The regional_sdxl twin through the server: the image is saved exactly as ComfyUI's SaveImage saves it
    (a plain SaveImage on the same images in the same prompt is the reference), and /pakati/history shows
    the run: canvas, region prompts, seed, sampler settings, the saved pixels' hash, a thumbnail."""
    prompt = regional_prompt(2024)
    save = node_of(prompt, "PakatiSaveImage")
    prompt["90"] = {"class_type": "SaveImage", "inputs": {"images": prompt[save]["inputs"]["images"], "filename_prefix": "plain_save"}}
    pid = queue_as(comfy_server, prompt, None)
    entry = comfy_server.wait(pid, timeout=600)
    (mine,), (plain,) = entry["outputs"][save]["images"], entry["outputs"]["90"]["images"]
    assert mine["type"] == plain["type"] == "output" and mine["subfolder"] == plain["subfolder"] == ""
    assert mine["filename"].startswith("pakati_regional_") and mine["filename"].endswith("_.png")
    a, b = saved_png(comfy_server, mine), saved_png(comfy_server, plain)
    pixels = np.asarray(a.convert("RGB"))
    assert pixels.shape == (128, 128, 3) and np.array_equal(pixels, np.asarray(b.convert("RGB")))
    assert set(a.text) == set(b.text) == {"prompt"} and a.text["prompt"] == b.text["prompt"]
    in_png = json.loads(a.text["prompt"])  # ComfyUI adds each node's fingerprint ("is_changed"): a hash, never a user name
    assert {k: {f: v for f, v in n.items() if f != "is_changed"} for k, n in in_png.items()} == prompt
    assert "default" not in json.dumps(in_png[save]["is_changed"])

    status, hist = call(comfy_server, "GET", "/pakati/history?limit=10")
    assert status == 200
    (run,) = [r for r in hist["runs"] if r["prompt_id"] == pid]
    canvas = json.loads(prompt[node_of(prompt, "PakatiCanvas")]["inputs"]["regions"])
    assert run["node"] == "PakatiSaveImage" and run["canvas"]["width"] == run["canvas"]["height"] == 128
    assert [r["id"] for r in run["canvas"]["regions"]] == [r["id"] for r in canvas["regions"]]
    assert [r["prompt"] for r in run["prompts"]["regions"]] == [r["prompt"] for r in canvas["regions"]]
    assert run["prompts"]["base"] == prompt["3"]["inputs"]["base_prompt"]
    assert run["seeds"] == [2024]
    ks = prompt[node_of(prompt, "KSampler")]["inputs"]
    assert {k: run["params"][k] for k in ("steps", "cfg", "sampler_name", "scheduler", "denoise")} == {
        k: ks[k] for k in ("steps", "cfg", "sampler_name", "scheduler", "denoise")
    }
    assert run["params"]["saved"] == {"filename": mine["filename"], "subfolder": "", "type": "output"}
    assert run["image_hash"] == image_hash(pixels.astype(np.float32) / 255.0), "the hash is the saved file's pixels"
    assert run["thumbnail"].startswith("data:image/png;base64,") and run["timings"]["since_queued_s"] > 0
    assert run["model_name"] is None and run["parent_id"] is None  # the tiny test model has no checkpoint file


def test_each_user_who_queues_the_same_graph_gets_their_own_run_and_template(second_server):
    """--multi-user: ComfyUI's output cache is shared by every user; a second user queueing the very same
    graph must not be answered with the first one's cached save (their run and template would be lost)."""
    server, _ = second_server
    carol = call(server, "POST", "/users", {"username": "carol"})[1]
    dave = call(server, "POST", "/users", {"username": "dave"})[1]
    prompt = regional_prompt(77)
    pid_c = queue_as(server, prompt, carol)
    server.wait(pid_c, timeout=600)
    mine = call(server, "GET", "/pakati/history", user=carol)[1]
    assert mine["total"] == 1 and mine["runs"][0]["prompt_id"] == pid_c and mine["runs"][0]["node"] == "PakatiSaveImage"
    assert call(server, "GET", "/pakati/history", user=dave)[1]["total"] == 0

    pid_d = queue_as(server, prompt, dave)
    entry = server.wait(pid_d, timeout=600)
    assert entry["outputs"][node_of(prompt, "PakatiSaveImage")]["images"], "dave's save ran"
    theirs = call(server, "GET", "/pakati/history", user=dave)[1]
    assert theirs["total"] == 1 and theirs["runs"][0]["prompt_id"] == pid_d
    assert theirs["runs"][0]["image_hash"] == mine["runs"][0]["image_hash"], "same graph, same seed, same image"
    assert call(server, "GET", "/pakati/history", user=carol)[1]["total"] == 1

    tpl = template_prompt("same graph")
    server.wait(queue_as(server, tpl, carol), timeout=300)
    server.wait(queue_as(server, tpl, dave), timeout=300)
    assert "same graph" in call(server, "GET", "/pakati/templates", user=dave)[1]["templates"]


def save_image_node(comfy, prompt: dict | None, node_id: str | None, extra: dict | None = None):
    """PakatiSaveImage with its hidden inputs set, as ComfyUI's executor prepares it."""
    return node(comfy, "PakatiSaveImage").PREPARE_CLASS_CLONE({"PROMPT": prompt, "UNIQUE_ID": node_id, "EXTRA_PNGINFO": extra})


@pytest.fixture
def output_dir(comfy, tmp_path):
    import folder_paths

    old = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(tmp_path / "output"))
    yield tmp_path / "output"
    folder_paths.set_output_directory(old)


def test_a_read_only_database_still_saves_the_images_and_logs_why(comfy, output_dir, tmp_path, monkeypatch, caplog):
    db = tmp_path / "ro.db"
    open_store(f"sqlite:///{db}").runs.add("Earlier")
    monkeypatch.setenv("PAKATI_DATABASE_URL", f"sqlite:///file:{db}?mode=ro&uri=true")
    images = torch.rand(2, 40, 56, 3, generator=torch.Generator().manual_seed(0))
    prompt = regional_prompt(5)
    with caplog.at_level("ERROR", logger="pakati"):
        out = save_image_node(comfy, prompt, node_of(prompt, "PakatiSaveImage")).execute(images=images, filename_prefix="ro_test")
    saved = out.ui["images"]
    assert [s["filename"] for s in saved] == ["ro_test_00001_.png", "ro_test_00002_.png"]
    for s, img in zip(saved, images):
        png = Image.open(output_dir / s["filename"])
        assert np.array_equal(np.asarray(png), np.clip(255.0 * img.numpy(), 0, 255).astype(np.uint8))
        assert json.loads(png.text["prompt"]) == prompt
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "the history of this PakatiSaveImage run was not recorded (the images are saved)" in logged and "read-only" in logged
    assert open_store(f"sqlite:///{db}").runs.count() == 1


def test_the_run_whose_canvas_the_sidebar_loaded_becomes_the_parent(comfy, output_dir, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    monkeypatch.setenv("PAKATI_DATABASE_URL", url)
    store = open_store(url)
    earlier = store.runs.add("PakatiSaveImage")
    someone_elses = store.for_user("someone else").runs.add("PakatiSaveImage")
    prompt = regional_prompt(9)
    save, canvas_id = node_of(prompt, "PakatiSaveImage"), node_of(prompt, "PakatiCanvas")
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(1))
    for hint, parent in ((earlier, earlier), (someone_elses, None), (10**6, None)):
        workflow = {"nodes": [{"id": int(canvas_id), "type": "PakatiCanvas", "properties": {"pakati_run": hint}}]}
        save_image_node(comfy, prompt, save, {"workflow": workflow}).execute(images=image, filename_prefix="parent")
        run = store.runs.newest(limit=1)[0]
        assert run["parent_id"] == parent, hint
    assert run["canvas"]["width"] == 128 and run["seeds"] == [9] and run["params"]["sampler_name"] == "dpmpp_2m"
    assert json.loads(Image.open(output_dir / run["params"]["saved"]["filename"]).text["workflow"]) == workflow


def test_nodes_that_read_a_users_rows_are_cached_per_user(comfy, tmp_path, monkeypatch):
    """fingerprint_inputs (ComfyUI's cache key) differs between users and is stable for one user."""
    from conftest import loaded_pack

    persistence = sys.modules[loaded_pack().__name__ + ".nodes.persistence"]
    monkeypatch.setenv("PAKATI_DATABASE_URL", f"sqlite:///{tmp_path / 'f.db'}")
    nodes = {
        "PakatiSaveImage": {},
        "PakatiSaveTemplate": {},
        "PakatiLoadTemplate": {"name": "x"},
        "PakatiLearnReference": {},
        "PakatiRefine": {"learn": True},
        "PakatiPlan": {},
        "PakatiCheckAlignment": {},
        "PakatiAskVision": {},
    }

    def fingerprint(cls: str, user: str, inputs: dict) -> str:
        token = persistence.request_user.set(user)
        try:
            return node(comfy, cls).fingerprint_inputs(**inputs)
        finally:
            persistence.request_user.reset(token)

    for cls, inputs in list(nodes.items()) + [("PakatiRefine", {"learn": False})]:
        a, b = fingerprint(cls, "alice", inputs), fingerprint(cls, "bob", inputs)
        assert a != b and a == fingerprint(cls, "alice", inputs), (cls, inputs)
