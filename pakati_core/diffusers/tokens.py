"""Where a word sits in a diffusers SDXL pipeline's context: both tokenizers, every sub-token."""

from __future__ import annotations

from typing import Any

from ..attention_maps.excite import ExciteTarget
from ..attention_maps.tokens import word_positions


def _tokenizers(pipe) -> dict[str, Any]:
    return {
        name: tok for name, tok in (("l", getattr(pipe, "tokenizer", None)), ("g", getattr(pipe, "tokenizer_2", None))) if tok is not None
    }


def prompt_token_ids(pipe, text: str) -> dict[str, list[list[int]]]:
    """Per tokenizer, the ids of the prompt as ``encode_prompt`` tokenises it (one padded chunk)."""
    return {
        name: [list(tok(text, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids)]
        for name, tok in _tokenizers(pipe).items()
    }


def word_positions_in(pipe, text: str, word: str, field: str = "words") -> list[int]:
    """Context positions of ``word``'s sub-tokens in ``text`` (both tokenizers)."""
    words = {name: list(tok(word, add_special_tokens=False).input_ids) for name, tok in _tokenizers(pipe).items()}
    return word_positions(prompt_token_ids(pipe, text), words, field)


def text_positions_in(pipe, text: str) -> list[int]:
    """Context positions of the prompt's word tokens (no start, end or padding)."""
    found: set[int] = set()
    for tok in _tokenizers(pipe).values():
        n = len(tok(text, add_special_tokens=False, truncation=True, max_length=tok.model_max_length - 2).input_ids)
        found.update(range(1, 1 + n))
    return sorted(found)


def excite_target(pipe, text: str, word: str, region: int | None = None, name: str | None = None) -> ExciteTarget:
    """The target for ``word`` of ``text`` (a region's prompt with ``region``, else the base prompt)."""
    positions = word_positions_in(pipe, text, word, "subjects")
    return ExciteTarget(name or word, tuple(positions), tuple(text_positions_in(pipe, text)), region)
