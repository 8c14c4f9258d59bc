"""Images as stored bytes: PNG encoding, thumbnails, and the content hash used as a key."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from .. import images as _core_images
from ..errors import ImageInputError, NonFiniteError
from .errors import StoreError

THUMBNAIL_SIDE = 192


@contextmanager
def _as_store_error() -> Iterator[None]:
    """The core's image errors (unreadable shape or dtype, NaN/Inf) as the store's own typed error."""
    try:
        yield
    except (ImageInputError, NonFiniteError) as e:
        raise StoreError(e.message, e.field or "image") from e


def image_hash(image: np.ndarray) -> str:
    """SHA-256 of the 8-bit pixels and shape: :func:`pakati_core.images.image_hash` (the same key the
    understanding store always used), its errors as :class:`StoreError`."""
    with _as_store_error():
        return _core_images.image_hash(image)


def png_bytes(image: np.ndarray, max_side: int | None = None) -> bytes:
    """:func:`pakati_core.images.png_bytes` with ``optimize=True`` (the encoding stored blobs always had, so
    their content keys do not change), its errors as :class:`StoreError`."""
    with _as_store_error():
        return _core_images.png_bytes(image, max_side, optimize=True)


def png_to_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255.0


def content_key(*parts: str | bytes) -> str:
    """SHA-256 over the parts (length-prefixed, so ("ab", "c") and ("a", "bc") differ): a cache key."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else bytes(p)
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()
