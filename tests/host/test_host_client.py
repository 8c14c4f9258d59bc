"""The client against real ComfyUI servers (main.py --cpu on loopback ports, the tiny test model).

Server A is the session's ``comfy_server``; B and C are started here, each limited to one CPU
thread. C is killed by the thread-pool test, B by the Ray test (the module's last). The speed of scale-out is measured in
bench/bench_client_scaleout.py, not here.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import need_module
from pakati_core import Canvas
from pakati_core.client import (
    ComfyClient,
    ExecutionError,
    MissingNodeTypeError,
    PromptRejectedError,
    Workflow,
    generate,
)

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
FAST = {"timeout": 10.0, "retries": 2, "backoff": 0.2, "poll_interval": 0.5}


def users_workflow(steps: int = 2) -> Workflow:
    """The regional template as a user would run it: their own loader (here the tiny model) and steps."""
    wf = Workflow.load(REPO / "workflows" / "api" / "regional_sdxl.json")
    wf.prompt["1"] = {"class_type": "PakatiTestTinySDXL", "inputs": {"seed": 0, "model_channels": 32}, "_meta": {"title": "my loader"}}
    wf.prompt["6"]["inputs"].update(steps=steps, sampler_name="euler", scheduler="normal")
    return wf


def small_canvas() -> Canvas:
    """The template's own canvas, scaled to 128 px."""
    return Canvas.from_dict(users_workflow().canvas()).scaled(128, 128)


def start_server(tmp_path_factory, name: str):
    from comfy_client import ComfyServer
    from conftest import HOST, HOST_NODES, NO_HOST_REASON, missing

    if HOST is None:
        missing(NO_HOST_REASON)
    server = ComfyServer(
        HOST,
        tmp_path_factory.mktemp(name),
        packs={"pakati": REPO, "pakati_test_nodes": HOST_NODES / "pakati_test_nodes"},
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    server.start()
    return server


@pytest.fixture(scope="module")
def server_b(tmp_path_factory):
    s = start_server(tmp_path_factory, "comfy_b")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def server_c(tmp_path_factory):
    """A server the tests kill; each test that kills it restarts it first if it is down."""
    s = start_server(tmp_path_factory, "comfy_c")
    yield s
    s.stop()


def ensure_up(server) -> None:
    if server.proc is None or server.proc.poll() is not None:
        server.restart()


def kill(server) -> None:
    server.proc.kill()
    server.proc.wait(30)


def png(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)))


# -- one server -------------------------------------------------------------------------------
def test_http_api_node_types_uploads_and_refusals(comfy_server):
    c = ComfyClient(comfy_server.url, **FAST)
    assert "comfyui_version" in c.system_stats()["system"]
    assert {"PakatiCanvas", "PakatiApplyRegions", "PakatiTestTinySDXL"} <= c.node_types()
    assert c.object_info("PakatiCanvas")["PakatiCanvas"]["category"].startswith("Pakati/")
    q = c.queue()
    assert c.queue_remaining() == len(q) == 0

    prompt = users_workflow().render(canvas=small_canvas(), seed=1)
    with pytest.raises(MissingNodeTypeError) as info:
        c.queue_prompt(dict(prompt, **{"99": {"class_type": "SomeoneElsesNode", "inputs": {}}}))
    assert info.value.missing == {"SomeoneElsesNode": ["99"]}
    assert comfy_server.url in str(info.value) and "SomeoneElsesNode (node 99)" in str(info.value)

    bad = json.loads(json.dumps(prompt))
    bad["2"]["inputs"]["regions"] = json.dumps(
        {
            "version": 1,
            "width": 128,
            "height": 128,
            "regions": [{"id": "a", "shape": "polygon", "points": [[0, 0], [100, 100], [100, 0], [0, 100]]}],
        }
    )
    with pytest.raises(PromptRejectedError) as info:
        c.queue_prompt(bad)
    assert "node 2 (PakatiCanvas)" in str(info.value) and "self-intersecting" in str(info.value)

    from skimage.data import astronaut

    img = np.array(Image.fromarray(astronaut()).resize((64, 48)))
    name = c.upload_image(img)
    assert name.startswith("pakati/pakati_") and c.upload_image(img) == name, "same pixels, same file"
    assert np.array_equal(png(c.view(name.split("/", 1)[1], "pakati", "input")), img)


def test_progress_events_and_node_errors(comfy_server):
    c = ComfyClient(comfy_server.url, **FAST)
    events = []
    res = c.run(users_workflow(steps=2).render(canvas=small_canvas(), seed=3), on_event=events.append)
    steps = [(e.data["value"], e.data["max"]) for e in events if e.type == "progress" and e.node == "6"]
    assert steps[-1] == (2, 2) and all(e.prompt_id == res.prompt_id for e in events)
    assert {"execution_start", "executing", "executed", "execution_success"} <= {e.type for e in events}
    (save,) = res.images_of("8")
    arr = save.array()
    assert arr.shape == (128, 128, 3) and arr.std() > 0

    # A region name only known when the canvas arrives through a link fails at run time.
    prompt = {
        "1": {"class_type": "PakatiCanvas", "inputs": {"width": 64, "height": 64, "regions": small_canvas().scaled(64, 64).to_json()}},
        "2": {
            "class_type": "PakatiRegionMask",
            "inputs": {"canvas": ["1", 0], "region": "no such region", "feather": 0.0, "exclusive": False},
        },
        "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    with pytest.raises(ExecutionError) as info:
        c.run(prompt)
    err = info.value
    assert (err.node_id, err.node_type) == ("2", "PakatiRegionMask") and "no such region" in err.exception_message
    assert "node 2 (PakatiRegionMask) failed" in str(err)


def test_canvas_template_rendered_through_the_users_workflow(comfy_server, server_b):
    """The template's canvas, the user's loader and sampler settings; seeds and servers vary."""
    wf, canvas = users_workflow(), small_canvas()
    one = generate(wf, servers=[comfy_server.url], seeds=[0, 1], canvas=canvas, prompt="a harbour at dusk", client_options=FAST)
    other = generate(wf, servers=[server_b.url], seeds=[0], canvas=canvas, prompt="a harbour at dusk", client_options=FAST)
    assert one.ok and other.ok, (one.to_dict(), other.to_dict())
    a0, a1 = one.results
    (b0,) = other.results
    assert a0.server == comfy_server.url and b0.server == server_b.url
    img = {k: r.images[0].array() for k, r in (("a0", a0), ("a1", a1), ("b0", b0))}
    assert all(r.images[0].node_id == "8" and r.images[1].node_id == "9" for r in (a0, a1, b0))
    assert img["a0"].shape == (128, 128, 3)
    # A runs on every core, B on one thread: float sums differ in the last bits, not more.
    same = np.abs(img["a0"].astype(int) - img["b0"]).mean()
    other_seed = np.abs(img["a0"].astype(int) - img["a1"]).mean()
    assert same < 0.5 and other_seed > 10 * max(same, 0.1), (same, other_seed)
    # What the server ran: our canvas and prompt, the user's loader and sampler settings untouched.
    ran = ComfyClient(comfy_server.url).history(a0.prompt_id)[a0.prompt_id]["prompt"][2]
    assert json.loads(ran["2"]["inputs"]["regions"]) == canvas.to_dict()
    assert ran["3"]["inputs"]["base_prompt"] == "a harbour at dusk" and ran["6"]["inputs"]["seed"] == 0
    assert ran["1"]["inputs"] == wf.prompt["1"]["inputs"]
    assert {k: v for k, v in ran["6"]["inputs"].items() if k != "seed"} == {
        k: v for k, v in wf.prompt["6"]["inputs"].items() if k != "seed"
    }


# -- several servers ----------------------------------------------------------------------------
def test_cli_eight_seeds_over_two_servers_each_image_once(comfy_server, server_b, tmp_path):
    wf_path, canvas_path, out = tmp_path / "mine.json", tmp_path / "layout.json", tmp_path / "out"
    wf_path.write_text(json.dumps(users_workflow().prompt))
    canvas_path.write_text(small_canvas().to_json())
    cmd = [
        sys.executable,
        "-m",
        "pakati_core.client",
        "generate",
        "--workflow",
        str(wf_path),
        "--canvas",
        str(canvas_path),
        "--seeds",
        "0-7",
        "--server",
        comfy_server.url,
        "--server",
        server_b.url,
        "--out",
        str(out),
        "--http-timeout",
        "20",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["done"] == 8 and line["failed"] == 0
    assert "8/8" in proc.stderr, "the progress bar reached the end"
    summary = json.loads((out / "summary.json").read_text())
    seeds = [r["meta"]["seed"] for r in summary["results"]]
    assert sorted(seeds) == list(range(8)) and all(r["status"] == "done" for r in summary["results"])
    by_server = Counter(r["server"] for r in summary["results"])
    assert set(by_server) == {comfy_server.url, server_b.url} and sum(by_server.values()) == 8
    assert {s["url"]: s["done"] for s in summary["servers"]} == dict(by_server)
    saved = sorted(p.name for p in out.glob("*_node8_*.png"))
    assert saved == [f"seed-{s}_node8_0.png" for s in range(8)], "each seed's image exactly once"
    assert sorted(p.name for p in out.glob("*.png")) == sorted(saved + [f"seed-{s}_node9_0.png" for s in range(8)])
    for r in summary["results"]:
        assert r["files"] and all(Path(f).is_file() for f in r["files"])
    assert png((out / "seed-3_node8_0.png").read_bytes()).shape == (128, 128, 3)


def test_tasks_go_to_the_server_with_the_shortest_queue(comfy_server, server_b):
    """A's queue holds someone else's prompts: both of our tasks go to B."""
    other = ComfyClient(comfy_server.url)
    busy = users_workflow(steps=30).render(canvas=Canvas.from_dict(users_workflow().canvas()).scaled(256, 256), seed=5)
    theirs = [other.queue_prompt(busy) for _ in range(3)]
    try:
        assert other.queue_remaining() >= 2
        summary = generate(
            users_workflow(),
            servers=[comfy_server.url, server_b.url],
            seeds=[10, 11],
            canvas=small_canvas(),
            max_inflight=2,
            client_options=FAST,
        )
        assert summary.ok and [r.server for r in summary.results] == [server_b.url, server_b.url]
    finally:
        other.delete_queued(theirs)
        for pid in theirs:
            other.interrupt(pid)


def _check_no_loss_no_duplicates(summary, seeds, killed_url, survivor_url):
    d = summary.to_dict()
    assert summary.ok, d["failures"]
    assert sorted(r.meta["seed"] for r in summary.results) == sorted(seeds)
    assert all(len(r.images) == 2 and [im.node_id for im in r.images] == ["8", "9"] for r in summary.results)
    killed = next(s for s in summary.servers if s.url == killed_url)
    assert not killed.alive and killed.requeued >= 1
    requeued = [r for r in summary.results if any(a.outcome == "server_unavailable" for a in r.attempts)]
    assert requeued and all(r.server == survivor_url for r in requeued)
    assert all(sum(a.outcome == "done" for a in r.attempts) == 1 for r in summary.results), "one result per task"
    json.dumps(d, allow_nan=False)


def test_server_killed_mid_run_loses_no_task(server_b, server_c):
    ensure_up(server_c)
    killed = threading.Event()

    def on_event(ev):
        # Kill C as soon as it starts running one of our prompts (its first node begins).
        if ev.server == server_c.url and ev.type == "executing" and ev.node is not None and not killed.is_set():
            killed.set()
            kill(server_c)

    seeds = list(range(4))
    summary = generate(
        users_workflow(steps=2),
        servers=[server_c.url, server_b.url],
        seeds=seeds,
        canvas=small_canvas(),
        on_event=on_event,
        client_options=FAST,
    )
    assert killed.is_set()
    _check_no_loss_no_duplicates(summary, seeds, server_c.url, server_b.url)


def test_ctrl_c_interrupts_the_running_prompt(server_b, tmp_path):
    wf_path, out = tmp_path / "slow.json", tmp_path / "out"
    wf = users_workflow(steps=400)
    wf_path.write_text(json.dumps(wf.render(canvas=Canvas.from_dict(wf.canvas()).scaled(256, 256))))
    cmd = [
        sys.executable,
        "-m",
        "pakati_core.client",
        "generate",
        "--workflow",
        str(wf_path),
        "--seeds",
        "0-1",
        "--server",
        server_b.url,
        "--out",
        str(out),
        "--quiet",
    ]
    # SIGINT back to its default in the child: a shell that ignores SIGINT (nohup, `cmd &` in a script) passes
    # SIG_IGN down, and Python then installs no KeyboardInterrupt handler, so the Ctrl-C under test would be lost.
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    client = ComfyClient(server_b.url)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not client.queue().running:
            time.sleep(0.1)
        assert client.queue().running, "the prompt never started"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and [r["status"] for r in summary["results"]] == ["interrupted", "interrupted"]
    pid = summary["results"][0]["prompt_id"]
    deadline = time.time() + 30
    while time.time() < deadline and len(client.queue()):
        time.sleep(0.2)
    assert len(client.queue()) == 0, "nothing of ours is left running or waiting"
    status = client.history(pid)[pid]["status"]
    assert status["status_str"] == "error" and "execution_interrupted" in [m[0] for m in status["messages"]]


def test_cli_run_goal_plans_renders_checks_and_replans(comfy_server, server_b, tmp_path):
    wf_path, out, db = tmp_path / "mine.json", tmp_path / "goal", tmp_path / "client.db"
    wf_path.write_text(json.dumps(users_workflow().prompt))
    goal = "a red ball next to a blue box on a green lawn"
    cmd = [
        sys.executable,
        "-m",
        "pakati_core.client",
        "run-goal",
        "--goal",
        goal,
        "--workflow",
        str(wf_path),
        "--width",
        "128",
        "--height",
        "128",
        "--rounds",
        "2",
        "--variants",
        "0-1",
        "--target",
        "1.01",
        "--repair-crop",
        "keep",  # a region-only round samples its crop at its own size, not ~1024² (CPU speed)
        "--server",
        comfy_server.url,
        "--server",
        server_b.url,
        "--out",
        str(out),
        "--database",
        f"sqlite:///{db}",
        "--quiet",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["goal"] == goal and summary["stop_reason"] in ("max_rounds", "no_repairs")
    first = summary["rounds"][0]
    assert json.loads(json.dumps(first["plan"]["canvas"]))["width"] == 128
    assert sorted(r["meta"]["seed"] for r in first["results"]) == [0, 1] and all(r["status"] == "done" for r in first["results"])
    assert {r["server"] for r in first["results"]} == {comfy_server.url, server_b.url}, "the variants ran in parallel on both servers"
    assert len(first["checks"]) == 2 and all(0.0 <= c["score"] <= 1.0 for c in first["checks"])
    assert first["best"]["score"] == max(c["score"] for c in first["checks"])
    if summary["stop_reason"] == "max_rounds":
        second = summary["rounds"][1]
        assert first["repairs"] and any("replanned" in n for n in second["plan"]["notes"])
        assert [t["id"] for t in second["plan"]["tasks"]][-len(first["repairs"]) :] == first["repairs"]
    ran = json.loads(
        ComfyClient(first["results"][0]["server"]).history(first["results"][0]["prompt_id"])[first["results"][0]["prompt_id"]]["prompt"][2][
            "2"
        ]["inputs"]["regions"]
    )
    assert ran == first["plan"]["canvas"], "the plan's canvas is what the server rendered"
    assert png((out / "best.png").read_bytes()).shape == (128, 128, 3)
    assert (out / "plan_final.json").is_file() and json.loads(proc.stdout.splitlines()[-1])["database"] == f"sqlite:///{db}"
    from pakati_core.orchestration import goal_key
    from pakati_core.store import open_store

    records = open_store(f"sqlite:///{db}").context.load_records(goal_key(goal, 128, 128))
    assert {r["kind"] for r in records} == {"plan", "check", "generation"}, "plans, checks and generations are in the database"
    assert sum(r["kind"] == "check" for r in records) == sum(len(r["checks"]) for r in summary["rounds"])


def test_run_goal_redraws_only_the_failed_region_with_a_local_checker(comfy_server, tmp_path, monkeypatch):
    """run-goal (the CLI, in process) with --checker local over the local chat test server: round 0 renders the
    whole image; its check fails on the ball's colour only (the tiny model draws no blue), so round 1 redraws just
    the ball with a region-only prompt built from the user's workflow, and every pixel outside the ball's blend
    band is the round-0 image's."""
    from model_fakes import FakeLocalChatServer, fake_answers
    from pakati_core.client.cli import main
    from pakati_core.orchestration import Plan, check_alignment
    from pakati_core.orchestration.repair import RepairSettings, plan_repairs, repair_blend
    from provider_wire import isolate_provider_env

    isolate_provider_env(monkeypatch, tmp_path)
    wf_path, out = tmp_path / "mine.json", tmp_path / "goal"
    wf_path.write_text(json.dumps(users_workflow().prompt))
    goal = "a blue ball on the left and a cube on the right"
    with FakeLocalChatServer("json_mode", lambda messages: fake_answers(json.dumps(messages))) as chat:
        monkeypatch.setenv("PAKATI_LOCAL_LLM_URL", chat.url)
        argv = ["run-goal", "--goal", goal, "--workflow", str(wf_path), "--width", "128", "--height", "128", "--rounds", "2",
                "--target", "1.01", "--checker", "local", "--checker-model", "llava", "--repair-crop", "keep",
                "--server", comfy_server.url, "--out", str(out), "--no-database", "--quiet"]  # fmt: skip
        assert main(argv) == 0
        assert chat.requests and {r["model"] for r in chat.requests} == {"llava"}, "the local judge answered the checks"
    summary = json.loads((out / "summary.json").read_text())
    first, second = summary["rounds"]
    assert first["kind"] == "whole" and second["kind"] == "regions" and second["regions"] == ["ball"]
    assert any(v["source"] == "judge" for v in first["checks"][0]["check"]["verdicts"])
    assert [r["meta"]["region"] for r in second["results"]] == ["ball"] and second["results"][0]["status"] == "done"
    ran = ComfyClient(comfy_server.url).history(second["results"][0]["prompt_id"])
    prompt = next(iter(ran.values()))["prompt"][2]
    assert prompt["1"]["class_type"] == "PakatiTestTinySDXL", "the user's own loader drew the region"
    assert {n["class_type"] for n in prompt.values()} >= {"PakatiCropRegion", "SetLatentNoiseMask", "PakatiStitchRegion"}
    before = png(Path(next(f for f in first["best"]["files"] if "_node8_" in f)).read_bytes())[..., :3]  # the user's save node
    (after_file,) = second["results"][0]["files"]
    after = png(Path(after_file).read_bytes())[..., :3]
    assert before.shape == after.shape == (128, 128, 3) and np.isfinite(after).all()
    p0 = Plan.from_dict(first["plan"])
    repairs, _ = plan_repairs(p0, check_alignment(before, p0), 128, 128)
    assert [r.region_id for r in repairs] == ["ball"]
    s = RepairSettings()
    changed = (after != before).any(-1)
    assert changed.any() and not changed[repair_blend(repairs, s.grow, s.feather) == 0].any(), "only the ball's pixels changed"
    assert second["checks"][0]["repairs"][0]["prompt"].startswith("(blue:1.4)")


def test_ray_backend_server_killed_mid_run_loses_no_task(comfy_server, server_b):
    """Last in the module: it kills B (a fresh server costs a start and a model build)."""
    need_module("ray", "the Ray backend is optional for users, a test dependency: pip install -e '.[test]'")
    ensure_up(server_b)
    stop = threading.Event()
    killed = threading.Event()

    def watch():  # kill C as soon as one of our prompts runs there
        while not stop.is_set():
            try:
                if server_b.get_json("/queue")["queue_running"]:
                    kill(server_b)
                    killed.set()
                    return
            except OSError:
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    seeds = list(range(4))
    try:
        summary = generate(
            users_workflow(steps=2),
            servers=[server_b.url, comfy_server.url],
            seeds=seeds,
            canvas=small_canvas(),
            backend="ray",
            client_options=FAST,
            ray_options={"init_options": {"num_cpus": 2}},
        )
    finally:
        stop.set()
        watcher.join(10)
    assert killed.is_set() and summary.backend == "ray"
    _check_no_loss_no_duplicates(summary, seeds, server_b.url, comfy_server.url)
