"""Delta analysis: how a region differs from its references, as named, signed, explained numbers."""

from __future__ import annotations

from .catalogue import ASPECT_DELTAS, DELTA_SPECS, DeltaSpec
from .features import RegionFeatures, region_features
from .measure import Delta, compare
from .report import DeltaReport, ReferenceResult, analyse
from .view import RegionView, image_view, reference_view

__all__ = [
    "ASPECT_DELTAS",
    "DELTA_SPECS",
    "DeltaSpec",
    "RegionFeatures",
    "region_features",
    "Delta",
    "compare",
    "DeltaReport",
    "ReferenceResult",
    "analyse",
    "RegionView",
    "image_view",
    "reference_view",
]
