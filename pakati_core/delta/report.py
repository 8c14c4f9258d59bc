"""The delta report: per-reference deltas, aspect scores and one overall score, as a dict/JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..finite import require_finite
from ..geometry import Box
from ..images import as_rgb
from ..jsonutil import strict_json
from ..references import Reference
from .catalogue import ASPECT_BUNDLES, ASPECT_DELTAS
from .features import RegionFeatures, region_features
from .measure import Delta, compare
from .view import DeltaInputError, as_mask, image_view, reference_view

REPORT_VERSION = 1


def aspect_scores(deltas: Sequence[Delta]) -> dict[str, float]:
    """Mean similarity of the deltas that belong to each measured aspect."""
    by_name = {d.name: d for d in deltas}
    return {a: float(np.mean([by_name[n].similarity for n in names])) for a, names in ASPECT_DELTAS.items()}


def bundle_score(aspects: dict[str, float], aspect: str) -> float:
    """Geometric mean over the measured aspects an annotated aspect stands for."""
    parts = [aspects[a] for a in ASPECT_BUNDLES[aspect]]
    return float(math.exp(sum(math.log(max(p, 1e-300)) for p in parts) / len(parts)))


@dataclass(frozen=True)
class ReferenceResult:
    reference: Reference
    deltas: list[Delta]
    aspects: dict[str, float]
    score: float

    def delta(self, name: str) -> Delta:
        return next(d for d in self.deltas if d.name == name)

    def to_dict(self) -> dict:
        return {
            **self.reference.summary(),
            "score": round(self.score, 6),
            "aspects": {k: round(v, 6) for k, v in self.aspects.items()},
            "deltas": [d.to_dict() for d in self.deltas],
        }


@dataclass(frozen=True)
class DeltaReport:
    results: list[ReferenceResult]
    overall: float
    box: Box

    def delta(self, name: str, index: int = 0) -> Delta:
        return self.results[index].delta(name)

    def weighted_deltas(self) -> dict[str, float]:
        """Each named delta averaged over the references whose aspect covers it (by weight)."""
        out: dict[str, float] = {}
        for name in self.results[0].deltas and [d.name for d in self.results[0].deltas]:
            num = den = 0.0
            for r in self.results:
                if any(name in ASPECT_DELTAS[a] for a in ASPECT_BUNDLES[r.reference.aspect]):
                    num += r.reference.weight * r.delta(name).value
                    den += r.reference.weight
            if den > 0:
                out[name] = num / den
        return out

    def summary(self, limit: int = 5) -> list[str]:
        """The sentences of the deltas that cost the most similarity, worst first."""
        ranked = sorted((d for r in self.results for d in r.deltas if d.direction != "same"), key=lambda d: d.similarity)
        return [d.sentence for d in ranked[:limit]]

    def to_dict(self) -> dict:
        b = self.box
        return {
            "version": REPORT_VERSION,
            "overall": round(self.overall, 6),
            "region": {"x": b.x0, "y": b.y0, "width": b.width, "height": b.height},
            "summary": self.summary(),
            "references": [r.to_dict() for r in self.results],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return strict_json(self.to_dict(), "the delta report", "image", indent=indent)


class ReferenceCache:
    """Reference features keyed by (reference hash, region box, mask hash): references do not
    change between refinement passes, so they are measured once."""

    def __init__(self) -> None:
        self._store: dict[tuple, RegionFeatures] = {}

    def get(self, ref: Reference, shape: tuple[int, int], box: Box, mask: np.ndarray | None) -> RegionFeatures:
        key = (ref.content_hash, shape, box, None if mask is None else hash(np.ascontiguousarray(mask).tobytes()))
        if key not in self._store:
            self._store[key] = region_features(reference_view(ref, shape, box, mask))
        return self._store[key]


def analyse(
    image: np.ndarray, references: Sequence[Reference], mask: np.ndarray | None = None, cache: ReferenceCache | None = None
) -> DeltaReport:
    """Measure the region of ``image`` under ``mask`` against every reference.

    Overall = weighted geometric mean of the references' scores; each reference is scored on the
    aspects its annotation names (``general``: all four measured aspects).
    """
    if not references:
        raise DeltaInputError("at least one reference is needed", "references")
    rgb = as_rgb(image, min_side=8)
    m = None if mask is None else as_mask(mask, rgb.shape[:2])
    view, box = image_view(rgb, m)
    mine = region_features(view)
    cache = cache or ReferenceCache()
    results = []
    for ref in references:
        theirs = cache.get(ref, rgb.shape[:2], box, m)
        deltas = compare(mine, theirs)
        aspects = aspect_scores(deltas)
        results.append(ReferenceResult(ref, deltas, aspects, bundle_score(aspects, ref.aspect)))
    total = sum(r.reference.weight for r in results)
    overall = math.exp(sum(r.reference.weight * math.log(max(r.score, 1e-300)) for r in results) / total)
    require_finite([overall] + [r.score for r in results], "the delta scores", "image")
    return DeltaReport(results, float(overall), box)
