"""The store's image keys and blobs come from pakati_core.images and stay what they always were."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from pakati_core import images as core_images
from pakati_core.store import StoreError
from pakati_core.store import images as store_images


def _stored_key(a: np.ndarray) -> str:
    # how the store computed its keys before it used the shared helper (float pixels, clipped, rounded)
    u8 = (np.clip(np.asarray(a, np.float32)[..., :3], 0, 1) * 255).round().astype(np.uint8)
    return hashlib.sha256(str(u8.shape).encode() + u8.tobytes()).hexdigest()


def _optimized_png(a: np.ndarray, max_side: int | None = None) -> bytes:
    pil = Image.fromarray((np.clip(np.asarray(a, np.float32)[..., :3], 0, 1) * 255).round().astype(np.uint8))
    if max_side and max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_hash_and_png_bytes_match_what_the_store_always_wrote(dtype):
    a = (np.random.default_rng(3).random((40, 300, 4)) * 1.2 - 0.1).astype(dtype)
    assert store_images.image_hash(a) == core_images.image_hash(a) == _stored_key(a)
    assert store_images.png_bytes(a) == _optimized_png(a)
    assert store_images.png_bytes(a, 192) == _optimized_png(a, 192)
    assert np.array_equal(store_images.png_to_array(store_images.png_bytes(a)), core_images.decode_image(core_images.png_bytes(a)))


def test_uint8_images_are_read_as_8_bit_not_clipped_to_white():
    u8 = np.random.default_rng(4).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    assert store_images.image_hash(u8) == store_images.image_hash(u8.astype(np.float32) / 255)
    assert store_images.image_hash(u8) != _stored_key(u8)


@pytest.mark.parametrize(
    "bad, match",
    [(np.full((4, 4, 3), np.nan, np.float32), "NaN"), (np.zeros((4, 4, 2), np.float32), "shape"), (np.zeros((4, 4, 3), bool), "boolean")],
)
def test_unreadable_images_raise_the_store_error(bad, match):
    with pytest.raises(StoreError, match=match):
        store_images.image_hash(bad)
    with pytest.raises(StoreError, match=match):
        store_images.png_bytes(bad)
