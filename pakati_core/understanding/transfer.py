"""Reuse what was learned: references for refinement, prompt terms, an init image.

The prompt terms follow stated rules, not a model: the description is weighted by how well
the model reconstructed the reference under it, and the measured statistics are named in words
(lightness, warmth, colourfulness, sharpness, where the detail sits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PakatiError
from ..prompts import weighted
from ..references import ASPECTS, Reference

STAT_ASPECTS = ("color", "texture", "composition")


class TransferError(PakatiError):
    """An understanding or aspect list that cannot be transferred."""


@dataclass
class Understanding:
    """A learned record (JSON-ready) and the reference pixels it was learned from."""

    record: dict
    image: np.ndarray

    @property
    def best_composite(self) -> float:
        return float(self.record.get("best", {}).get("composite", 0.0))


def parse_aspects(text: str) -> list[str]:
    names = [t.strip().lower() for t in text.replace("\n", ",").split(",") if t.strip()]
    if not names or names == ["all"]:
        return list(STAT_ASPECTS)
    for n in names:
        if n not in ASPECTS:
            raise TransferError(f"unknown aspect '{n}', expected some of {', '.join(ASPECTS)}", "aspects")
    return list(dict.fromkeys(names))


def description_weight(u: Understanding) -> float:
    """0.5 for a description the model could not use, up to 1.2 for one it reconstructed perfectly."""
    return round(0.5 + 0.7 * min(max(u.best_composite, 0.0), 1.0), 2)


def stat_terms(statistics: dict, aspects: list[str]) -> list[str]:
    terms: list[str] = []
    if "color" in aspects or "lighting" in aspects or "style" in aspects or "general" in aspects:
        lum, a, b = statistics["color"]["mean_lab"]
        chroma = statistics["color"]["mean_chroma"]
        terms.append("bright, high-key" if lum > 65 else "dark, low-key" if lum < 35 else "balanced exposure")
        if b > 12:
            terms.append("warm tones")
        elif b < -6:
            terms.append("cool tones")
        terms.append("vivid colours" if chroma > 35 else "muted colours" if chroma < 12 else "natural colours")
    if "texture" in aspects or "style" in aspects or "general" in aspects:
        terms.append("crisp fine detail" if statistics["texture"]["sharpness"] > 0.0 else "soft, smooth surfaces")
    if "composition" in aspects or "general" in aspects:
        cx, cy = statistics["composition"]["energy_centroid"]
        horiz = "left" if cx < 0.42 else "right" if cx > 0.58 else "centre"
        vert = "upper" if cy < 0.42 else "lower" if cy > 0.58 else "middle"
        terms.append("centred subject" if (horiz, vert) == ("centre", "middle") else f"detail concentrated {vert} {horiz}")
    return terms


def transfer(u: Understanding, target_prompt: str, aspects: list[str]) -> tuple[list[Reference], str, dict]:
    """(references for refinement, the prompt with learned terms, what was transferred and why).

    Each reference is the learned image with a full mask, so delta analysis measures its targets
    from the whole reference: its tone, colour and texture features are the stored statistics."""
    description = u.record.get("settings", {}).get("description", "")
    # The whole learned reference is the target (a full mask): delta analysis stretches it over
    # the region being measured, so the region is compared with the statistics that were learned
    # (mean Lab, spread, chroma, texture, edge-energy layout), not with whatever part of the
    # reference happens to lie under the region's box.
    whole = np.ones(u.image.shape[:2], np.float32)
    refs = [Reference(u.image, description=description, aspect=a, mask=whole) for a in aspects]
    terms = stat_terms(u.record["statistics"], aspects)
    w = description_weight(u)
    parts = [target_prompt.strip()] if target_prompt.strip() else []
    if description.strip():
        parts.append(weighted(description, w))
    parts += terms
    info = {
        "aspects": aspects,
        "description_weight": w,
        "terms": terms,
        "mastered": u.record.get("mastered", False),
        "best": u.record.get("best"),
        "statistics": {k: u.record["statistics"][k] for k in STAT_ASPECTS},
    }
    return refs, ", ".join(parts), info
