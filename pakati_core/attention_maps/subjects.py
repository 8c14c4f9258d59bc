"""Which word of which region Attend-and-Excite works on: one rule for every host.

A region is named in the subjects by its label, its id or its number (1-based, in z-order);
the word given there is used, else the last noun of the region's prompt. A region built from
bare conditioning has no known prompt: its line must give it (``region: word | prompt``).
The ComfyUI node and the diffusers backend both resolve subjects here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import AttentionMapError
from .tokens import subject_word


@dataclass(frozen=True)
class SubjectRegion:
    """What the rule needs to know of a region: its label, its id (None where it has none) and its prompt
    (None where it was built from conditioning, so the prompt is not known)."""

    name: str
    id: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class RegionSubject:
    index: int  # the region's index in the set (z-order)
    name: str  # the region's label
    word: str
    prompt: str  # the prompt the word is found in


def region_subjects(
    regions: Sequence[SubjectRegion], given: Mapping[str, tuple[str | None, str | None]] | None = None, field: str = "subjects"
) -> list[RegionSubject]:
    """One subject per region, in order. ``given`` maps a region's label, id or number (any case) to
    ``(word or None, prompt or None)``; a key that names no region is an error (a typo would
    otherwise excite nothing), as is a region whose prompt is unknown and not given."""
    lines = {str(k).lower(): v for k, v in (given or {}).items()}
    used: set[str] = set()
    out = []
    for i, r in enumerate(regions):
        keys = [k for k in dict.fromkeys((r.name.lower(), (r.id or "").lower(), str(i + 1))) if k and k in lines]
        word, prompt = lines[keys[0]] if keys else (None, None)
        used.update(keys)
        prompt = prompt or r.prompt
        if prompt is None:
            raise AttentionMapError(
                f"region '{r.name}' (number {i + 1}) was made from CONDITIONING, so its prompt is not "
                f"known here: add the line '{r.name}: word | the prompt it was encoded from'",
                field,
            )
        out.append(RegionSubject(i, r.name, word or subject_word(prompt, field), prompt))
    unknown = sorted(set(lines) - used)
    if unknown:
        names = ", ".join(repr(r.name) for r in regions) or "none connected"
        raise AttentionMapError(f"no region {', '.join(repr(u) for u in unknown)} (regions: {names})", field)
    return out
