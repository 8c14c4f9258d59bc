"""Typed errors of region-only regeneration (all :class:`PakatiError`, so nodes can name the input)."""

from __future__ import annotations

from ..errors import PakatiError


class RegenerateError(PakatiError):
    """Region-only regeneration was asked for something it cannot do."""


class EmptyMaskError(RegenerateError):
    """The region's mask covers no pixel, so there is nothing to regenerate."""


class MaskSizeError(RegenerateError):
    """The mask cannot be matched to the image (different aspect ratio or batch size)."""


class LockedRegionError(RegenerateError):
    """A locked region was asked to be regenerated; locked regions are never resampled."""


class StitchMismatchError(RegenerateError):
    """The regenerated crop or the original does not fit the stitch it is pasted with."""
