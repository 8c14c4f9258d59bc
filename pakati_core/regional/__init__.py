"""Regional prompting: region prompts, their masks, and one-pass regional cross-attention."""
from .attention import RegionalAttention, RegionalOptions, grid_shape, segment_blended_attention
from .regions import RegionPrompt, RegionSet

__all__ = ["RegionalAttention", "RegionalOptions", "RegionPrompt", "RegionSet", "grid_shape", "segment_blended_attention"]
