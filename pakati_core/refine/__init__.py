"""Reference-guided refinement: measure, ask the fuzzy rules, correct cheaply, regenerate what still misses."""

from __future__ import annotations

from ..masks import paste_masked
from .correct import correct_region, match_region_statistics, tone_colour_deltas
from .loop import STOP_REASONS, RefineResult, RefineSettings, refine
from .protocols import RefineInterrupted, Regenerator, RegenParams
from .store import STORE_VERSION, WhatWorkedStore

__all__ = [
    "correct_region",
    "match_region_statistics",
    "paste_masked",
    "tone_colour_deltas",
    "RefineResult",
    "RefineSettings",
    "STOP_REASONS",
    "refine",
    "RefineInterrupted",
    "RegenParams",
    "Regenerator",
    "STORE_VERSION",
    "WhatWorkedStore",
]
