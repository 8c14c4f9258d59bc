"""The small protocols the loop needs from its host: a regenerator and an interrupt signal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class RefineInterrupted(Exception):
    """Raised by a host callback (or a regenerator) when the user cancels; the loop stops cleanly."""


@dataclass(frozen=True)
class RegenParams:
    """What the fuzzy rules ask of one regeneration: the host maps these onto its sampler."""

    seed: int
    denoise: float
    cfg_delta: float = 0.0
    steps_factor: float = 1.0
    prompt_terms: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    pass_index: int = 0

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "denoise": round(self.denoise, 4),
            "cfg_delta": round(self.cfg_delta, 4),
            "steps_factor": round(self.steps_factor, 4),
            "prompt_terms": [list(t) for t in self.prompt_terms],
        }


class Regenerator(Protocol):
    def __call__(self, image: np.ndarray, mask: np.ndarray, params: RegenParams) -> np.ndarray:
        """Return ``image`` (HxWx3 float32, [0, 1]) with the region under ``mask`` regenerated.

        Return the raw regenerated pixels, not blended with ``image``: the loop pastes the result
        through the mask itself, once (``m * new + (1 - m) * old``), so pixels outside the mask
        are never taken from the regenerator's output and soft edges are not blended twice."""
        ...
