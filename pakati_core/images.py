"""Images: reading arrays of either convention, resizing, hashing and PNG bytes, in one place.

Pakati computes on float32 ``H x W x 3`` RGB in [0, 1]. What callers hand in varies: ComfyUI
tensors and the core's own results are float in [0, 1], while PIL, OpenCV and the client's
``.array()`` give 8-bit arrays in 0..255. Every public core function that takes an image reads it
through :func:`as_rgb`, which accepts both (uint8 is divided by 255, never clipped to white) and
refuses what it cannot read (booleans, 16-bit values past 255, other dtypes) with
:class:`ImageInputError`. Float pixels are taken as 0..1 and clipped to it.

One NaN policy: non-finite pixels are refused with :class:`NonFiniteError` (naming the input)
everywhere an image is read, converted to 8 bits, hashed or encoded; nothing maps NaN to black.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .errors import ImageInputError
from .finite import require_finite


def unit_float(pixels: Any, field: str = "image", what: str = "the image") -> np.ndarray:
    """Pixels of either convention, any shape, as float32 in the 0..1 convention (not clipped, not copied
    when already float32): uint8 (or any integer array in 0..255) / 255; float as it is. Refuses
    booleans, other dtypes and integers outside 0..255 with :class:`ImageInputError`, NaN/Inf with
    :class:`NonFiniteError`."""
    a = np.asarray(pixels)
    kind = a.dtype.kind
    if kind == "b":
        raise ImageInputError(f"{what} is a boolean array; give 8-bit (0..255) or float (0..1) pixels", field)
    if kind in "ui":
        if a.size and (int(a.min()) < 0 or int(a.max()) > 255):
            raise ImageInputError(
                f"{what} is an integer array with values outside 0..255 ({a.dtype}); only 8-bit (0..255) or float (0..1) pixels are read",
                field,
            )
        return a.astype(np.float32) / np.float32(255.0)
    if kind != "f":
        raise ImageInputError(f"{what} has dtype {a.dtype}; give 8-bit (0..255) or float (0..1) pixels", field)
    f = a.astype(np.float32, copy=False)
    require_finite(f, what, field)
    return f


def as_rgb(image: Any, field: str = "image", min_side: int = 1, what: str = "the image") -> np.ndarray:
    """Any image Pakati accepts as float32 ``H x W x 3`` RGB in [0, 1] (a new array).

    Accepts ``H x W`` (grey), ``H x W x 1`` and ``H x W x 3/4`` (alpha dropped) arrays that are
    uint8 (or any integer array in 0..255, read as 8-bit) or float in [0, 1] (values outside are
    clipped). Refuses other shapes, sides under ``min_side`` and unreadable dtypes with
    :class:`ImageInputError`, and NaN/Inf with :class:`NonFiniteError`.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < min_side:
        raise ImageInputError(f"expected an HxWx3 image of at least {min_side}x{min_side} pixels, got shape {np.shape(image)}", field)
    f = unit_float(a[..., :3], field, what)
    if f.shape[2] == 1:
        f = np.repeat(f, 3, axis=2)
    return np.clip(f, 0.0, 1.0).astype(np.float32, copy=False)


def as_float_mask(mask: Any, field: str = "mask", what: str = "the mask") -> np.ndarray:
    """A mask as float32 ``H x W`` in [0, 1]: float masks as they are (clipped), uint8 ones / 255,
    booleans as 0/1; a trailing channel axis of 1 is dropped. NaN/Inf are refused."""
    a = np.asarray(mask)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ImageInputError(f"expected an HxW mask, got shape {np.shape(mask)}", field)
    if a.dtype.kind == "b":
        return a.astype(np.float32)
    return np.clip(unit_float(a, field, what), 0.0, 1.0).astype(np.float32, copy=False)


def to_uint8(image: Any, field: str = "image") -> np.ndarray:
    """An image (either convention, see :func:`as_rgb`) as ``H x W x 3`` uint8, rounded to nearest."""
    a = np.asarray(image)
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3:
        return a
    return (as_rgb(a, field) * np.float32(255.0)).round().astype(np.uint8)


def image_hash(image: Any) -> str:
    """SHA-256 of the 8-bit pixels and shape: the content key of an image (a uint8 image and its
    float twin hash alike). The key the understanding store has always used."""
    a = to_uint8(image)
    return hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()


def png_bytes(image: Any, max_side: int | None = None, field: str = "image", optimize: bool = False) -> bytes:
    """An image (either convention) as RGB PNG bytes; with ``max_side``, shrunk (Lanczos) to fit it. ``optimize``
    is PIL's smaller, slower encoding (the store's blobs use it; their content keys are over these bytes)."""
    pil = Image.fromarray(to_uint8(image, field), "RGB")
    if max_side and max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=optimize)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Image bytes (PNG/JPEG/WebP) as float32 ``H x W x 3`` in [0, 1]; any alpha channel is dropped."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        rgb = im.convert("RGB")
    return np.asarray(rgb, dtype=np.float32) / np.float32(255.0)


def resize_image(image: np.ndarray, width: int, height: int, enlarge: str = "cubic") -> np.ndarray:
    """Resize an ``H x W (x C)`` image (uint8 or float, see :func:`unit_float`): area averaging to shrink,
    bicubic (or ``enlarge='linear'``) to enlarge; returns float32 clipped to 0..1 (a copy, also when the
    size is already right)."""
    image = unit_float(image)
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image.copy()
    up = cv2.INTER_LINEAR if enlarge == "linear" else cv2.INTER_CUBIC
    interp = cv2.INTER_AREA if width <= w and height <= h else up
    out = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (width, height), interpolation=interp)
    if out.ndim == 2 and np.ndim(image) == 3:
        out = out[..., None]
    return np.clip(out, 0.0, 1.0)


def shrink_to(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled down (area) so its longer side is at most ``max_side`` (float32 in [0, 1]; uint8 is read
    as 0..255); unchanged when it fits."""
    image = unit_float(image)
    h, w = image.shape[:2]
    s = max(h, w)
    if s <= max_side:
        return image
    return resize_image(image, max(1, round(w * max_side / s)), max(1, round(h * max_side / s)))


def fit_to_grid(image: np.ndarray, max_side: int) -> np.ndarray:
    """A float image resized (Lanczos, through 8 bits) so its long side is at most ``max_side`` and both sides
    are multiples of 16 (at least 32): the size reference understanding learns at. Takes uint8 or float
    (see :func:`as_rgb`); returns float32 ``H x W x 3`` in [0, 1]."""
    image = as_rgb(image)
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    nh, nw = max(32, round(h * s / 16) * 16), max(32, round(w * s / 16) * 16)
    if (nh, nw) == (h, w):
        return image
    pil = Image.fromarray(to_uint8(image))
    return np.asarray(pil.resize((nw, nh), Image.Resampling.LANCZOS), np.float32) / 255.0
