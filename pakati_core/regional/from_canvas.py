"""Region prompts from a canvas: the one builder every host uses (the host brings its text encoder)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..canvas import Canvas
from ..errors import RegionalConditioningError
from .regions import RegionPrompt, RegionSet


def regions_from_canvas(canvas: Canvas, encode: Callable[[str], Any]) -> RegionSet:
    """The canvas's regions as a :class:`RegionSet`, each prompt (and negative, where given) encoded by ``encode``
    (the host's text encoder: text -> embeddings ``[1, tokens, dim]``). An empty prompt is an error."""
    regions = []
    for i, r in enumerate(canvas.regions):
        if not r.prompt.strip():
            raise RegionalConditioningError(f"region '{r.label}' has an empty prompt", field=f"regions[{i}].prompt")
        negative = encode(r.negative) if r.negative.strip() else None
        regions.append(
            RegionPrompt(name=r.label, cond=encode(r.prompt), strength=r.strength, negative=negative, canvas=canvas, canvas_index=i)
        )
    return RegionSet(tuple(regions))
