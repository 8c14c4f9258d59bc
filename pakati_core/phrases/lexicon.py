"""Word lists the offline planner reads goals with: attributes, relations, scenes, sizes, verbs.

Open-class words (nouns, most adjectives) are not listed: the parser finds noun phrases by
structure (determiner ... head before a verb, preposition or conjunction), so nouns it has
never seen still become objects. These lists only say what a word *is* when it matters.
"""

from __future__ import annotations

COLOURS = frozenset(
    """
red green blue yellow black white brown pink purple orange gray grey silver gold golden beige turquoise cyan magenta
violet maroon navy teal tan cream ivory crimson scarlet lavender indigo bronze copper khaki olive lime emerald azure
amber ruby burgundy charcoal colorful colourful multicolored multicoloured
""".split()
)

MATERIALS = frozenset(
    """
wooden wood metallic metal plastic rubber fabric leather glass glassy paper cardboard ceramic porcelain marble stone
steel iron golden silk silken velvet cotton wool woolen woollen denim concrete brick crystal diamond clay bamboo
wicker straw stainless chrome copper bronze tin aluminum aluminium granite plush knitted
""".split()
)

TEXTURES = frozenset(
    """
fluffy furry fuzzy smooth rough soft hard sharp blunt shiny glossy matte sleek bumpy prickly spiky jagged velvety silky
polished textured striped spotted dotted checkered plaid wrinkled crinkled cracked rusty sticky slimy scaly
feathery hairy woolly grainy gritty coarse wet dry icy frosty crisp crunchy leafy mossy sandy rocky dusty muddy
glittering sparkling shimmering gleaming translucent transparent opaque patterned tiled weathered worn
""".split()
)

SHAPES = frozenset(
    """
round square rectangular circular triangular oval oblong pentagonal hexagonal octagonal pyramidal conical
cylindrical spherical cubic cuboid curved angular heart-shaped star-shaped diamond-shaped crescent flat pointed
""".split()
)

SIZES = frozenset(
    """
big large huge giant enormous massive tall long wide small tiny little mini miniature short thin narrow slim
petite oversized towering
""".split()
)


# The attribute kind for a word; materials before textures so "golden" reads as a colour first.
def attribute_kind(word: str) -> str | None:
    if word in COLOURS:
        return "colour"
    if word in MATERIALS:
        return "material"
    if word in TEXTURES:
        return "texture"
    if word in SHAPES:
        return "shape"
    if word in SIZES:
        return "size"
    return None


NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "a": 1,
    "an": 1,
    "single": 1,
    "pair": 2,
    "couple": 2,
    "several": 3,
    "few": 3,
}

DETERMINERS = frozenset("a an the this that these those some his her their its my your our each every another any".split())

CONJUNCTIONS = frozenset("and or but while as so yet nor".split())

# Prepositions that end a noun phrase but are not one of the spatial relations below.
PREPOSITIONS = frozenset(
    """
of with without for from to toward towards into onto through across along around past at by about among against
during after before within like than off up down out upon underneath beneath inside outside via
""".split()
)

# Spatial phrases, longest first when matched. Value: relation kind.
RELATION_PHRASES: dict[tuple[str, ...], str] = {}
for _phrase, _rel in [
    ("on the left of", "left_of"),
    ("on the left side of", "left_of"),
    ("to the left of", "left_of"),
    ("at the left of", "left_of"),
    ("left of", "left_of"),
    ("on left of", "left_of"),
    ("on the right of", "right_of"),
    ("on the right side of", "right_of"),
    ("to the right of", "right_of"),
    ("at the right of", "right_of"),
    ("right of", "right_of"),
    ("on right of", "right_of"),
    ("on the top of", "above"),
    ("on top of", "above"),
    ("at the top of", "above"),
    ("above", "above"),
    ("over", "above"),
    ("atop", "above"),
    ("on the bottom of", "below"),
    ("at the bottom of", "below"),
    ("on bottom of", "below"),
    ("below", "below"),
    ("under", "below"),
    ("underneath", "below"),
    ("beneath", "below"),
    ("crossing", "on"),
    ("next to", "near"),
    ("near", "near"),
    ("beside", "near"),
    ("besides", "near"),
    ("by", "near"),
    ("on side of", "near"),
    ("on the side of", "near"),
    ("at the side of", "near"),
    ("alongside", "near"),
    ("close to", "near"),
    ("adjacent to", "near"),
    ("nearby", "near"),
    ("against", "near"),
    ("in front of", "in_front_of"),
    ("in the front of", "in_front_of"),
    ("behind", "behind"),
    ("hidden by", "behind"),
    ("hidden behind", "behind"),
    ("in the back of", "behind"),
    ("at the back of", "behind"),
    ("inside", "inside"),
    ("in", "inside"),
    ("within", "inside"),
    ("into", "inside"),
    ("on", "on"),
    ("onto", "on"),
    ("upon", "on"),
    ("between", "between"),
    ("in between", "between"),
]:
    RELATION_PHRASES[tuple(_phrase.split())] = _rel
MAX_RELATION_WORDS = max(len(k) for k in RELATION_PHRASES)
# First words of multi-word relation phrases: not the start of a noun phrase ("parked next to").
RELATION_STARTERS = frozenset(k[0] for k in RELATION_PHRASES if len(k) > 1) - {"on", "in", "at", "to", "close"}

# Settings: a noun phrase headed by one of these after a locative word becomes the background.
SCENES = frozenset(
    """
kitchen bathroom bedroom room livingroom office classroom hallway garage attic basement library restaurant cafe
garden park beach forest woods jungle desert field meadow farm street road city town village countryside landscape
sky ocean sea lake river pond mountains hills valley snow tundra space universe night background backyard yard
stadium market shop store mall station airport museum church temple castle playground lawn underwater savanna
sun sunlight sunshine moonlight rain fog mist water waters sunset sunrise dusk dawn
""".split()
)

# Nouns that stand for a property of the thing after "of" ("the taste of the pickles").
ABSTRACT_HEADS = frozenset(
    """
taste scent smell aroma sound surface texture hue hues color colour colors colours shade shades light glow warmth
touch feel flavor flavour flavors movements movement rhythm sight view shape edges edge pattern patterns design
reflection shadow shadows beauty elegance grace piece slice pair group bunch set collection row pile stack cluster
photo photograph picture image illustration drawing render rendering shot closeup close-up snapshot portrait
""".split()
)

# Framing words: "a photo of a red car" is a red car (the framing stays in the base prompt).
FRAMING_HEADS = frozenset(
    "photo photograph picture image illustration drawing render rendering shot closeup close-up snapshot portrait".split()
)

# Heads that cannot be drawn as an object of their own; dropped (their words stay in the base prompt).
NON_OBJECTS = frozenset(
    """
beauty elegance grace display feast testament symphony challenge adventure excitement comfort indulgence strength
sophistication refinement precision artistry innovation creativity wonder love life joy peace fun delight mood
atmosphere ambiance expression emotion mind thought idea skill strategy progress power speed time moment day
air breeze world nature environment feeling sense way work masterpiece punch hint touch appeal welcome respite
relief shade balance harmony contrast energy spirit celebration tranquility serenity warmth
""".split()
)

# Verbs that often follow a subject (past, present, -s forms); -ed words before a non-noun are read as verbs too.
VERBS = frozenset(
    """
is was are were be been being am has have had do does did sits sat sit stands stood stand lies lay lie lying rests
hangs hung hang floats float perches leans leaned looks look seems seem appears appear holds held hold carries carry
cast casts shone shine shines fell fall falls flew fly flies led leads drew draw draws spun set sets cut cuts felt feels
made makes took takes gave gives grew grows ran runs swam swims rose rises sang sings wore wears kept keeps
brought bring brings saw sees sang hid hides stuck sticks struck bloomed blooms filled fills covered covers added adds
towered towers loomed looms danced dances provided provides created creates soothed soothes contrasted contrasts
nestled stretched stretches reflected reflects glistened glistens gleamed gleams sparkled sparkles cradled cradles
hugged hugs warmed warms welcomed welcomes beckoned beckons echoed echoes painted paints framed frames surrounded
surrounds wrapped wraps adorned adorns decorated decorates balanced balances rested rolled rolls landed lands
playing holding wearing sitting standing resting lying riding looking eating drinking reading watching walking running
flying swimming hanging floating perched parked placed positioned located situated mounted suspended propped
drove flew fell swam rode threw blew ate wrote sang shook woke spoke broke chose froze stole wove dove came went
""".split()
)
# -ing / -ed words in VERBS that are much more often modifiers before a noun
MODIFIER_PARTICIPLES = frozenset("parked perched framed painted mounted suspended".split())

LY_WORDS = frozenset(
    """prickly curly bubbly sparkly wrinkly lovely friendly silly ugly woolly chilly hilly jolly holy oily
lively elderly lily belly jelly fly butterfly dragonfly holly trolley family bully wobbly crumbly knobbly""".split()
)

PRONOUNS = frozenset("it they them he she him her we us i you its itself themselves someone something everyone".split())

AUXILIARIES = frozenset(
    "is was are were be been being am has have had do does did will would can could may might shall should must".split()
)
# Words that are verbs in VERBS but name things after a singular noun ("umbrella stand", "red rose").
VERB_NOUNS = frozenset("stand rose set cut cast rest hold fall draw display lay sink light watch cover frame paint".split())
COUNT_NOUNS = frozenset("pair couple single several few".split())

# Common adjectives without a telltale ending ("plump", "warm"): attributes, not compound nouns.
PLAIN_ADJECTIVES = frozenset(
    """plump warm cold cool hot bright dark dim pale deep rich fresh ripe sweet sour bitter old new young
clean dirty empty full open closed bare wild calm quiet loud busy vast tall short huge tiny vivid neon ornate elegant
modern ancient rustic vintage simple plain ripe raw thick thin wide narrow sharp blunt light heavy gentle fierce""".split()
)

ADVERBS_NON_LY = frozenset(
    "very too so quite just also still gently softly there here then now together slightly low high down up away".split()
)

# Relative size (fraction of the canvas's shorter side) for common nouns; others get MEDIUM.
LARGE, MEDIUM, SMALL, TINY = 0.46, 0.34, 0.24, 0.17
_SIZE_WORDS = {
    LARGE: """elephant giraffe horse cow car truck bus train airplane plane boat ship house building tree couch sofa bed
    table refrigerator fridge piano wardrobe bookshelf bookcase dresser desk bathtub tub mountain tower bridge
    motorcycle tractor van limousine whale bear camel zebra person man woman boy girl child people statue fountain
    fireplace shelf cabinet cabinets counter sink window door wall rug carpet mirror painting bench""".split(),
    MEDIUM: """dog cat sheep pig goat deer chair stool lamp television tv computer monitor microwave suitcase backpack bicycle
    bike plant cactus vase oven stove toilet guitar umbrella pillow cushion blanket basket box chest drum tiger lion
    wolf fox kangaroo penguin monkey horse pony chicken turkey swan flamingo sculpture trophy nightstand armchair
    laptop bag purse hat coat jacket dress shirt sweater towel curtain sunflower bush pumpkin cake teapot""".split(),
    SMALL: """bird rabbit frog turtle mouse fish duck owl parrot kitten puppy squirrel hamster cup mug bowl plate clock
    book phone bottle glass candle apple banana orange lemon lime pear peach tomato vase shoe shoes boot boots
    wallet keyboard camera bread sandwich pizza flower rose tulip daisy lily ball balloon bowtie tie scarf spoon
    fork knife pen pencil notebook remote watch jar pot lantern helmet teddy toy""".split(),
    TINY: """key ring coin bee butterfly ladybug fly ant spider snail stamp button earring earrings necklace bracelet
    eraser marker grape cherry strawberry acorn dice nail pin badge leaf feather""".split(),
}
SIZE_OF: dict[str, float] = {w: s for s, words in _SIZE_WORDS.items() for w in words}
SIZE_SCALE = {
    "big": 1.25,
    "large": 1.25,
    "huge": 1.4,
    "giant": 1.4,
    "enormous": 1.4,
    "massive": 1.4,
    "tall": 1.15,
    "long": 1.1,
    "wide": 1.1,
    "oversized": 1.3,
    "towering": 1.3,
    "small": 0.75,
    "tiny": 0.6,
    "little": 0.75,
    "mini": 0.65,
    "miniature": 0.6,
    "short": 0.85,
    "petite": 0.75,
}
# Aspect (width / height) of the box a noun usually fills.
TALL_THINGS = frozenset(
    """giraffe person man woman boy girl child people tree tower bottle vase lamp candle
refrigerator fridge door statue sunflower cactus plant umbrella wardrobe bookshelf bookcase dress coat""".split()
)
WIDE_THINGS = frozenset(
    """car truck bus train airplane plane boat ship couch sofa bed table bench desk bathtub
rug carpet mountain bridge limousine whale crocodile snake sink keyboard laptop mattress""".split()
)


# -- the scene grammar's noun lexicon (generated from WordNet by tools/build_noun_lexicon.py) ------------------
NOUNS_TSV = __import__("pathlib").Path(__file__).with_name("data") / "nouns.tsv"
# kind: thing (gets its own region), ground (a band across the lower part), sky (a band across the top), backdrop
# (a band behind things: mountains, a skyline), setting (the background region), part / wearable (belong to their
# owner's prompt), non-object (times, weather, light, directions, framing: never a region).
KINDS = ("thing", "ground", "sky", "backdrop", "setting", "part", "wearable", "non-object")
BANDS = ("ground", "sky", "backdrop")


class NounInfo(tuple):
    """(kind, category, size, aspect): size is a typical height relative to a standing adult, aspect width / height."""

    __slots__ = ()

    def __new__(cls, kind: str, category: str, size: float, aspect: float) -> "NounInfo":
        return super().__new__(cls, (kind, category, size, aspect))

    kind = property(lambda self: self[0])
    category = property(lambda self: self[1])
    size = property(lambda self: self[2])
    aspect = property(lambda self: self[3])


UNKNOWN_THING = NounInfo("thing", "object", 0.3, 1.0)


@__import__("functools").lru_cache(maxsize=1)
def noun_table() -> dict[str, NounInfo]:
    """The lexicon file as {noun: NounInfo}; read once."""
    out: dict[str, NounInfo] = {}
    for line in NOUNS_TSV.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith(("#", "noun\t")):
            continue
        noun, kind, cat, size, aspect, _ = line.split("\t")
        out[noun] = NounInfo(kind, cat, float(size), float(aspect))
    return out


# Verbs that attach what follows to the subject (its prompt), or relate it: "wearing a cap", "holding an umbrella",
# "riding a horse", "flying a kite" (the kite is above the flyer).
ATTACH_VERBS = {
    **dict.fromkeys(
        "wearing wears wore dressed holding holds held carrying carries carried reading reads clutching grasping hugging cradling".split(),
        "attach",
    ),
    **dict.fromkeys("riding rides rode driving drives".split(), "riding"),
    **dict.fromkeys("flying flies".split(), "flying"),
}
# Nouns after "on the" / "to the" / "in the" that place the subject instead of being drawn.
DIRECTIONS = {"left": "left", "right": "right", "middle": "center", "center": "center", "centre": "center"}
DEPTHS = {
    "foreground": "foreground",
    "front": "foreground",
    "background": "background",
    "distance": "background",
    "back": "background",
    "horizon": "background",
}
# Categories whose owner keeps a "with X" phrase in its prompt (contained in it) rather than standing beside it.
CONTAINER_CATEGORIES = frozenset("container food drink".split())
MOUNT_CATEGORIES = frozenset("mount".split())
ANIMATE_CATEGORIES = frozenset("person animal bird".split())
