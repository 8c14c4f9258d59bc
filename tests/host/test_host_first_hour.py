"""A new user's first hour against the real server: the README's queue command, and errors that say the fix.

The server is the session's ``comfy_server`` (``main.py --cpu`` with a throwaway base directory
laid out like a ComfyUI folder: ``custom_nodes/pakati`` is this checkout, ``models/checkpoints``
is empty). The templates name ``sd_xl_base_1.0.safetensors``, which it does not have: exactly
what a user meets before choosing a checkpoint.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pakati_core.client import ComfyClient, PromptRejectedError, Workflow
from pakati_core.client.errors import MissingModel

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_API = REPO / "workflows" / "api" / "regional_sdxl.json"
CKPT = "sd_xl_base_1.0.safetensors"


def readme_block_after(heading: str, starts_with: str) -> str:
    """The first fenced bash line under ``heading`` in README.md that starts with ``starts_with``."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading) :]
    for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL):
        for line in block.splitlines():
            if line.startswith(starts_with):
                return line
    raise AssertionError(f"README.md has no `{starts_with}` command under {heading!r}")


def only_the_checkpoint_is_refused(node_errors: dict) -> None:
    assert set(node_errors) == {"1"}, node_errors
    errors = node_errors["1"]["errors"]
    assert [e["type"] for e in errors] == ["value_not_in_list"] and errors[0]["extra_info"]["input_name"] == "ckpt_name", errors


def test_readmes_curl_works_from_comfyuis_folder(comfy_server):
    """The Run section's curl, run literally by bash from the folder it names (ComfyUI's), reaches /prompt with the
    template: the server's only complaint is the checkpoint the README says to change, as JSON (no `cat` error, no 500)."""
    command = readme_block_after("## Run", "curl ")
    assert "custom_nodes/pakati/workflows/api/" in command and "http://127.0.0.1:8188/" in command
    assert (comfy_server.base / "custom_nodes" / "pakati" / "workflows" / "api" / "regional_sdxl.json").is_file()
    command = command.replace("http://127.0.0.1:8188/", f"{comfy_server.url}/")
    proc = subprocess.run(
        ["bash", "-c", command + " -sS -w '\\n%{http_code}'"],
        cwd=comfy_server.base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    body, status = proc.stdout.rsplit("\n", 1)
    assert status == "400", proc.stdout
    only_the_checkpoint_is_refused(json.loads(body)["node_errors"])
    assert json.loads(TEMPLATE_API.read_text())["1"]["inputs"]["ckpt_name"] == CKPT, "the README names the file's checkpoint"


def test_missing_checkpoint_is_read_from_node_errors_with_its_fix(comfy_server):
    client = ComfyClient(comfy_server.url, timeout=10, retries=1)
    with pytest.raises(PromptRejectedError) as caught:
        client.queue_prompt(Workflow.load(TEMPLATE_API).render(seed=1))
    err = caught.value
    assert err.missing_models == [MissingModel("1", "CheckpointLoaderSimple", "ckpt_name", CKPT, "checkpoints", ())]
    msg = str(err)
    assert "node 1 (CheckpointLoaderSimple) input 'ckpt_name'" in msg
    assert "models/checkpoints/" in msg and "--set 1.ckpt_name=YOUR_FILE.safetensors" in msg and "the server has none" in msg


def test_the_fix_it_names_is_what_the_server_accepts(comfy_server):
    """A file put where the fix says (models/checkpoints/) is offered, and the --set the fix then names passes validation."""
    folder = comfy_server.base / "models" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    placed = folder / "pakati_first_hour.safetensors"
    placed.write_bytes(b"")  # validation only: the loader would refuse an empty file, so nothing is run here
    try:
        client = ComfyClient(comfy_server.url, timeout=10, retries=1)
        with pytest.raises(PromptRejectedError) as caught:
            client.queue_prompt(Workflow.load(TEMPLATE_API).render(seed=1))
        (missing,) = caught.value.missing_models
        assert missing.choices == ("pakati_first_hour.safetensors",)
        assert "--set 1.ckpt_name=pakati_first_hour.safetensors" in missing.fix()
        info = comfy_server.get_json("/object_info/CheckpointLoaderSimple")["CheckpointLoaderSimple"]
        assert "pakati_first_hour.safetensors" in info["input"]["required"]["ckpt_name"][0], "the fix's folder is the one ComfyUI reads"
    finally:
        placed.unlink()


def run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pakati_core.client", *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


def test_cli_generate_names_the_missing_checkpoint_and_its_fix_once(comfy_server, tmp_path):
    proc = run_cli(
        [
            "generate",
            "--workflow",
            str(TEMPLATE_API),
            "--seeds",
            "0-2",
            "--server",
            comfy_server.url,
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
        tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr  # three seeds refused alike: one line
    assert "node 1 (CheckpointLoaderSimple)" in errors[0] and "models/checkpoints/" in errors[0]
    assert "--set 1.ckpt_name=" in errors[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tasks"]["failed"] == 3 and all("models/checkpoints/" in f["error"] for f in summary["failures"])


def test_cli_run_goal_stops_failed_and_says_why(comfy_server, tmp_path):
    proc = run_cli(
        [
            "run-goal",
            "--goal",
            "a red ball on a green lawn",
            "--workflow",
            str(TEMPLATE_API),
            "--width",
            "128",
            "--height",
            "128",
            "--rounds",
            "1",
            "--server",
            comfy_server.url,
            "--out",
            str(tmp_path / "goal"),
            "--no-database",
            "--quiet",
        ],
        tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1])["stop_reason"] == "failed"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--set 1.ckpt_name=" in errors[0] and "models/checkpoints/" in errors[0], proc.stderr
    assert json.loads((tmp_path / "goal" / "summary.json").read_text())["stop_reason"] == "failed"
