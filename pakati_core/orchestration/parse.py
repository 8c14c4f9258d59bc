"""Reading a compositional goal: noun phrases with counts and attributes, spatial relations, a setting.

A small hand-written chunker over a lexicon (``lexicon.py``). Noun phrases are found by
structure — an optional determiner or number, modifiers, and a head that ends where a verb,
preposition, conjunction, relation phrase or punctuation begins — so unseen nouns still
become objects. Relation phrases ("on the left of", "hidden by", "next to", "between ... and
...") bind the nearest subject phrase before them to the phrases after them; locative phrases
naming a setting ("in the kitchen", "on the beach") become the background.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import inflect

from . import lexicon as lx
from .errors import GoalError

MAX_GOAL_CHARS = 2000
_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[,.;:!?]")
_inflect = inflect.engine()


@dataclass
class NounPhrase:
    start: int
    end: int  # exclusive token index
    head: str
    modifiers: list[str]
    text: str
    determiner: str = ""
    count: int | None = None
    tail: "NounPhrase | None" = None  # the phrase after "of"

    @property
    def noun(self) -> str:
        """The drawable noun: "the taste of the pickles" is about the pickles."""
        if self.tail is not None and self.head in lx.ABSTRACT_HEADS:
            return self.tail.noun
        return self.head

    @property
    def all_modifiers(self) -> list[str]:
        return self.modifiers + (self.tail.all_modifiers + [self.tail.head] if self.tail is not None else [])

    @property
    def plural(self) -> bool:
        return is_plural(self.noun)


@dataclass
class ParsedObject:
    noun: str
    phrase: str
    count: int = 1
    attributes: list[tuple[str, str]] = field(default_factory=list)
    background: bool = False
    mention: int = 0


@dataclass
class ParsedGoal:
    goal: str
    objects: list[ParsedObject]
    relations: list[tuple[int, str, int, str]]  # (subject index, relation, object index, phrase)
    background: ParsedObject | None


@lru_cache(maxsize=4096)
def singular(word: str) -> str:
    """The singular of a plural noun (inflect), words like "bus" or "glass" left alone."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is", "ous")) or not word.isalpha():
        return word
    s = _inflect.singular_noun(word)
    return s if isinstance(s, str) and s else word


def is_plural_noun_like(word: str) -> bool:
    """Plural nouns that read like -s verbs but are things ("glasses", "pants", "scissors")."""
    return word in lx.SIZE_OF or singular(word) in lx.SIZE_OF or word in ("glasses", "pants", "scissors", "shorts", "jeans", "trousers")


def is_plural(word: str) -> bool:
    return singular(word) != word or word in ("sheep", "fish", "people", "deer")


def tokenize(goal: str) -> list[str]:
    return _TOKEN.findall(goal.lower().replace("’", "'"))


def _relation_at(tokens: list[str], i: int) -> tuple[str, int] | None:
    for n in range(min(lx.MAX_RELATION_WORDS, len(tokens) - i), 0, -1):
        kind = lx.RELATION_PHRASES.get(tuple(tokens[i:i + n]))
        if kind:
            return kind, n
    return None


def _is_number(tok: str) -> int | None:
    if tok.isdigit():
        return max(1, min(int(tok), 99))
    return lx.NUMBERS.get(tok)


def _is_break(tokens: list[str], i: int, have: list[str]) -> bool:
    """Does token i end a noun phrase that has collected ``have`` so far?"""
    t = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else "."
    if _is_number(t) is not None and t not in lx.COUNT_NOUNS and not (t == "one" and have):
        return True  # a count opens the next phrase ("a loved one" keeps its "one")
    if t in lx.DETERMINERS or t in lx.CONJUNCTIONS or t in lx.PREPOSITIONS or t in lx.PRONOUNS:
        return True
    if _relation_at(tokens, i):
        return True
    if not t.isalnum() and "-" not in t and "'" not in t:
        return True
    if _adverb(t, nxt, have):
        return True
    if t in lx.ADVERBS_NON_LY:
        return True
    content_next = _is_content(nxt)
    if have and lx.attribute_kind(have[-1]) and t not in lx.AUXILIARIES and not content_next:
        return False  # "a red rose", "a green seaweed": an adjective is followed by its noun
    if have and t in lx.VERB_NOUNS and not is_plural(have[-1]) and nxt not in lx.DETERMINERS:
        return False  # "the umbrella stand"
    if have and nxt in lx.DETERMINERS and nxt not in ("a", "an"):
        return True  # "... watch complement each other", "... bottles clink the ...": a head is not followed by a determiner
    verb_follows = nxt != "of" and (nxt in lx.PREPOSITIONS or nxt in lx.CONJUNCTIONS or nxt in lx.ADVERBS_NON_LY or _adverb(nxt, "", ["x"])
                                    or (nxt,) in lx.RELATION_PHRASES or nxt in lx.RELATION_STARTERS or nxt in ("on", "in", "at"))
    if have and verb_follows and have[-1] not in lx.VERBS and not _modifier_like(have[-1]):
        if is_plural(have[-1]) and not t.endswith("s") and t.isalpha() and len(t) > 2:
            return True  # "the glass bottles clink together": plural head, then a bare verb
        if not is_plural(have[-1]) and t.endswith("s") and not t.endswith("ss") and not is_plural_noun_like(t) and not lx.attribute_kind(have[-1]):
            return True  # "the rubber ball bounces off"
    if have and have[-1] in lx.SIZE_OF and t not in lx.SIZE_OF and singular(t) not in lx.SIZE_OF and not lx.attribute_kind(t) \
            and (nxt in lx.PREPOSITIONS or nxt in lx.ADVERBS_NON_LY or nxt in lx.RELATION_STARTERS or _adverb(nxt, "", ["x"])):
        return True  # "the sports car drove past": a known noun, then a word before a preposition
    if t in lx.VERBS:
        return not (t in lx.MODIFIER_PARTICIPLES and content_next) and not (t.endswith("ing") and not have and content_next)
    if have and t.endswith("ed") and t not in lx.SIZE_OF and not content_next:
        return True
    if have and t.endswith("ing") and t not in lx.SIZE_OF and have[-1] in lx.SIZE_OF and not lx.attribute_kind(have[-1]):
        return True  # "the sun casting shadows": a known noun then a participle
    return False


def _is_content(t: str) -> bool:
    if t != "one" and _is_number(t) is not None and t not in lx.COUNT_NOUNS:
        return False  # "two sofas, two kites": a number starts the next phrase
    return bool(t) and (t[0].isalnum()) and t not in lx.RELATION_STARTERS and t not in lx.DETERMINERS and t not in lx.CONJUNCTIONS and t not in lx.PREPOSITIONS \
        and t not in lx.PRONOUNS and t not in lx.VERBS and not lx.RELATION_PHRASES.get((t,)) and t not in lx.ADVERBS_NON_LY


def _noun_phrase(tokens: list[str], i: int) -> NounPhrase | None:
    start = i
    det, count = "", None
    while i < len(tokens) and (tokens[i] in lx.DETERMINERS or _is_number(tokens[i]) is not None):
        t = tokens[i]
        if t in ("pair", "couple") and i + 1 < len(tokens) and tokens[i + 1] == "of":
            count, i = lx.NUMBERS[t], i + 2
            continue
        n = _is_number(t)
        if n is not None and t not in ("a", "an") and (i + 1 < len(tokens) and _is_content(tokens[i + 1])):
            count = n
        det = det or (t if t in lx.DETERMINERS else "")
        i += 1
    have: list[str] = []
    while i < len(tokens):
        t = tokens[i]
        if t == "," and i + 2 < len(tokens) and tokens[i + 1] == "and" and have and lx.attribute_kind(have[-1]) == "colour" \
                and lx.attribute_kind(tokens[i + 2]) == "colour":
            i += 2  # "a blue, black, and white floor"
            continue
        if t == "," or t == "and":
            # "sharp, tangy taste" / "black and white cat": keep going between modifiers
            prev, nxt = (have[-1] if have else ""), (tokens[i + 1] if i + 1 < len(tokens) else "")
            joins = prev and _is_content(nxt) and _is_number(nxt) is None and not _is_break(tokens, i + 1, have)
            if t == "and":
                joins = joins and lx.attribute_kind(prev) == "colour" and lx.attribute_kind(nxt) == "colour"
            else:
                after = tokens[i + 2] if i + 2 < len(tokens) else ""
                joins = joins and (_modifier_like(prev) or (_is_content(after) and not _is_break(tokens, i + 2, have))) and prev not in lx.SIZE_OF
            if joins:
                i += 1
                continue
            break
        if _is_break(tokens, i, have):
            break
        have.append(t)
        i += 1
    if not have:
        return None
    if len(have) == 1 and have[0].endswith("er") and i < len(tokens) and tokens[i] == "than":
        return None  # "taller than": a comparison, not a thing
    np_ = NounPhrase(start, i, have[-1], have[:-1], " ".join(tokens[start:i]), det, count)
    # "the taste of the pickles", "a cup of coffee": one object, the tail kept in its prompt
    if i + 1 < len(tokens) and tokens[i] == "of" and not _relation_at(tokens, i):
        tail = _noun_phrase(tokens, i + 1)
        if tail is not None:
            np_.tail, np_.end = tail, tail.end
            np_.text = " ".join(tokens[start:tail.end])
            if np_.head in lx.ABSTRACT_HEADS and np_.count is None:
                np_.count = tail.count
    return np_


def _adverb(t: str, nxt: str, have: list[str]) -> bool:
    """An -ly word is an adverb unless it is a known -ly adjective or opens a phrase before a noun."""
    if not (t.endswith("ly") and len(t) > 4) or t in lx.LY_WORDS:
        return False
    return bool(have) or not _is_content(nxt)


def _lone_participle(tokens: list[str], i: int) -> bool:
    """A -ed/-ing word not followed by a noun phrase word is a verb ("floated over", "ripening in")."""
    t = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else "."
    return t.endswith(("ed", "ing")) and t not in lx.SIZE_OF and len(t) > 4 and not _is_content(nxt)


def _modifier_like(word: str) -> bool:
    return bool(lx.attribute_kind(word)) or word.endswith(("y", "ed", "ing", "ful", "ous", "ic", "al", "ish", "ive", "ant", "ent")) and word not in lx.SIZE_OF


def _attributes(np_: NounPhrase) -> list[tuple[str, str]]:
    out = []
    words = [w for w in np_.all_modifiers if w not in lx.DETERMINERS and _is_number(w) is None]
    if np_.tail is not None and np_.head in lx.ABSTRACT_HEADS:
        pass  # the abstract head ("surface") is part of the phrase, not an attribute
    elif np_.tail is not None:
        words = np_.modifiers  # "a cup of coffee": coffee describes the cup but is a noun
    for w in words:
        kind = lx.attribute_kind(w)
        if kind:
            out.append((kind, w))
        elif w not in lx.SIZE_OF and w not in lx.SCENES and w not in lx.ABSTRACT_HEADS and w != "of" and w.isalpha() \
                and (_modifier_like(w) or w in lx.PLAIN_ADJECTIVES):
            out.append(("other", w))
    return out


def _phrase(np_: NounPhrase) -> str:
    """The prompt text of a phrase: determiners and counts dropped, commas kept out."""
    if np_.tail is not None and np_.head in lx.FRAMING_HEADS:
        return _phrase(np_.tail)
    raw = np_.text.split()
    words = [w for k, w in enumerate(raw) if (w not in lx.DETERMINERS and (_is_number(w) is None or w in lx.COUNT_NOUNS or k == len(raw) - 1))
             or w == "of"]
    text = " ".join(words).replace(" ,", ",").strip(" ,")
    return re.sub(r"^of\s+", "", text)


def parse_goal(goal: str) -> ParsedGoal:
    """Objects, relations and the setting named by ``goal``; raises :class:`GoalError` on nothing to draw."""
    if not isinstance(goal, str) or not goal.strip():
        raise GoalError("the goal is empty; describe what the image should show", field="goal")
    if len(goal) > MAX_GOAL_CHARS:
        raise GoalError(f"the goal is {len(goal)} characters; at most {MAX_GOAL_CHARS} are read", field="goal")
    tokens = tokenize(goal)
    items: list[tuple] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        rel = _relation_at(tokens, i)
        if t in (".", ";", "!", "?", ":"):
            items.append(("stop",))
            i += 1
        elif t == ",":
            items.append(("comma",))
            i += 1
        elif rel:
            items.append(("rel", rel[0], " ".join(tokens[i:i + rel[1]])))
            i += rel[1]
        elif t in lx.CONJUNCTIONS:
            items.append(("conj", t))
            i += 1
        elif t in lx.PREPOSITIONS:
            items.append(("prep", t))
            i += 1
        elif t in lx.PRONOUNS or (t in lx.VERBS and _is_break(tokens, i, [])) or _adverb(t, tokens[i + 1] if i + 1 < len(tokens) else ".", []) \
                or t in lx.ADVERBS_NON_LY or _lone_participle(tokens, i):
            items.append(("other",))
            i += 1
        else:
            np_ = _noun_phrase(tokens, i)
            if np_ is None:
                items.append(("other",))
                i += 1
            else:
                items.append(("np", np_))
                i = np_.end
    return _bind(goal, items)


def _bind(goal: str, items: list[tuple]) -> ParsedGoal:
    objects: list[ParsedObject] = []
    relations: list[tuple[int, str, int, str]] = []
    scene_parts: list[tuple[str, list[tuple[str, str]]]] = []
    np_index: dict[int, int | None] = {}  # item index -> object index (None: dropped or background)

    def obj_for(k: int, as_scene: bool) -> int | None:
        if k in np_index:
            return np_index[k]
        np_ = items[k][1]
        noun = np_.noun
        if noun in lx.NON_OBJECTS or noun in lx.PRONOUNS or len(noun) < 2 or noun.isdigit():
            np_index[k] = None
            return None
        first_scene = not scene_parts or scene_parts[0][0].split()[-1] == noun
        if (as_scene or (noun in lx.SCENES and not _in_relation(items, k))) and first_scene:
            scene_parts.append((_phrase(np_), _attributes(np_)))
            np_index[k] = None
            return None
        attrs = _attributes(np_)
        if np_.determiner in ("the", "its", "his", "her", "their") or not np_.determiner:
            for j, o in enumerate(objects):
                same = o.noun == noun and not ({v for kd, v in attrs if kd == "colour"} - {v for kd, v in o.attributes if kd == "colour"})
                if same and np_.count is None:
                    np_index[k] = j
                    return j
        objects.append(ParsedObject(noun, _phrase(np_), np_.count or 1, attrs, mention=len(objects)))
        np_index[k] = len(objects) - 1
        return len(objects) - 1

    last_np: int | None = None
    k = 0
    while k < len(items):
        it = items[k]
        kind = it[0]
        if kind == "stop":
            last_np = None
        elif kind == "np":
            obj_for(k, False)
            last_np = k
        elif kind == "prep":
            # "at the beach", "through the forest": a setting after a locative word
            if k + 1 < len(items) and items[k + 1][0] == "np" and items[k + 1][1].noun in lx.SCENES and it[1] in ("at", "across", "through", "along", "around", "within", "into", "against", "off", "from", "up", "down"):
                obj_for(k + 1, True)
                k += 1
        elif kind == "rel":
            rel, phrase = it[1], it[2]
            targets = _following_nps(items, k + 1)
            if targets and rel in ("inside", "on", "near") and items[targets[0]][1].noun in lx.SCENES:
                for t in targets:
                    obj_for(t, True)
                k = targets[-1]
            elif last_np is not None and targets:
                objs = [obj_for(t, False) for t in targets]
                for subj in [obj_for(s, False) for s in _subject_group(items, last_np)]:
                    if subj is None:
                        continue
                    if rel == "between":
                        real = [o for o in objs if o is not None and o != subj]
                        if len(real) >= 2:
                            relations.append((subj, "right_of", real[0], phrase))
                            relations.append((subj, "left_of", real[1], phrase))
                        elif real:
                            relations.append((subj, "near", real[0], phrase))
                    else:
                        for o in objs:
                            if o is not None and o != subj:
                                relations.append((subj, rel, o, phrase))
                k = targets[-1]
                last_np = targets[0] if rel != "between" else last_np
            elif targets:
                for t in targets:
                    obj_for(t, False)
                k = targets[-1]
                last_np = targets[0]
        k += 1
    for k2, it in enumerate(items):
        if it[0] == "np":
            obj_for(k2, False)
    background = None
    if scene_parts:
        phrase = ", ".join(dict.fromkeys(p for p, _ in scene_parts))
        attrs = [a for _, aa in scene_parts for a in aa]
        background = ParsedObject(phrase.split(",")[0].split()[-1], phrase, 1, attrs, True, -1)
    if not objects and background is None:
        raise GoalError(f"found nothing to draw in {goal!r}; name at least one object or setting", field="goal")
    return ParsedGoal(goal, objects, relations, background)


def _in_relation(items: list[tuple], k: int) -> bool:
    """Is the phrase at ``k`` the subject or target of a spatial relation (then it is an object)?"""
    prev = items[k - 1] if k > 0 else None
    nxt = items[k + 1] if k + 1 < len(items) else None
    if prev and prev[0] == "rel" and prev[1] not in ("inside", "on", "near"):
        return True
    if prev and prev[0] == "conj" and k >= 2 and items[k - 2][0] == "np":
        return _in_relation(items, k - 2)
    return bool(nxt and nxt[0] == "rel" and nxt[1] not in ("inside", "on"))


def _subject_group(items: list[tuple], k: int) -> list[int]:
    """The subject phrase at ``k`` and those joined to it before ("two apples and a pear on the table"),
    stopping at a phrase that is itself the target of a relation."""
    group = [k]
    while k >= 2 and items[k - 1][0] in ("conj", "comma") and (items[k - 1][0] == "comma" or items[k - 1][1] == "and") \
            and items[k - 2][0] == "np" and not (k >= 3 and items[k - 3][0] in ("rel", "prep")):
        k -= 2
        group.insert(0, k)
    return group


def _following_nps(items: list[tuple], k: int) -> list[int]:
    """Item indices of ``NP (, | and NP)*`` starting at ``k``."""
    out: list[int] = []
    while k < len(items) and items[k][0] == "np":
        out.append(k)
        j = k + 1
        while j < len(items) and items[j][0] in ("comma", "conj"):
            j += 1
        starts_clause = j + 1 < len(items) and items[j + 1][0] == "rel"  # "... and a bird above the dog"
        if j < len(items) and items[j][0] == "np" and j > k + 1 and not starts_clause:
            k = j
        else:
            break
    return out
