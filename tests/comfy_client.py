"""Start the real ComfyUI server on a free loopback port and talk to it over HTTP.

Used by the host tests and the workflow checks: queue API-format prompts on /prompt, follow
/history, fetch outputs with /view.
"""

from __future__ import annotations

import copy
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PromptRejected(Exception):
    """/prompt answered 400: the body holds ComfyUI's validation errors."""

    def __init__(self, body: dict):
        self.body = body
        super().__init__(json.dumps(body)[:2000])


class ExecutionFailed(Exception):
    def __init__(self, status: dict):
        self.status = status
        super().__init__(json.dumps(status)[:4000])


class ComfyServer:
    def __init__(
        self, host: Path, base: Path, packs: dict[str, Path], extra_args: list[str] | None = None, env: dict[str, str] | None = None
    ):
        self.host, self.base, self.packs = Path(host), Path(base), packs
        self.extra_args = extra_args or []
        self.env = env or {}  # extra environment for the server process (e.g. a provider base URL and a test key)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base / "comfyui.log"
        self.client_id = uuid.uuid4().hex

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, timeout: float = 600.0) -> None:  # a loaded shared machine takes minutes to start ComfyUI
        custom = self.base / "custom_nodes"
        custom.mkdir(parents=True, exist_ok=True)
        for name, path in self.packs.items():
            link = custom / name
            if not link.exists():
                link.symlink_to(Path(path).resolve(), target_is_directory=True)
        cmd = [
            sys.executable,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--base-directory",
            str(self.base),
            *self.extra_args,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.host, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get_json("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    def restart(self) -> None:
        self.stop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP -----------------------------------------------------------------------------
    def get_json(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return r.read()

    def post_json(self, path: str, body: dict):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                data = r.read()
                return json.loads(data) if data else None
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                parsed = json.loads(body)
            except json.JSONDecodeError:
                parsed = {"raw": body.decode(errors="replace")}
            if e.code == 400:
                raise PromptRejected(parsed) from None
            raise

    def queue(self, prompt: dict, extra_data: dict | None = None) -> str:
        body = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        return self.post_json("/prompt", body)["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get_json(f"/history/{prompt_id}")
            if prompt_id in hist:
                entry = hist[prompt_id]
                status = entry.get("status", {})
                if status.get("completed") or status.get("status_str") in ("success", "error"):
                    if status.get("status_str") == "error":
                        raise ExecutionFailed(status)
                    return entry
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died:\n{self.log()[-4000:]}")
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s")

    def run(self, prompt: dict, timeout: float = 300.0) -> dict:
        return self.wait(self.queue(prompt), timeout)

    def interrupt(self) -> None:
        self.post_json("/interrupt", {})

    def images(self, entry: dict, node_id: str) -> list[np.ndarray]:
        """The images a node saved or previewed, as uint8 arrays fetched through /view."""
        out = []
        for img in entry["outputs"][node_id]["images"]:
            q = urllib.parse.urlencode({"filename": img["filename"], "subfolder": img.get("subfolder", ""), "type": img["type"]})
            out.append(np.array(Image.open(io.BytesIO(self.get_bytes(f"/view?{q}")))))
        return out


MAX_STEPS = 3  # sampler steps of a template run by the tests


def for_the_test_host(prompt: dict) -> dict:
    """The API prompt with the tiny model in place of the checkpoint (tiny ControlNets, CLIP vision and IP-Adapter
    checkpoints in place of loaded ones), at most MAX_STEPS steps, one learning attempt at 256 px, and one repair round on
    crops at their own size of a 512² render."""
    out = copy.deepcopy(prompt)
    swap_flux_loaders(out)
    for node in out.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["class_type"] = "PakatiTestTinySDXL"
            node["inputs"] = {"seed": 0, "model_channels": 32}
        elif node["class_type"] == "ControlNetLoader":  # seeded by the file name, so two loaders give two ControlNets
            node["class_type"] = "PakatiTestTinyControlNet"
            node["inputs"] = {"seed": 21 + sum(node["inputs"].get("control_net_name", "").encode()) % 1000}
        elif node["class_type"] == "CLIPVisionLoader":
            node["class_type"] = "PakatiTestTinyCLIPVision"
            node["inputs"] = {"seed": 31}
        elif node["class_type"] == "IPAdapterModelLoader":  # the pack's own loader, on the tiny checkpoint in its format
            node["inputs"] = {"ipadapter_file": "pakati_tiny_ipadapter.safetensors"}
        elif node["class_type"] == "PakatiLearnReference":  # CPU speed: seven strategies, one attempt each, at 256 px
            node["inputs"].update(attempts=1, max_side=min(node["inputs"].get("max_side", 256), 256))
        elif node["class_type"] == "PakatiRepairRegions":  # CPU speed: one round, crops at their own size (not ~1024²)
            node["inputs"].update(max_rounds=1, crop="keep")
            for other in out.values():  # and a 512² plan and render (the repair's crops and VAE passes cost the most)
                if other["class_type"] in ("PakatiPlan", "EmptyLatentImage") and other["inputs"].get("width") == 1024:
                    other["inputs"].update(width=512, height=512)
        steps = node["inputs"].get("steps")
        if isinstance(steps, int) and steps > MAX_STEPS:
            node["inputs"]["steps"] = MAX_STEPS
            if isinstance(node["inputs"].get("end_at_step"), int):
                node["inputs"]["end_at_step"] = min(node["inputs"]["end_at_step"], MAX_STEPS)
    return out


FLUX_LOADERS = {"DualCLIPLoader": 1, "VAELoader": 2}  # Flux's separate loaders -> the tiny Flux node's CLIP and VAE outputs


def swap_flux_loaders(prompt: dict) -> None:
    """Flux's UNETLoader becomes the tiny Flux node; DualCLIPLoader and VAELoader are dropped and
    their users wired to the tiny node's CLIP and VAE outputs (in place)."""
    unets = [i for i, n in prompt.items() if n["class_type"] == "UNETLoader"]
    if not unets:
        return
    tiny = unets[0]
    prompt[tiny] = {"class_type": "PakatiTestTinyFlux", "inputs": {"seed": 0, "hidden_size": 64, "depth": 2, "depth_single_blocks": 2}}
    dropped = {i: FLUX_LOADERS[n["class_type"]] for i, n in prompt.items() if n["class_type"] in FLUX_LOADERS}
    for i in dropped:
        del prompt[i]
    for i in unets[1:]:
        dropped[i] = 0
        del prompt[i]
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and value[0] in dropped:
                node["inputs"][name] = [tiny, dropped[value[0]]]


def api_template(name: str) -> dict:
    """``workflows/api/<name>.json`` ready for the test host (see ``for_the_test_host``)."""
    path = Path(__file__).resolve().parent.parent / "workflows" / "api" / f"{name}.json"
    return for_the_test_host(json.loads(path.read_text()))


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # skimage.data photographs, for the templates' LoadImage inputs


def provide_input_images(prompt: dict, input_dir: Path) -> None:
    """Put a real photograph (skimage.data) under every file name a LoadImage node asks for."""
    from skimage import data

    input_dir.mkdir(parents=True, exist_ok=True)
    names = sorted({n["inputs"]["image"] for n in prompt.values() if n["class_type"] in ("LoadImage", "LoadImageMask")})
    for i, name in enumerate(names):
        target = input_dir / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            photo = getattr(data, PHOTOS[i % len(PHOTOS)])()
            Image.fromarray(photo if photo.ndim == 3 else np.stack([photo] * 3, -1)).convert("RGB").save(target)
