"""Versioned JSON store of understandings, keyed by the reference's content hash.

One file per reference (``<hash>.json``) holds the runs learned from it, keyed by the settings
fingerprint, plus the reference pixels (``<hash>.png``) so the understanding can hand back an
init image. Writes are atomic (temporary file + rename), so a crash never leaves half a record.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import PakatiError
from ..finite import require_finite, strict_json
from .learner import FORMAT_VERSION

STORE_FORMAT = "pakati.understanding-store"


class StoreError(PakatiError):
    """A store directory or record that cannot be used."""


class UnderstandingStore:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def _json(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise StoreError(f"not a content hash: {key!r}", "key")
        return self.directory / f"{key}.json"

    def _read(self, key: str) -> dict:
        path = self._json(key)
        if not path.exists():
            return {"format": STORE_FORMAT, "version": FORMAT_VERSION, "image_hash": key, "runs": {}}
        data = json.loads(path.read_text())
        if data.get("format") != STORE_FORMAT or data.get("version") != FORMAT_VERSION:
            raise StoreError(f"{path} is {data.get('format')} v{data.get('version')}; this build reads "
                             f"{STORE_FORMAT} v{FORMAT_VERSION} (pass force to relearn and overwrite)", "store")
        return data

    def revision(self) -> str:
        """Changes whenever any stored understanding is written or removed (names, sizes and
        modification times of the records): what a host's cache compares to serve nothing stale."""
        if not self.directory.is_dir():
            return "empty"
        h = hashlib.sha256()
        for path in sorted(self.directory.glob("*.json")):
            st = path.stat()
            h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        return h.hexdigest()[:16]

    def get(self, key: str, fingerprint: str) -> dict | None:
        """The understanding learned from this image with these settings, or None."""
        try:
            return self._read(key)["runs"].get(fingerprint)
        except StoreError:
            return None

    def put(self, record: dict, image: np.ndarray) -> Path:
        key, fp = record["image_hash"], record["settings"]["fingerprint"]
        strict_json(record, "the understanding record", "record")  # NaN/Inf: raise before writing anything
        require_finite(image, "the reference image", "image")
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            data = self._read(key)
        except StoreError:
            data = {"format": STORE_FORMAT, "version": FORMAT_VERSION, "image_hash": key, "runs": {}}
        data["runs"][fp] = record
        self._atomic(self._json(key), strict_json(data, "the understanding store", "record", indent=1).encode())
        png = self.directory / f"{key}.png"
        if not png.exists():
            buf = (np.clip(image[..., :3], 0, 1) * 255).round().astype(np.uint8)
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".png")
            os.close(fd)
            Image.fromarray(buf).save(tmp)
            os.replace(tmp, png)
        return self._json(key)

    def image(self, key: str) -> np.ndarray | None:
        png = self._json(key).with_suffix(".png")
        return np.asarray(Image.open(png).convert("RGB"), np.float32) / 255.0 if png.exists() else None

    def put_preview(self, key: str, fingerprint: str, grid: np.ndarray) -> None:
        require_finite(grid, "the preview grid", "preview")
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".png")
        os.close(fd)
        Image.fromarray((np.clip(grid, 0, 1) * 255).round().astype(np.uint8)).save(tmp)
        os.replace(tmp, self._json(key).with_name(f"{key}-{fingerprint}.preview.png"))

    def preview(self, key: str, fingerprint: str) -> np.ndarray | None:
        png = self._json(key).with_name(f"{key}-{fingerprint}.preview.png")
        return np.asarray(Image.open(png).convert("RGB"), np.float32) / 255.0 if png.exists() else None

    def _atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
