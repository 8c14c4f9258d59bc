"""Reading text into noun phrases: the one home of the goal and prompt reader, in the shared base.

The planner reads a goal into objects, counts, attributes, relations and a setting with
:func:`parse_goal`; Attend-and-Excite takes a region prompt's subject word from the same reading
(:func:`last_noun`). ``reader`` is the chunker and its grammar, ``lexicon`` the word lists and the
noun table (``data/nouns.tsv``, built from WordNet by ``tools/build_noun_lexicon.py``).
"""

from __future__ import annotations

from . import lexicon
from .reader import (
    MAX_GOAL_CHARS,
    NounPhrase,
    ParsedGoal,
    ParsedObject,
    is_plural,
    known_noun,
    last_noun,
    noun_info,
    parse_goal,
    phrase_info,
    singular,
    tokenize,
)

__all__ = [
    "MAX_GOAL_CHARS",
    "NounPhrase",
    "ParsedGoal",
    "ParsedObject",
    "is_plural",
    "known_noun",
    "last_noun",
    "lexicon",
    "noun_info",
    "parse_goal",
    "phrase_info",
    "singular",
    "tokenize",
]
