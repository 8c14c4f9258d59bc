"""Prompt text: the weight syntax ``(words:1.2)`` that ComfyUI's (and A1111's) text encoders read, written in one place."""

from __future__ import annotations

from collections.abc import Iterable


def weighted(text: str, weight: float) -> str:
    """``(text:weight)``, the weight rounded to two decimals (``(warm tones:1.2)``); ComfyUI scales the
    tokens' embeddings by it."""
    return f"({text.strip()}:{round(float(weight), 2):g})"


def weighted_terms(terms: Iterable[tuple[str, float]]) -> str:
    """``(term:weight), (term:weight)...``: prompt terms with their weights, as one prompt fragment."""
    return ", ".join(weighted(t, w) for t, w in terms)
