"""Reading a compositional goal (or a region prompt): noun phrases with counts and attributes, spatial relations, a setting.

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

from ..errors import GoalError
from . import lexicon as lx

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
    kind: str = "thing"  # thing, or a band: ground, sky, backdrop (lexicon.KINDS)
    category: str = "object"
    extras: list[str] = field(default_factory=list)  # owned phrases ("with a white beard", "wearing a cap")
    hint: str = ""  # left, right, center
    depth: str = ""  # foreground, background
    elevated: bool = False  # flying: placed in the air
    lex: "lx.NounInfo | None" = None  # the lexicon entry (of the compound when there is one)


@dataclass
class ParsedGoal:
    goal: str
    objects: list[ParsedObject]
    relations: list[tuple[int, str, int, str]]  # (subject index, relation, object index, phrase); also "riding", "between"
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
        kind = lx.RELATION_PHRASES.get(tuple(tokens[i : i + n]))
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
    verb_follows = nxt != "of" and (
        nxt in lx.PREPOSITIONS
        or nxt in lx.CONJUNCTIONS
        or nxt in lx.ADVERBS_NON_LY
        or _adverb(nxt, "", ["x"])
        or (nxt,) in lx.RELATION_PHRASES
        or nxt in lx.RELATION_STARTERS
        or nxt in ("on", "in", "at")
    )
    if have and verb_follows and have[-1] not in lx.VERBS and not _modifier_like(have[-1]):
        if is_plural(have[-1]) and not t.endswith("s") and t.isalpha() and len(t) > 2:
            return True  # "the glass bottles clink together": plural head, then a bare verb
        if (
            not is_plural(have[-1])
            and t.endswith("s")
            and not t.endswith("ss")
            and not is_plural_noun_like(t)
            and not lx.attribute_kind(have[-1])
        ):
            return True  # "the rubber ball bounces off"
    if (
        have
        and known_noun(have[-1])
        and not known_noun(t)
        and not lx.attribute_kind(t)
        and (nxt in lx.PREPOSITIONS or nxt in lx.ADVERBS_NON_LY or nxt in lx.RELATION_STARTERS or _adverb(nxt, "", ["x"]))
    ):
        return True  # "the sports car drove past": a known noun, then a word before a preposition
    if t in lx.VERBS:
        return not (t in lx.MODIFIER_PARTICIPLES and content_next) and not (t.endswith("ing") and not have and content_next)
    if have and t.endswith("ed") and t not in lx.SIZE_OF and not content_next:
        return True
    if (
        have
        and t.endswith("ing")
        and known_noun(have[-1])
        and not lx.attribute_kind(have[-1])
        and nxt in ("a", "an", "the", "her", "his", "their")
    ):
        return True  # "two children building a sandcastle": a participle taking an object
    if have and t.endswith("ing") and t not in lx.SIZE_OF and known_noun(have[-1]) and not lx.attribute_kind(have[-1]):
        return True  # "the sun casting shadows": a known noun then a participle
    return False


def _is_content(t: str) -> bool:
    if t != "one" and _is_number(t) is not None and t not in lx.COUNT_NOUNS:
        return False  # "two sofas, two kites": a number starts the next phrase
    return (
        bool(t)
        and (t[0].isalnum())
        and t not in lx.RELATION_STARTERS
        and t not in lx.DETERMINERS
        and t not in lx.CONJUNCTIONS
        and t not in lx.PREPOSITIONS
        and t not in lx.PRONOUNS
        and t not in lx.VERBS
        and not lx.RELATION_PHRASES.get((t,))
        and t not in lx.ADVERBS_NON_LY
    )


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
        if (
            t == ","
            and i + 2 < len(tokens)
            and tokens[i + 1] == "and"
            and have
            and lx.attribute_kind(have[-1]) == "colour"
            and lx.attribute_kind(tokens[i + 2]) == "colour"
        ):
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
                joins = (
                    joins
                    and (_modifier_like(prev) or (_is_content(after) and not _is_break(tokens, i + 2, have)))
                    and prev not in lx.SIZE_OF
                )
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
            np_.text = " ".join(tokens[start : tail.end])
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
    return (
        bool(lx.attribute_kind(word))
        or word.endswith(("y", "ed", "ing", "ful", "ous", "ic", "al", "ish", "ive", "ant", "ent"))
        and word not in lx.SIZE_OF
    )


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
        elif (
            w not in lx.SIZE_OF
            and w not in lx.SCENES
            and w not in lx.ABSTRACT_HEADS
            and w != "of"
            and w.isalpha()
            and (_modifier_like(w) or w in lx.PLAIN_ADJECTIVES)
        ):
            out.append(("other", w))
    return out


def _phrase(np_: NounPhrase) -> str:
    """The prompt text of a phrase: determiners and counts dropped, commas kept out."""
    if np_.tail is not None and np_.head in lx.FRAMING_HEADS:
        return _phrase(np_.tail)
    raw = np_.text.split()
    words = [
        w
        for k, w in enumerate(raw)
        if (w not in lx.DETERMINERS and (_is_number(w) is None or w in lx.COUNT_NOUNS or k == len(raw) - 1)) or w == "of"
    ]
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
            items.append(("rel", rel[0], " ".join(tokens[i : i + rel[1]])))
            i += rel[1]
        elif t in lx.ATTACH_VERBS and not (i > 0 and tokens[i - 1] in lx.DETERMINERS):
            items.append(("verb", lx.ATTACH_VERBS[t], t))
            i += 1
        elif t in lx.CONJUNCTIONS:
            items.append(("conj", t))
            i += 1
        elif t in lx.PREPOSITIONS:
            items.append(("prep", t))
            i += 1
        elif (
            t in lx.PRONOUNS
            or (t in lx.VERBS and _is_break(tokens, i, []))
            or _adverb(t, tokens[i + 1] if i + 1 < len(tokens) else ".", [])
            or t in lx.ADVERBS_NON_LY
            or _lone_participle(tokens, i)
        ):
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


def last_noun(text: str) -> str | None:
    """The noun of the last drawable object ``text`` names, as :func:`parse_goal` reads it (else its setting's),
    among the words of the text; None when it names none. Text it cannot read raises :class:`GoalError`."""
    goal = parse_goal(text)
    words = tokenize(text)
    nouns = [o.noun for o in goal.objects] or ([goal.background.noun] if goal.background is not None else [])
    nouns = [n for n in nouns if n in words]
    if not nouns:
        return None
    return max(nouns, key=lambda n: len(words) - 1 - words[::-1].index(n))


def noun_info(noun: str) -> lx.NounInfo:
    """The lexicon's entry for ``noun`` (or its singular); an unknown noun is a medium-sized thing."""
    table = lx.noun_table()
    return table.get(noun) or table.get(singular(noun)) or lx.UNKNOWN_THING


def phrase_info(np_: NounPhrase) -> lx.NounInfo:
    """The entry for the longest compound ending in the phrase's noun ("teddy bear", "gas station"), else the noun's."""
    table = lx.noun_table()
    if np_.noun == np_.head:
        words = [w for w in np_.modifiers if w.isalpha()] + [singular(np_.head)]
        for n in (3, 2):
            if len(words) >= n:
                hit = table.get(" ".join(words[-n:]))
                if hit is not None:
                    return hit
    return noun_info(np_.noun)


def known_noun(word: str) -> bool:
    """A noun the size list or the lexicon knows as a thing or stuff (not a place, time or part)."""
    if word in lx.SIZE_OF or singular(word) in lx.SIZE_OF:
        return True
    hit = lx.noun_table().get(word) or lx.noun_table().get(singular(word))
    return hit is not None and hit.kind != "non-object" and not word.endswith(("ing", "ed", "ly"))


# Prepositions after which a setting noun is the background ("at the beach", "through the forest").
_LOCATIVE = ("at", "across", "through", "along", "around", "within", "into", "against", "off", "from", "up", "down", "past", "to")
_ATTACH_CATEGORIES = frozenset("carried topping eyewear headwear footwear jewellery clothing body".split())
ATTACHED = -1  # np_index value of a phrase that went into its owner's prompt


def _bind(goal: str, items: list[tuple]) -> ParsedGoal:  # noqa: C901 - one branch per grammar rule, each commented
    objects: list[ParsedObject] = []
    relations: list[tuple[int, str, int, str]] = []
    scene_parts: list[tuple[str, list[tuple[str, str]]]] = []
    np_index: dict[int, int | None] = {}  # item index -> object index (None: dropped or background; ATTACHED: in its owner)

    def info(k: int) -> lx.NounInfo:
        return phrase_info(items[k][1])

    def placement_word(k: int) -> bool:
        n = items[k][1].noun
        return (n in lx.DIRECTIONS or n in lx.DEPTHS) and not items[k][1].modifiers

    def obj_for(k: int, as_scene: bool) -> int | None:
        if k in np_index:
            v = np_index[k]
            return None if v == ATTACHED else v
        np_ = items[k][1]
        noun = np_.noun
        lex = phrase_info(np_)
        kind = lex.kind
        if kind == "non-object" and np_.modifiers and lex.category in ("direction", "light"):
            kind = "thing"  # "a glass top", "a pendant light"
        if noun in lx.NON_OBJECTS or noun in lx.PRONOUNS or len(noun) < 2 or noun.isdigit() or kind == "non-object" or placement_word(k):
            np_index[k] = None  # times, weather, light, directions, framing: they stay in the base prompt
            return None
        first_scene = (
            not scene_parts or scene_parts[0][0].split()[-1] == noun or (kind == "setting" and not scene_parts[0][0].endswith(noun))
        )
        scene_like = kind == "setting" or (noun in lx.SCENES and kind not in lx.BANDS and kind != "thing")
        on_it = k > 0 and items[k - 1][0] == "rel" and items[k - 1][1] == "on"  # "a towel on the bar": a surface, not a place
        setting = kind == "setting" and not on_it
        scene_like = scene_like and not (on_it and kind == "setting")
        if ((as_scene and kind not in lx.BANDS) or (scene_like and (setting or not _in_relation(items, k)))) and first_scene:
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
        objects.append(
            ParsedObject(
                noun,
                _phrase(np_),
                np_.count or 1,
                attrs,
                mention=len(objects),
                kind=kind if kind in lx.BANDS else "thing",
                category=lex.category,
                lex=lex,
            )
        )
        np_index[k] = len(objects) - 1
        return len(objects) - 1

    owner_of: dict[int, int] = {}

    def attach(owner: int, k: int, lead: str) -> None:
        """The phrase at ``k`` belongs to ``owner``: it goes into the owner's prompt, with no region of its own."""
        np_index[k] = ATTACHED
        owner_of[k] = owner
        objects[owner].extras.append(f"{lead} {_phrase(items[k][1])}".strip())

    def hint(subjects: list[int], k: int) -> None:
        n = items[k][1].noun
        np_index[k] = None
        for s_ in subjects:
            if n in lx.DIRECTIONS:
                objects[s_].hint = lx.DIRECTIONS[n]
            else:
                objects[s_].depth = lx.DEPTHS[n]

    def subjects_of(k: int | None) -> list[int]:
        if k is None:
            return []
        out = [owner_of[s_] if s_ in owner_of else obj_for(s_, False) for s_ in _subject_group(items, k)]
        return list(dict.fromkeys(o for o in out if o is not None))

    def animate(o: int) -> bool:
        return objects[o].category in lx.ANIMATE_CATEGORIES

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
        elif kind == "verb":
            # "wearing a cap", "holding an umbrella": into the owner's prompt; "riding a horse"; "flying a kite"
            targets = _following_nps(items, k + 1)
            owner = obj_for(last_np, False) if last_np is not None else None
            for t in targets:
                if owner is None or objects[owner].kind != "thing":
                    obj_for(t, False)
                elif it[1] == "attach" and info(t).kind not in lx.BANDS:
                    attach(owner, t, it[2])
                elif it[1] == "riding":
                    o = obj_for(t, False)
                    if o is not None and o != owner:
                        relations.append((owner, "on" if objects[o].kind in lx.BANDS else "riding", o, it[2]))
                elif it[1] == "flying":
                    o = obj_for(t, False)
                    if o is not None and o != owner:
                        objects[o].elevated = True
                        relations.append((o, "above", owner, it[2]))
            if it[1] == "flying" and not targets and owner is not None:
                objects[owner].elevated = True
            if targets:
                k = targets[-1]
        elif kind == "prep":
            targets = _following_nps(items, k + 1)
            owner = obj_for(last_np, False) if last_np is not None else None
            if not targets:
                pass
            elif it[1] == "with" and owner is not None and objects[owner].kind == "thing":
                while (
                    targets[-1] + 2 < len(items)
                    and items[targets[-1] + 1][0] == "conj"
                    and items[targets[-1] + 1][1] == "and"
                    and items[targets[-1] + 2][0] == "np"
                    and info(targets[-1] + 2).kind in ("part", "wearable", "thing")
                    and not _relation_follows(items, targets[-1] + 2, "near")
                ):
                    targets.append(targets[-1] + 2)  # "with pepperoni and olives on a table": both toppings
                for t in targets:
                    ti = info(t)
                    if placement_word(t) or ti.kind == "non-object":
                        obj_for(t, False)
                    elif ti.kind in ("part", "wearable") or (ti.category in _ATTACH_CATEGORIES and animate(owner)):
                        attach(owner, t, "with")
                    elif objects[owner].category in lx.CONTAINER_CATEGORIES and ti.kind == "thing":
                        o = obj_for(t, False)  # "a bowl of ramen with two eggs": contained, and named in the bowl's prompt
                        if o is not None and o != owner:
                            owner_of[t] = owner
                            objects[owner].extras.append("with " + _phrase(items[t][1]))
                            relations.append((o, "inside", owner, "with"))
                    else:
                        o = obj_for(t, False)  # "a man with a dog": beside; "with mountains": a band of its own
                        if o is not None and o != owner and objects[o].kind == "thing":
                            relations.append((o, "near", owner, "with"))
                k = targets[-1]
                last_np = targets[-1] if np_index.get(targets[-1]) not in (None, ATTACHED) else last_np
            elif it[1] in ("to", "at") and placement_word(targets[0]):
                hint(subjects_of(last_np), targets[0])
                k = targets[0]
            elif it[1] in _LOCATIVE:
                for t in targets:
                    ti = info(t)
                    if ti.kind in lx.BANDS:
                        o = obj_for(t, False)
                        spans = it[1] in ("across", "through", "along", "around")
                        if owner is not None and o is not None and spans and ti.kind == "ground":
                            relations.append((owner, "on", o, it[1]))
                    elif (items[t][1].noun in lx.SCENES and ti.kind != "thing") or ti.kind == "setting":
                        obj_for(t, True)
                    else:
                        obj_for(t, False)
                k = targets[-1]
        elif kind == "rel":
            rel, phrase = it[1], it[2]
            targets = _following_nps(items, k + 1)
            subj_k = last_np
            subjects = subjects_of(subj_k)
            if targets and placement_word(targets[0]) and rel in ("on", "inside", "near"):
                hint(subjects, targets[0])  # "on the left", "in the background"
                k = targets[0]
            elif targets and all(info(t).kind == "non-object" or items[t][1].noun in lx.NON_OBJECTS for t in targets):
                for t in targets:
                    obj_for(t, False)  # "in the rain", "at night", "on a sunny day"
                k = targets[-1]
            elif (
                targets
                and rel in ("inside", "on", "near")
                and info(targets[0]).kind not in lx.BANDS
                and (
                    (items[targets[0]][1].noun in lx.SCENES and info(targets[0]).kind != "thing")
                    or (info(targets[0]).kind == "setting" and rel == "inside")
                )
            ):
                for t in targets:
                    obj_for(t, True)
                k = targets[-1]
            elif targets and rel == "inside" and info(targets[0]).kind == "wearable" and subjects and objects[subjects[-1]].kind == "thing":
                attach(subjects[-1], targets[0], "in")  # "a woman in a yellow raincoat"
                for t in targets[1:]:
                    attach(subjects[-1], t, "and")
                k = targets[-1]
            elif subjects and targets:
                objs = [obj_for(t, False) for t in targets]
                if rel in ("on", "inside"):
                    # "a cup next to a croissant on a table": both rest on the table
                    subjects = subjects + [a for a, r_, b, _ in relations if r_ == "near" and b in subjects and a not in subjects]
                for subj in subjects:
                    if rel == "between":
                        real = [o for o in objs if o is not None and o != subj]
                        if len(real) >= 2:
                            relations.append((subj, "right_of", real[0], phrase))
                            relations.append((subj, "left_of", real[1], phrase))
                        elif real and objects[real[0]].count >= 2:
                            relations.append((subj, "between", real[0], phrase))  # "between two palm trees"
                        elif real:
                            relations.append((subj, "near", real[0], phrase))
                        continue
                    for o in objs:
                        if o is None or o == subj:
                            continue
                        band = objects[o].kind in lx.BANDS
                        if band and objects[subj].kind == "thing":
                            if rel in ("on", "inside"):
                                relations.append((subj, "on", o, phrase))  # rests in the band
                            elif rel == "above" and objects[o].kind == "ground":
                                relations.append((subj, "above", o, phrase))
                            continue
                        if objects[subj].kind in lx.BANDS:
                            continue  # a band's place is fixed
                        if (
                            rel == "on"
                            and objects[o].category in lx.MOUNT_CATEGORIES
                            and animate(subj)
                            and objects[subj].category == "person"
                        ):
                            relations.append((subj, "riding", o, phrase))  # "a cowboy on a horse"
                        else:
                            relations.append((subj, rel, o, phrase))
                k = targets[-1]
                if rel != "between" and objs and objs[0] is not None and objects[objs[0]].kind == "thing":
                    last_np = targets[0]
            elif targets:
                for t in targets:
                    obj_for(t, False)
                k = targets[-1]
                last_np = targets[0]
        k += 1
    for k2, it in enumerate(items):
        if it[0] == "np":
            obj_for(k2, False)
    for o in objects:
        if o.extras:
            o.phrase = " ".join([o.phrase] + o.extras)
    background = None
    if scene_parts:
        phrase = ", ".join(dict.fromkeys(p for p, _ in scene_parts))
        attrs = [a for _, aa in scene_parts for a in aa]
        background = ParsedObject(phrase.split(",")[0].split()[-1], phrase, 1, attrs, True, -1, kind="setting")
    return ParsedGoal(goal, objects, relations, background)


def _relation_follows(items: list[tuple], k: int, rel: str) -> bool:
    return k + 1 < len(items) and items[k + 1][0] == "rel" and items[k + 1][1] == rel


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
    while (
        k >= 2
        and items[k - 1][0] in ("conj", "comma")
        and (items[k - 1][0] == "comma" or items[k - 1][1] == "and")
        and items[k - 2][0] == "np"
        and not (k >= 3 and items[k - 3][0] in ("rel", "prep"))
    ):
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
