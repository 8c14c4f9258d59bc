"""Typed errors raised by the Pakati core.

Every error carries the offending ``field`` (a JSON path such as ``regions[2].points``) so
that the ComfyUI nodes can name the node, the input and the field in one message.
"""

from __future__ import annotations


class PakatiError(ValueError):
    """Base class of every error the core raises on bad input."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class CanvasError(PakatiError):
    """The canvas itself is invalid (size, version, structure)."""


class CanvasSizeError(CanvasError):
    """Width or height is not a positive multiple of 8 within limits."""


class UnsupportedVersionError(CanvasError):
    """The Region JSON declares a version this build cannot read."""


class RegionError(PakatiError):
    """One region is invalid."""


class RegionGeometryError(RegionError):
    """Too few points, zero area, self-intersection, non-numeric coordinates."""


class RegionLimitError(RegionError):
    """More regions than the regional attention can carry."""


class DuplicateRegionError(RegionError):
    """Two regions share an id."""


class RegionNotFoundError(RegionError):
    """A region looked up by name, id or index does not exist."""


class RegionalConditioningError(PakatiError):
    """Region prompts, masks or conditioning that cannot be combined with the model or latent."""


class RegionClippedWarning(UserWarning):
    """Points outside the canvas were clipped to its border."""


class AttentionMapError(PakatiError):
    """A word, capture or attention-map request that cannot be served (word not in the prompt, nothing recorded)."""


class GoalError(PakatiError):
    """Text the phrase reader (``pakati_core.phrases``) cannot read: a goal or prompt that is empty, too long,
    or names nothing to draw. The planner raises it for goals; ``pakati_core.orchestration`` re-exports it."""


class NonFiniteError(PakatiError):
    """NaN or infinite values where numbers must be finite: an image, a latent, a score or a record.

    Raised instead of returning or storing the values, so a broken model or an fp16 VAE overflow
    is reported where it happened rather than showing up later as ``nan`` scores.
    """


class ImageInputError(PakatiError):
    """An image or mask the core cannot read: wrong shape, an unsupported dtype, or float pixels outside 0..1."""
