"""The test harness itself (tests/harness.py): where it looks for the host, and what PAKATI_REQUIRE_HOST does.

Each check runs pytest (or Python) in a child process on a tiny test in a temporary folder, with
the harness loaded alone (``-p harness``), so the answer does not depend on this machine's host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

TINY = textwrap.dedent("""
    import pytest


    def test_core_arithmetic():
        assert sum(range(5)) == 10


    @pytest.mark.host
    def test_needs_the_host():
        assert len("host") == 4
""")


def run_pytest(tmp_path: Path, *args: str, **env) -> subprocess.CompletedProcess:
    (tmp_path / "test_tiny.py").write_text(TINY)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p harness -p no:cacheprovider\n")
    child_env = {k: v for k, v in os.environ.items() if k not in ("PAKATI_REQUIRE_HOST", "COMFYUI_PATH", "PYTEST_ADDOPTS")}
    child_env["PYTHONPATH"] = os.pathsep.join([str(TESTS), child_env.get("PYTHONPATH", "")])
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args, "test_tiny.py"],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_require_host_with_no_host_fails_before_any_test_runs(tmp_path):
    out = run_pytest(tmp_path, COMFYUI_PATH="/nonexistent", PAKATI_REQUIRE_HOST="1")
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "PAKATI_REQUIRE_HOST=1" in text and "COMFYUI_PATH=/nonexistent holds no ComfyUI main.py" in text, text
    assert "first test that needs it: test_tiny.py::test_needs_the_host" in text, text
    assert "passed" not in text, "the session stops before any test runs"


def test_without_the_flag_the_host_test_skips_with_one_line(tmp_path):
    out = run_pytest(tmp_path, COMFYUI_PATH="/nonexistent")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "1 passed, 1 skipped" in text, text
    assert text.count("NO COMFYUI HOST: host tests skipped (COMFYUI_PATH=/nonexistent holds no ComfyUI main.py)") == 1, text


def test_require_host_with_only_core_tests_selected_runs_them(tmp_path):
    out = run_pytest(tmp_path, "-k", "core", COMFYUI_PATH="/nonexistent", PAKATI_REQUIRE_HOST="1")
    assert out.returncode == 0 and "1 passed, 1 deselected" in out.stdout, out.stdout + out.stderr


def fake_comfyui(folder: Path) -> Path:
    """The two things the harness recognises a ComfyUI folder by: main.py and comfy/."""
    (folder / "comfy").mkdir(parents=True)
    (folder / "main.py").write_text("# a folder laid out like ComfyUI, for the harness's search order\n")
    return folder


def host_found(harness_dir: Path, home: Path, **env) -> str:
    child_env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    child_env.update(HOME=str(home), **env)
    code = "import harness; print(harness.HOST)"
    out = subprocess.run([sys.executable, "-c", code], cwd=harness_dir, env=child_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_comfyui_holding_the_checkout_comes_before_home_and_comfyui_path_before_both(tmp_path):
    holder = fake_comfyui(tmp_path / "holder" / "ComfyUI")
    checkout_tests = holder / "custom_nodes" / "pakati" / "tests"
    checkout_tests.mkdir(parents=True)
    shutil.copy(TESTS / "harness.py", checkout_tests / "harness.py")
    home = tmp_path / "home"
    in_home = fake_comfyui(home / "comfy" / "ComfyUI")
    chosen = fake_comfyui(tmp_path / "chosen")

    assert host_found(checkout_tests, home) == str(holder.resolve())
    assert host_found(checkout_tests, home, COMFYUI_PATH=str(chosen)) == str(chosen.resolve())
    assert host_found(checkout_tests, home, COMFYUI_PATH=str(tmp_path / "empty")) == "None", "no fall-back when COMFYUI_PATH names no host"
    shutil.rmtree(holder / "comfy")
    assert host_found(checkout_tests, home) == str(in_home.resolve())


def test_test_files_have_unique_basenames_and_import_no_other_test_file():
    """pytest's default import mode imports test files by basename, so two test_x.py in different
    folders would collide; shared helpers live in support modules, never in another test file."""
    import ast

    files = sorted(TESTS.rglob("test_*.py"))
    names = [f.name for f in files]
    assert len(files) > 40 and len(set(names)) == len(names), sorted({n for n in names if names.count(n) > 1})
    imports = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            imports += [f"{f.relative_to(TESTS)}: {m}" for m in mods if m.split(".")[0].startswith("test_")]
    assert imports == []
