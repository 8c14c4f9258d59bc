"""Where the host tests find cubiq's ComfyUI_IPAdapter_plus (GPL-3.0; never committed to Pakati).

Looked for, in order: ``$PAKATI_IPADAPTER_PLUS`` (a checkout of the pack), the host's
``custom_nodes/ComfyUI_IPAdapter_plus``, and a local bare git mirror of the pack
(``$PAKATI_IPADAPTER_MIRROR``, else ``/work/.mirror/cubiq+ComfyUI_IPAdapter_plus/repo``), from which
the pinned commit is written out once under ``~/.cache/pakati``. Nothing is downloaded at test time.
Where none exists the IP-Adapter tests skip with a loud reason, and fail under
``PAKATI_REQUIRE_HOST=1`` (CI hosts that promise every host dependency).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import torch

PINNED_COMMIT = "9d076a3df0d2763cef5510ec5ab807f6632c39f5"  # cubiq/ComfyUI_IPAdapter_plus, 2025-02-26
PACK_NAME = "ComfyUI_IPAdapter_plus"
DEFAULT_MIRROR = Path("/work/.mirror/cubiq+ComfyUI_IPAdapter_plus/repo")
CACHE = Path.home() / ".cache" / "pakati"


def _is_pack(path: Path) -> bool:
    return (path / "IPAdapterPlus.py").is_file() and (path / "__init__.py").is_file()


def _from_mirror(mirror: Path) -> Path | None:
    target = CACHE / f"{PACK_NAME}-{PINNED_COMMIT[:12]}" / PACK_NAME
    if _is_pack(target):
        return target
    try:
        data = subprocess.run(
            ["git", "--git-dir", str(mirror), "archive", "--format=tar", PINNED_COMMIT], check=True, capture_output=True, timeout=120
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(target, filter="data")
    return target if _is_pack(target) else None


def find_pack(host: Path | None) -> Path | None:
    """A directory holding the pack's source, or None."""
    env = os.environ.get("PAKATI_IPADAPTER_PLUS")
    if env and _is_pack(Path(env)):
        return Path(env).resolve()
    if host is not None and _is_pack(host / "custom_nodes" / PACK_NAME):
        return (host / "custom_nodes" / PACK_NAME).resolve()
    mirror = Path(os.environ.get("PAKATI_IPADAPTER_MIRROR", DEFAULT_MIRROR))
    if (mirror / "HEAD").is_file():
        return _from_mirror(mirror)
    return None


MISSING = (
    "IP-ADAPTER PACK NOT FOUND: the IP-Adapter composition tests need cubiq's ComfyUI_IPAdapter_plus source "
    f"(commit {PINNED_COMMIT[:12]}): set PAKATI_IPADAPTER_PLUS to a checkout, put it in the host's custom_nodes/, "
    "or provide a bare git mirror at PAKATI_IPADAPTER_MIRROR"
)


def require_pack(host: Path | None) -> Path:
    """The pack's directory; skips loudly, or fails under PAKATI_REQUIRE_HOST=1, where it cannot be found."""
    from harness import missing

    found = find_pack(host)
    if found is None:
        missing(MISSING)
    return found


TINY_IPADAPTER_FILE = "pakati_tiny_ipadapter.safetensors"


def server_packs(host: Path | None, base: Path) -> dict[str, Path]:
    """Extra custom-node packs for a test server: the IP-Adapter pack where it is found, with the tiny
    IP-Adapter checkpoint written in its format to ``base/models/ipadapter`` for its own loader."""
    pack = find_pack(host)
    if pack is None:
        return {}
    import importlib.util

    from safetensors.torch import save_file

    here = Path(__file__).resolve().parent / "host_nodes" / "pakati_test_nodes" / "tiny_ipadapter.py"
    spec = importlib.util.spec_from_file_location("pakati_tiny_ipadapter_checkpoint", here)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = base / "models" / "ipadapter"
    target.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.to(torch.float16).contiguous() for k, v in module.tiny_ipadapter_state_dict().items()}, str(target / TINY_IPADAPTER_FILE)
    )
    return {PACK_NAME: pack}
