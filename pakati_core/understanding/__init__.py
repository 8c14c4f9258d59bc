"""Reference understanding: learn a reference by reconstructing it from masked views."""

from __future__ import annotations

from ..images import image_hash
from .learner import MASTERY_THRESHOLD, LearningError, LearnSettings, Reconstructor, learn
from .masking import STRATEGIES, Level, MaskedView, MaskingError, get_strategy, parse_strategies, register_strategy
from .scores import ScoreError, score
from .store import StoreError, UnderstandingStore

__all__ = [
    "MASTERY_THRESHOLD",
    "LearningError",
    "LearnSettings",
    "Reconstructor",
    "image_hash",
    "learn",
    "STRATEGIES",
    "Level",
    "MaskedView",
    "MaskingError",
    "get_strategy",
    "parse_strategies",
    "register_strategy",
    "ScoreError",
    "score",
    "StoreError",
    "UnderstandingStore",
]
