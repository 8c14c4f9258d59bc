"""What the test suite needs from the machine, found once: the ComfyUI host, the browser, PostgreSQL.

The host is ``$COMFYUI_PATH`` when it is set (and only it: a folder without ``main.py`` means no
host, never a fall-back to another one), else the ComfyUI whose ``custom_nodes/`` holds this
checkout, else ``~/comfy/ComfyUI``.

Where something is missing, the tests that need it skip with one line saying what to install.
``PAKATI_REQUIRE_HOST=1`` (``.ci/run`` sets it) turns each of those skips into a failure: when the
selected tests need something missing, the session stops before the first test runs, naming what
is missing and the first test that needs it. ``missing()`` and ``need_module()`` are the one way
for a fixture or a test to skip for a missing tool; nothing else in tests/ calls ``pytest.skip``.

tests/conftest.py re-exports the hooks below; ``python -m pytest -p harness`` loads them alone
(tests/core/test_harness.py runs it so, on a tiny test, to check the harness itself).
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
HOST_NODES = REPO / "tests" / "host_nodes"
REQUIRE_ENV = "PAKATI_REQUIRE_HOST"


def require_host() -> bool:
    """True where PAKATI_REQUIRE_HOST=1: a missing host, browser or database server is a failure."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


def host_candidates() -> list[Path]:
    """Where the host is looked for, in order: $COMFYUI_PATH alone when set; else the ComfyUI that
    holds this checkout (custom_nodes/<pack>), then ~/comfy/ComfyUI."""
    if os.environ.get("COMFYUI_PATH"):
        return [Path(os.environ["COMFYUI_PATH"]).expanduser()]
    candidates = []
    if REPO.parent.name == "custom_nodes":
        candidates.append(REPO.parent.parent)
    candidates.append(Path.home() / "comfy" / "ComfyUI")
    return candidates


def find_host() -> Path | None:
    for c in host_candidates():
        if (c / "main.py").is_file() and (c / "comfy").is_dir():
            return c.resolve()
    return None


HOST = find_host()
if os.environ.get("COMFYUI_PATH"):
    NO_HOST_REASON = f"NO COMFYUI HOST: host tests skipped (COMFYUI_PATH={os.environ['COMFYUI_PATH']} holds no ComfyUI main.py)"
else:
    NO_HOST_REASON = (
        "NO COMFYUI HOST: host tests skipped (set COMFYUI_PATH, or install Pakati into a ComfyUI's custom_nodes/, "
        "or lay one out with ../shared/host/setup.sh; see docs/developers.md)"
    )


def missing(reason: str) -> None:
    """Skip the current test for a missing tool, or fail it where PAKATI_REQUIRE_HOST=1."""
    if require_host():
        pytest.fail(f"{REQUIRE_ENV}=1: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need_module(name: str, install: str) -> ModuleType:
    """Import a test dependency, or skip (fail where PAKATI_REQUIRE_HOST=1) saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"NO {name.upper()}: skipped ({install}; {e})")
        raise  # not reached: missing() always raises


def _needs(item) -> list[str]:
    """What one collected test needs from the machine: host, browser, postgresql."""
    needs = []
    path = Path(str(item.path))
    if item.get_closest_marker("host") or any(path.is_relative_to(REPO / "tests" / folder) for folder in ("host", "browser")):
        needs.append("host")
    if item.get_closest_marker("browser") or "fe" in getattr(item, "fixturenames", ()):
        needs.append("browser")
    callspec = getattr(item, "callspec", None)
    if "postgres_server" in getattr(item, "fixturenames", ()) or (callspec is not None and callspec.params.get("db_url") == "postgresql"):
        needs.append("postgresql")
    return needs


_MISSING: dict[str, str] = {}  # need -> the one line saying why it is missing, for this session's tests


@functools.cache
def missing_reason(need: str) -> str | None:
    """Why this machine cannot give the tests ``need`` (host, browser, postgresql), or None where it can."""
    if need == "host":
        return None if HOST else NO_HOST_REASON
    if need == "browser":
        from browser import browser_missing_reason

        return browser_missing_reason()
    from pg_server import missing_reason as postgres_missing_reason

    return postgres_missing_reason()


def _stop(first: dict[str, str]) -> None:
    lines = [f"{REQUIRE_ENV}=1: the selected tests need what this machine lacks, so the run fails instead of skipping:"]
    lines += [f"  {missing_reason(need)}  (first test that needs it: {nodeid})" for need, nodeid in first.items()]
    pytest.exit("\n".join(lines), returncode=pytest.ExitCode.TESTS_FAILED)


def pytest_configure(config):
    for line in (
        "host: needs a real ComfyUI host (skipped, with one line saying why, where none exists)",
        "browser: drives the real ComfyUI front end in headless Chromium",
        "postgresql: needs a real PostgreSQL server (initdb, pg_ctl)",
    ):
        config.addinivalue_line("markers", line)


def pytest_report_header(config):
    head = f"pakati: ComfyUI host = {HOST}" if HOST else f"pakati: {NO_HOST_REASON}"
    return head + (f" ({REQUIRE_ENV}=1: anything missing fails)" if require_host() else "")


def pytest_itemcollected(item):
    """Fail fast: with PAKATI_REQUIRE_HOST=1 the first collected test that needs something missing stops
    the session at once, unless -k/-m/--deselect may still drop it (then the check below decides)."""
    opt = item.config.option
    if not require_host() or getattr(opt, "keyword", "") or getattr(opt, "markexpr", "") or getattr(opt, "deselect", None):
        return
    first = {need: item.nodeid for need in _needs(item) if missing_reason(need)}
    if first:
        _stop(first)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: only the tests that will run count
def pytest_collection_modifyitems(config, items):
    first: dict[str, str] = {}
    for item in items:
        for need in _needs(item):
            reason = missing_reason(need)
            if reason:
                first.setdefault(need, item.nodeid)
                item.add_marker(pytest.mark.skip(reason=reason))
    _MISSING.clear()
    _MISSING.update({need: missing_reason(need) for need in first})
    if first and require_host():
        _stop(first)


def pytest_terminal_summary(terminalreporter):
    for reason in _MISSING.values():
        terminalreporter.write_line(reason, yellow=True, bold=True)
