"""Reference images annotated with the aspect they stand for.

A reference is plain data (image, description, aspect, optional mask, weight) so that it can be
rebuilt from a workflow's inputs and hashed by content for caches and history records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .errors import PakatiError
from .finite import require_finite
from .images import unit_float

ASPECTS = ("color", "texture", "composition", "lighting", "style", "general")


class ReferenceInputError(PakatiError):
    """A reference image, mask, aspect or weight that cannot be used."""


@dataclass(frozen=True, eq=False)
class Reference:
    """One reference: ``image`` is float32 HxWx3 in [0, 1]; ``mask`` (HxW, [0, 1]) marks the part
    of the reference whose ``aspect`` should be matched; ``weight`` scales its share of the score."""

    image: np.ndarray
    description: str = ""
    aspect: str = "general"
    mask: np.ndarray | None = None
    weight: float = 1.0
    _hash: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        image = unit_float(self.image, "image", "the reference image")
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] < 3 or min(image.shape[:2]) < 8:
            raise ReferenceInputError(f"expected an HxWx3 image of at least 8x8 pixels, got shape {tuple(np.shape(self.image))}", "image")
        require_finite(image[..., :3], "the reference image", "image")
        image = np.ascontiguousarray(np.clip(image[..., :3], 0.0, 1.0))
        if self.aspect not in ASPECTS:
            raise ReferenceInputError(f"unknown aspect '{self.aspect}', expected one of {', '.join(ASPECTS)}", "aspect")
        if not np.isfinite(self.weight) or self.weight <= 0:
            raise ReferenceInputError(f"weight must be a positive number, got {self.weight}", "weight")
        mask = None
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=np.float32)
            if mask.shape != image.shape[:2]:
                raise ReferenceInputError(
                    f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}", "mask"
                )
            require_finite(mask, "the reference mask", "mask")
            mask = np.ascontiguousarray(np.clip(mask, 0.0, 1.0))
            if not (mask > 0).any():
                raise ReferenceInputError("the mask is empty: it selects no pixel of the reference", "mask")
        image.setflags(write=False)
        if mask is not None:
            mask.setflags(write=False)
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "weight", float(self.weight))

    @property
    def content_hash(self) -> str:
        """SHA-256 over pixels, mask, description, aspect and weight (stable across runs)."""
        if not self._hash:
            h = hashlib.sha256()
            h.update(str(self.image.shape).encode())
            h.update(self.image.tobytes())
            h.update(b"mask:" + (self.mask.tobytes() if self.mask is not None else b"none"))
            h.update(f"{self.description}\x00{self.aspect}\x00{self.weight!r}".encode())
            object.__setattr__(self, "_hash", h.hexdigest())
        return self._hash

    def __hash__(self) -> int:
        return hash(self.content_hash)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and other.content_hash == self.content_hash

    def summary(self) -> dict:
        """What history records and reports keep of a reference (no pixels)."""
        h, w = self.image.shape[:2]
        return {
            "description": self.description,
            "aspect": self.aspect,
            "weight": self.weight,
            "size": [w, h],
            "masked": self.mask is not None,
            "hash": self.content_hash[:16],
        }
