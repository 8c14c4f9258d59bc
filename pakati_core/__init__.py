"""Pakati core: region-level control for SDXL, usable without ComfyUI.

Nothing in this package imports ComfyUI; the ComfyUI nodes in ``nodes/`` adapt host objects
to the small functions and protocols defined here.
"""

from .canvas import MAX_REGIONS, REGION_JSON_VERSION, Canvas, Region, mask_region
from .errors import (
    CanvasError,
    CanvasSizeError,
    DuplicateRegionError,
    PakatiError,
    RegionalConditioningError,
    RegionClippedWarning,
    RegionError,
    RegionGeometryError,
    RegionLimitError,
    RegionNotFoundError,
    UnsupportedVersionError,
)

__version__ = "0.1.0"

__all__ = [
    "Canvas",
    "Region",
    "mask_region",
    "MAX_REGIONS",
    "REGION_JSON_VERSION",
    "PakatiError",
    "CanvasError",
    "CanvasSizeError",
    "DuplicateRegionError",
    "RegionClippedWarning",
    "RegionError",
    "RegionGeometryError",
    "RegionLimitError",
    "RegionNotFoundError",
    "RegionalConditioningError",
    "UnsupportedVersionError",
]
