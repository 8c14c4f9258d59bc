"""Region-only regeneration: crop a region at its own resolution, stitch it back, keep every other pixel.

One concept per module: ``box`` (crop boxes and sampling sizes), ``blend`` (grow/feather and
rings), ``resize``, ``colour`` (Lab matching; the Lab conversion and CIEDE2000 live in ``pakati_core.lab``), ``crop``, ``stitch``,
``canvas_crop`` (regions inside the crop) and ``persistent`` (locked regions, composition, seeds).
"""

from __future__ import annotations

from ..geometry import Box, clip_polygon
from ..lab import mean_ciede2000
from .blend import band_radius, blend_mask, region_blend, ring
from .box import SDXL_NATIVE_AREA, TARGET_MODES, target_size
from .canvas_crop import crop_canvas
from .colour import match_colour
from .crop import RegionCrop, RegionStitch, crop_region
from .errors import EmptyMaskError, LockedRegionError, MaskSizeError, RegenerateError, StitchMismatchError
from .persistent import compose_regions, locked_mask, regeneration_mask, region_seed
from .stitch import stitch_region

__all__ = [
    "Box",
    "RegionCrop",
    "RegionStitch",
    "SDXL_NATIVE_AREA",
    "TARGET_MODES",
    "band_radius",
    "blend_mask",
    "clip_polygon",
    "compose_regions",
    "crop_canvas",
    "crop_region",
    "locked_mask",
    "match_colour",
    "mean_ciede2000",
    "regeneration_mask",
    "region_blend",
    "region_seed",
    "ring",
    "stitch_region",
    "target_size",
    "EmptyMaskError",
    "LockedRegionError",
    "MaskSizeError",
    "RegenerateError",
    "StitchMismatchError",
]
