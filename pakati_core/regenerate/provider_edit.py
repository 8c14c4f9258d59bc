"""Region edits with a provider that treats the mask as guidance: crop, edit, paste back through Pakati's own mask.

The provider may repaint anything it is sent, so its result only enters the image through the
blend mask (the region grown and feathered, exactly 0 beyond its band): every pixel outside
mask + band is the input's, bit for bit. Reuses the region-regeneration geometry
(``geometry``, ``regenerate.blend``) and the exact masked paste (``masks.paste_masked``). A region-
editing feature, so it lives with region regeneration; the provider layer only supplies the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..geometry import fit_box, pad_box
from ..images import resize_image, unit_float
from ..masks import paste_masked
from ..models.images import nearest_size
from ..models.protocols import ImageBackend
from .blend import band_radius, blend_mask
from .box import support_box
from .errors import MaskSizeError


@dataclass
class RegionEditResult:
    image: np.ndarray  # [H, W, 3] float32
    blend: np.ndarray  # [H, W] float32, where the provider's pixels entered
    info: dict = field(default_factory=dict)


def edit_region(
    backend: ImageBackend,
    image: np.ndarray,
    mask: np.ndarray,
    prompt: str,
    grow: int = 8,
    feather: float = 16.0,
    context: int = 32,
    quality: str | None = None,
    check_interrupt: Callable[[], None] | None = None,
    keep: np.ndarray | None = None,
) -> RegionEditResult:
    """``image`` with the region ``mask > 0`` edited by ``backend`` and pasted back with a feathered mask.

    The crop sent is the region's box plus ``context`` pixels, grown to the aspect of the
    nearest size the model takes, so the provider's fitting is a plain rescale. ``keep`` (1 =
    locked, e.g. a canvas's locked regions) is taken out of the blend mask. ``image`` is uint8 (0..255)
    or float (0..1); the result is float32 in [0, 1].
    """
    image = unit_float(image)[..., :3]
    mask = np.asarray(mask, np.float32)
    h, w = image.shape[:2]
    if mask.shape != (h, w):
        raise MaskSizeError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}", field="mask")
    blend = blend_mask(mask, grow, feather)
    if keep is not None:
        blend = (blend * (1.0 - np.clip(np.asarray(keep, np.float32), 0.0, 1.0))).astype(np.float32)
    box = pad_box(support_box(blend), context, w, h)
    sizes = getattr(getattr(backend, "resolved", None), "spec", None)
    allowed = sizes.sizes if sizes is not None else ()
    if allowed:
        tw, th = nearest_size(box.width, box.height, allowed)
        box = fit_box(box, tw, th, w, h, exact=False)
    crop = image[box.y0 : box.y1, box.x0 : box.x1]
    crop_mask = blend[box.y0 : box.y1, box.x0 : box.x1]
    if check_interrupt:
        check_interrupt()
    notes: list[str] = []
    detailed = getattr(backend, "edit_detailed", None)
    if detailed is not None:
        res = detailed(crop, crop_mask, prompt, quality=quality)
        edited, notes, sent = res.image, list(res.notes), list(res.sent_size)
    else:
        edited, sent = backend.edit(crop, crop_mask, prompt), [box.width, box.height]
    if edited.shape[:2] != crop.shape[:2]:
        notes.append(f"the backend returned {edited.shape[1]}x{edited.shape[0]} for a {box.width}x{box.height} crop; resized")
        edited = resize_image(edited, box.width, box.height)
    full = image.copy()
    full[box.y0 : box.y1, box.x0 : box.x1] = edited[..., :3]
    out = paste_masked(image, full, blend)
    info = {
        "model": getattr(backend, "name", type(backend).__name__),
        "image_size": [w, h],
        "crop_box": list(box.as_tuple()),
        "sent_size": sent,
        "band_px": band_radius(grow, feather),
        "changed_pixels": int((blend > 0).sum()),
        "size_handling": notes or [f"crop {box.width}x{box.height} sent as is"],
    }
    return RegionEditResult(out, blend, info)
