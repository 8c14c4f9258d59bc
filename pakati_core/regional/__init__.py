"""Regional prompting: region prompts, their masks, and one-pass regional cross-attention."""

from .attention import RegionalAttention, RegionalOptions, grid_shape, segment_blended_attention
from .gather import GatherPlan, base_where_needed, blend, regional_delta
from .projections import ProjectionCache
from .regions import RegionPrompt, RegionSet

__all__ = [
    "GatherPlan",
    "ProjectionCache",
    "RegionalAttention",
    "RegionalOptions",
    "RegionPrompt",
    "RegionSet",
    "base_where_needed",
    "blend",
    "grid_shape",
    "regional_delta",
    "segment_blended_attention",
]
