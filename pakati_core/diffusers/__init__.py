"""Pakati on diffusers' ``StableDiffusionXLPipeline``, without ComfyUI: the one adapter package for that host.

``regional`` (one-pass regional prompting), ``capture`` (attention maps) and ``excite``
(region-aware Attend-and-Excite) wrap the pipeline UNet's attention processors through one
swapper (``processors``); tokens are found with the pipeline's own tokenizers (``tokens``).
The rules that do not depend on the host (regions from a canvas, subjects of regions, the
regional attention itself) live in ``pakati_core.regional`` and ``pakati_core.attention_maps``.
Needs the optional ``diffusers`` package, imported only when a pipeline runs.
"""

from .capture import CaptureProcessor, capture_attention
from .excite import ExciteProcessor, Exciter, attend_and_excite, run_excited, time_ids
from .processors import BLOCKS, cross_attention_names, wrapped_processors
from .regional import PakatiAttnProcessor, RegionalSDXL, regional_processors
from .tokens import excite_target, prompt_token_ids, text_positions_in, word_positions_in

__all__ = [
    "BLOCKS",
    "CaptureProcessor",
    "ExciteProcessor",
    "Exciter",
    "PakatiAttnProcessor",
    "RegionalSDXL",
    "attend_and_excite",
    "capture_attention",
    "cross_attention_names",
    "excite_target",
    "prompt_token_ids",
    "regional_processors",
    "run_excited",
    "text_positions_in",
    "time_ids",
    "word_positions_in",
    "wrapped_processors",
]
