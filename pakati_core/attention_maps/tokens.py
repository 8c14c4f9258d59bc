"""Which context positions hold a word: every sub-token, every occurrence, every text encoder.

SDXL concatenates two encoders' hidden states along the feature axis, so a context position
is one position of both token sequences. The encoders tokenise with their own vocabularies
and padding; a word's positions are the union of where each encoder's sub-tokens of it sit.
Long prompts are chunked by the tokenizer (77 tokens each); chunk ``i`` position ``j`` is
context position ``i * chunk_len + j``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..errors import AttentionMapError, GoalError
from ..phrases import last_noun


def _find(seq: Sequence[int], sub: Sequence[int]) -> list[int]:
    n = len(sub)
    return [i for i in range(len(seq) - n + 1) if list(seq[i : i + n]) == list(sub)]


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


def subject_word(prompt: str, field: str = "subjects") -> str:
    """The prompt's last noun (the phrase reader's last object, else its setting): a region's default subject."""
    try:
        word = last_noun(prompt)
    except GoalError as e:
        raise AttentionMapError(f"no noun found in {prompt!r} ({e.message}); name the subject word", field) from e
    if word is None:
        raise AttentionMapError(f"no noun found in {prompt!r}; name the subject word", field)
    return word


def parse_subject_lines(text: str, field: str = "subjects") -> dict[str, tuple[str, str | None]]:
    """``region: word`` lines (``region: word | the region's prompt`` where the prompt is not known) ->
    {region (lower case): (word, prompt or None)}. Blank lines and ``#`` comments are skipped."""
    out: dict[str, tuple[str, str | None]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        word, bar, prompt = rest.partition("|")
        name, word, prompt = name.strip(), word.strip(), prompt.strip()
        if not sep or not name or not word or (bar and not prompt):
            raise AttentionMapError(f"line {n} {line!r} is not 'region: word' (or 'region: word | the region's prompt')", field)
        if name.lower() in out:
            raise AttentionMapError(f"line {n} names region '{name}' a second time", field)
        out[name.lower()] = (word, prompt or None)
    return out
