"""Region prompts from a canvas: the one builder every host uses (the host brings its text encoder)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..canvas import Canvas, Region
from ..errors import RegionalConditioningError
from .regions import RegionPrompt, RegionSet


def regions_from_canvas(
    canvas: Canvas, encode: Callable[[str], Any], encoder_for: Callable[[Region], Callable[[str], Any] | None] | None = None
) -> RegionSet:
    """The canvas's regions as a :class:`RegionSet`, each prompt (and negative, where given) encoded by ``encode``
    (the host's text encoder: text -> embeddings ``[1, tokens, dim]``), or by ``encoder_for(region)`` where that
    gives one (a host that encodes some regions with another encoder; ComfyUI: the CLIP a Pakati Region LoRA bound
    to the region; None: ``encode``).
    An empty prompt is an error naming the region and its index."""
    regions = []
    for i, r in enumerate(canvas.regions):
        if not r.prompt.strip():
            raise RegionalConditioningError(f"region '{r.label}' (regions[{i}]) has an empty prompt", field=f"regions[{i}].prompt")
        enc = (encoder_for(r) if encoder_for is not None else None) or encode
        cond = enc(r.prompt)
        negative = enc(r.negative) if r.negative.strip() else None
        regions.append(RegionPrompt(name=r.label, cond=cond, strength=r.strength, negative=negative, canvas=canvas, canvas_index=i))
    return RegionSet(tuple(regions))
