"""Images as stored bytes: PNG encoding, thumbnails, and the content hash used as a key."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from .errors import StoreError

THUMBNAIL_SIDE = 192


def to_uint8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 3 or a.shape[-1] < 3:
        raise StoreError(f"expected an H x W x 3 image, got shape {a.shape}", "image")
    if not np.isfinite(a[..., :3]).all():
        raise StoreError("the image holds NaN or infinite values", "image")
    return (np.clip(a[..., :3], 0, 1) * 255).round().astype(np.uint8)


def image_hash(image: np.ndarray) -> str:
    """SHA-256 of the 8-bit pixels and shape (the same key the understanding store always used)."""
    a = to_uint8(image)
    return hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()


def png_bytes(image: np.ndarray, max_side: int | None = None) -> bytes:
    pil = Image.fromarray(to_uint8(image))
    if max_side and max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_to_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255.0


def content_key(*parts: str | bytes) -> str:
    """SHA-256 over the parts (length-prefixed, so ("ab", "c") and ("a", "bc") differ): a cache key."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else bytes(p)
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()
