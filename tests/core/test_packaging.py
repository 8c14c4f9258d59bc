"""The checkout as a Python package: ``pip install`` gives ``pakati_core`` (with its data files) and the
``pakati`` command, and nothing of the ComfyUI side (root __init__.py, nodes/, web/, tests/).

Built from a copy of the checkout (so no build/ or *.egg-info lands in it), offline: ``--no-deps
--no-build-isolation`` use this environment's setuptools. Everything installed is then used from
another directory, where the checkout is not on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA_FILES = (
    "pakati_core/models/models.json",
    "pakati_core/fuzzy/rules/default.json",
    "pakati_core/orchestration/plan.schema.json",
    "pakati_core/phrases/data/nouns.tsv",
    "pakati_core/store/migrations/script.py.mako",
    "pakati_core/store/migrations/env.py",
)

# Run by the installed copy: its data files load, and its migrations build a SQLite database.
USE_INSTALLED = """
import json, sys, pakati_core
from pakati_core.models.registry import shipped_config
from pakati_core.orchestration import plan
from pakati_core.store import open_store
shipped_config()
store = open_store("sqlite:///" + sys.argv[1])
p = plan("a red apple on the left of a blue cup", 512, 512)
print(json.dumps({"file": pakati_core.__file__, "regions": sorted(r["id"] for r in p.canvas["regions"])}))
"""


def pip(*args: str, python: str = sys.executable) -> None:
    cmd = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check", "-q", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout}\n{out.stderr}"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the checkout without its caches and git data."""
    dst = tmp_path_factory.mktemp("src") / "pakati"
    shutil.copytree(
        REPO,
        dst,
        ignore=shutil.ignore_patterns(
            ".git", "__pycache__", "build", "dist", "*.egg-info", ".hypothesis", ".pytest_cache", "artifacts", "results"
        ),
    )
    return dst


def run_elsewhere(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    child_env.update(env)
    out = subprocess.run(cmd, cwd=cwd, env=child_env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
    return out


def test_the_wheel_holds_pakati_core_its_data_and_the_pakati_command_only(source, tmp_path):
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source))
    (wheel,) = (tmp_path / "dist").glob("pakati-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"pakati_core", next(n.split("/")[0] for n in names if ".dist-info/" in n)}, (
        "only pakati_core is installed: no nodes/, web/, tests/ or the pack's root __init__.py"
    )
    assert not [n for n in names if n.endswith(".pyc")]
    for data in DATA_FILES:
        assert data in names, f"{data} missing from the wheel"
    in_tree = {f.relative_to(source).as_posix() for f in (source / "pakati_core").rglob("*") if f.is_file()}
    assert in_tree - set(names) == set(), "every file of pakati_core is in the wheel (a new data file type needs package-data)"
    assert any(n.startswith("pakati_core/store/migrations/versions/") and n.endswith(".py") for n in names)
    entry_points = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "pakati = pakati_core.client.cli:main" in entry_points

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    out = run_elsewhere([sys.executable, "-c", USE_INSTALLED, str(tmp_path / "pakati.db")], elsewhere, PYTHONPATH=str(site))
    used = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(used["file"]).resolve().is_relative_to(site.resolve()) and used["regions"] == ["apple", "cup"]
    helped = run_elsewhere([str(site / "bin" / "pakati"), "--help"], elsewhere, PYTHONPATH=str(site))
    assert "generate" in helped.stdout and "run-goal" in helped.stdout


def test_an_editable_install_imports_from_any_directory_and_leaves_the_comfyui_side_out(source, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip("install", "--no-deps", "--no-build-isolation", "-e", str(source), python=python)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run_elsewhere([python, "-c", USE_INSTALLED, str(tmp_path / "pakati.db")], elsewhere)
    assert Path(json.loads(out.stdout.strip().splitlines()[-1])["file"]).resolve().is_relative_to(source.resolve())
    code = (
        "import importlib.util as u, sys\n"
        "for m in ('nodes', 'web', 'tests', 'pakati'):\n"
        "    s = u.find_spec(m)\n"
        "    print(m, [str(p) for p in (s.submodule_search_locations or [s.origin])] if s else [])"
    )
    found = dict(line.split(" ", 1) for line in run_elsewhere([python, "-c", code], elsewhere).stdout.strip().splitlines())
    assert not [m for m, where in found.items() if str(source) in where], f"the ComfyUI side must not be importable: {found}"
    helped = run_elsewhere([str(venv / "bin" / "pakati"), "run-goal", "--help"], elsewhere)
    assert "--planner" in helped.stdout and "--rounds" in helped.stdout
