"""The client writes only inside its output folder, whatever a server's /history says (issue 20, item 4).

A real local HTTP server answers /history with hostile node ids and file names and /view with
bytes; the client's fetch and save path must refuse each with an UnsafeOutputError that names
the server, and write nothing outside (or inside) the folder."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from pakati_core.client import ComfyClient, save_result
from pakati_core.client.api import OutputImage
from pakati_core.client.dispatch import TaskResult
from pakati_core.client.errors import ClientError, UnsafeOutputError

HOSTILE = {
    "traversal id": ("x/../../../escaped", "a.png"),
    "absolute id": ("/tmp/pakati_escape", "a.png"),
    "backslash id": ("..\\..\\escaped", "a.png"),
    "long id": ("9" * 65, "a.png"),
    "script extension": ("9", "a.sh"),
    "no extension": ("9", "README"),
    "html extension": ("9", "page.html"),
    "extension with a slash": ("9", "a.png/../../x.sh"),
}


class Hostile(BaseHTTPRequestHandler):
    outputs: ClassVar[dict] = {}
    views: ClassVar[list] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        if url.path.startswith("/history/"):
            pid = url.path.rsplit("/", 1)[1]
            body = json.dumps({pid: {"outputs": self.outputs, "status": {"status_str": "success", "completed": True}}}).encode()
        elif url.path == "/view":
            type(self).views.append(parse_qs(url.query))
            body = b"#!/bin/sh\necho pwned\n"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hostile_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_history_is_refused_with_the_server_named_and_nothing_written(hostile_server, tmp_path, case):
    node_id, filename = HOSTILE[case]
    Hostile.outputs = {node_id: {"images": [{"filename": filename, "subfolder": "", "type": "output"}]}}
    Hostile.views = []
    client = ComfyClient(hostile_server, retries=0)
    entry = client.history("p1")["p1"]
    with pytest.raises(UnsafeOutputError) as e:
        client.fetch_images(entry)
    assert isinstance(e.value, ClientError) and e.value.server == client.url and client.url in str(e.value)
    assert Hostile.views == [], "nothing is fetched for an output that cannot be written safely"

    # save_result on its own (a result assembled elsewhere) refuses the same ids and names
    out = tmp_path / "deep" / "out"
    result = TaskResult("t1", "done", {}, server=client.url, images=[OutputImage(node_id, filename, "", "output", b"x")])
    with pytest.raises(UnsafeOutputError, match="nothing was written"):
        save_result(result, out)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_safe_outputs_are_fetched_and_saved_inside_the_folder(hostile_server, tmp_path):
    Hostile.outputs = {
        "9": {"images": [{"filename": "ComfyUI_00001_.PNG", "subfolder": "", "type": "output"}]},
        "sampler:12": {"images": [{"filename": "b.webp", "subfolder": "", "type": "temp"}]},
    }
    client = ComfyClient(hostile_server, retries=0)
    images = client.fetch_images(client.history("p1")["p1"])
    assert [im.node_id for im in images] == ["9", "sampler:12"]
    files = save_result(TaskResult("t1", "done", {}, server=client.url, images=images), tmp_path / "out")
    assert [p.rsplit("/", 1)[1] for p in files] == ["t1_node9_0.png", "t1_nodesampler:12_0.webp"]
    assert all((tmp_path / "out").resolve() in Path(p).resolve().parents for p in files)


def test_a_task_id_that_would_leave_the_folder_is_refused(tmp_path):
    result = TaskResult("../../t", "done", {}, server="http://s:1", images=[OutputImage("9", "a.png", "", "output", b"x")])
    with pytest.raises(UnsafeOutputError, match="http://s:1"):
        save_result(result, tmp_path / "out")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
