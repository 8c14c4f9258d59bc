"""Which context positions hold a word: every sub-token, every occurrence, every text encoder.

SDXL concatenates two encoders' hidden states along the feature axis, so a context position
is one position of both token sequences. The encoders tokenise with their own vocabularies
and padding; a word's positions are the union of where each encoder's sub-tokens of it sit.
Long prompts are chunked by the tokenizer (77 tokens each); chunk ``i`` position ``j`` is
context position ``i * chunk_len + j``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ..errors import AttentionMapError


def _find(seq: Sequence[int], sub: Sequence[int]) -> list[int]:
    n = len(sub)
    return [i for i in range(len(seq) - n + 1) if list(seq[i:i + n]) == list(sub)]


def word_positions(prompt: Mapping[str, Sequence[Sequence[int]]], word: Mapping[str, Sequence[int]], field: str = "words") -> list[int]:
    """Sorted context positions of ``word`` in ``prompt``.

    ``prompt``: per encoder (``"l"``, ``"g"``...) the token ids of each chunk of the prompt;
    ``word``: per encoder the word's own token ids (no start/end/padding). Raises
    ``AttentionMapError`` when the word has no tokens or occurs nowhere in the prompt.
    """
    found: set[int] = set()
    for enc, chunks in prompt.items():
        sub = list(word.get(enc, []))
        if not sub:
            continue
        offset = 0
        for chunk in chunks:
            for start in _find(chunk, sub):
                found.update(offset + start + i for i in range(len(sub)))
            offset += len(chunk)
    if not any(word.values()):
        raise AttentionMapError("the word has no tokens (empty or only punctuation the tokenizer drops)", field)
    if not found:
        raise AttentionMapError("the word does not occur in the prompt (its tokens are found in no encoder's tokenisation)", field)
    return sorted(found)
