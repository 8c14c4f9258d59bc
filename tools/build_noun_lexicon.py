"""Build pakati_core/phrases/data/nouns.tsv: kind, category, typical size and aspect for common concrete nouns.

Source: Princeton WordNet 3.0 (the Debian package ``wordnet-base``: /usr/share/wordnet/{index,data}.noun)
for what a noun is, ranked by the ``wordfreq`` package (PyPI; its data ships in the wheel) for how
common it is. Neither is needed at run time: the planner reads only the TSV this script writes.

    apt-get install wordnet-base   # or: apt-get download wordnet-base && dpkg-deb -x wordnet-base_*.deb DIR
    pip install wordfreq
    python tools/build_noun_lexicon.py [--wordnet /usr/share/wordnet] [--out pakati_core/phrases/data/nouns.tsv]

For each single-word noun, its most frequent concrete sense (WordNet lists senses by frequency;
the first of the first four whose lexicographer file is drawable: animal, artifact, body, food,
object, person, plant, location; else phenomenon, substance, time) is walked up its hypernyms
breadth-first to the nearest *anchor* below (a WordNet synset named by lemma and sense number),
which gives the row: kind (thing, ground, sky, backdrop, setting, part, wearable, non-object),
category, size (typical height relative to a standing adult, 1.0) and aspect (width / height).
Nouns are kept when their Zipf frequency is at least ``--min-zipf`` and a kind was found; the
hand corrections in ``OVERRIDES`` (first senses that are not what a picture means: "plant" is
a factory in WordNet's first sense) are applied last and listed in the output's header.
"""

from __future__ import annotations

import argparse
from collections import deque
from pathlib import Path

CONCRETE_FILES = {"05", "06", "08", "13", "15", "17", "18", "19", "20", "27", "28"}
DRAWABLE_FILES = ("05", "06", "08", "13", "17", "18", "20")  # with places ("15"), preferred over phenomena, substances, times
REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "pakati_core" / "phrases" / "data" / "nouns.tsv"

# (lemma, sense) -> (kind, category, size relative to a person's height, aspect w/h). Nearest anchor wins.
ANCHORS: list[tuple[str, int, str, str, float, float]] = [
    # people
    ("person", 1, "thing", "person", 1.0, 0.42),
    ("child", 1, "thing", "person", 0.65, 0.45),
    ("baby", 1, "thing", "person", 0.35, 0.9),
    ("juvenile", 1, "thing", "person", 0.7, 0.45),
    # animals
    ("animal", 1, "thing", "animal", 0.4, 1.3),
    ("mammal", 1, "thing", "animal", 0.5, 1.3),
    ("bird", 1, "thing", "bird", 0.18, 1.0),
    ("fish", 1, "thing", "fish", 0.15, 2.2),
    ("insect", 1, "thing", "insect", 0.04, 1.3),
    ("arthropod", 1, "thing", "insect", 0.05, 1.3),
    ("reptile", 1, "thing", "reptile", 0.2, 2.5),
    ("amphibian", 3, "thing", "animal", 0.08, 1.3),
    ("mollusk", 1, "thing", "animal", 0.06, 1.3),
    ("dog", 1, "thing", "animal", 0.4, 1.25),
    ("domestic_cat", 1, "thing", "animal", 0.3, 1.25),
    ("big_cat", 1, "thing", "animal", 0.65, 1.6),
    ("horse", 1, "thing", "mount", 1.0, 1.25),
    ("equine", 1, "thing", "mount", 0.9, 1.25),
    ("bovid", 1, "thing", "animal", 0.8, 1.4),
    ("cattle", 1, "thing", "animal", 0.85, 1.5),
    ("elephant", 1, "thing", "mount", 1.8, 1.3),
    ("giraffe", 1, "thing", "animal", 2.7, 0.55),
    ("bear", 1, "thing", "animal", 0.8, 1.4),
    ("rodent", 1, "thing", "animal", 0.08, 1.5),
    ("primate", 2, "thing", "animal", 0.6, 0.8),
    ("cetacean", 1, "thing", "animal", 1.5, 3.5),
    ("even-toed_ungulate", 1, "thing", "animal", 0.8, 1.3),
    ("camel", 1, "thing", "mount", 1.3, 1.2),
    ("rabbit", 1, "thing", "animal", 0.15, 1.2),
    ("canine", 2, "thing", "animal", 0.45, 1.3),
    ("feline", 1, "thing", "animal", 0.4, 1.4),
    ("snake", 1, "thing", "reptile", 0.08, 3.0),
    ("butterfly", 1, "thing", "insect", 0.05, 1.4),
    ("penguin", 1, "thing", "bird", 0.4, 0.6),
    ("owl", 1, "thing", "bird", 0.25, 0.7),
    ("parrot", 1, "thing", "bird", 0.2, 0.6),
    ("swan", 1, "thing", "bird", 0.35, 1.0),
    # plants
    ("plant", 2, "thing", "plant", 0.3, 0.8),
    ("tree", 1, "thing", "tree", 3.5, 0.8),
    ("shrub", 1, "thing", "plant", 0.8, 1.3),
    ("flower", 1, "thing", "plant", 0.2, 0.6),
    ("flower", 2, "thing", "plant", 0.08, 1.0),
    ("grass", 1, "ground", "vegetation", 0.3, 4.0),
    ("cactus", 1, "thing", "plant", 0.8, 0.6),
    ("mushroom", 2, "thing", "plant", 0.06, 1.0),
    ("vegetable", 1, "thing", "food", 0.08, 1.0),
    ("fruit", 1, "thing", "food", 0.06, 1.0),
    ("edible_fruit", 1, "thing", "food", 0.06, 1.0),
    # food
    ("food", 1, "thing", "food", 0.08, 1.2),
    ("food", 2, "thing", "food", 0.08, 1.2),
    ("dish", 2, "thing", "food", 0.08, 1.8),
    ("beverage", 1, "thing", "drink", 0.08, 0.7),
    ("baked_goods", 1, "thing", "food", 0.06, 1.4),
    ("cake", 3, "thing", "food", 0.12, 1.4),
    ("sandwich", 1, "thing", "food", 0.06, 1.5),
    ("pizza", 1, "thing", "food", 0.05, 2.0),
    # body, clothing, accessories
    ("body_part", 1, "part", "body", 0.15, 1.0),
    ("hair", 1, "part", "body", 0.15, 1.0),
    ("beard", 1, "part", "body", 0.08, 1.0),
    ("clothing", 1, "wearable", "clothing", 0.4, 0.6),
    ("headdress", 1, "wearable", "headwear", 0.1, 1.3),
    ("footwear", 2, "wearable", "footwear", 0.08, 1.6),
    ("jewelry", 1, "wearable", "jewellery", 0.04, 1.0),
    ("spectacles", 1, "wearable", "eyewear", 0.05, 2.5),
    ("glasses", 1, "wearable", "eyewear", 0.05, 2.5),
    ("armor", 1, "wearable", "clothing", 0.8, 0.5),
    ("mask", 4, "wearable", "clothing", 0.1, 1.0),
    ("bag", 1, "thing", "carried", 0.2, 1.1),
    ("bag", 4, "thing", "carried", 0.25, 1.0),
    ("umbrella", 1, "thing", "carried", 0.5, 1.4),
    # vehicles
    ("conveyance", 3, "thing", "vehicle", 1.0, 2.2),
    ("vehicle", 1, "thing", "vehicle", 1.0, 2.2),
    ("car", 1, "thing", "vehicle", 0.85, 2.4),
    ("bus", 1, "thing", "vehicle", 1.8, 2.8),
    ("truck", 1, "thing", "vehicle", 1.7, 2.3),
    ("train", 1, "thing", "vehicle", 2.2, 4.0),
    ("locomotive", 1, "thing", "vehicle", 2.4, 2.5),
    ("bicycle", 1, "thing", "mount", 0.6, 1.7),
    ("motorcycle", 1, "thing", "mount", 0.7, 1.6),
    ("vessel", 2, "thing", "vessel", 1.0, 2.2),
    ("boat", 1, "thing", "vessel", 0.8, 2.0),
    ("ship", 1, "thing", "vessel", 4.0, 2.8),
    ("aircraft", 1, "thing", "aircraft", 2.5, 2.4),
    ("sled", 1, "thing", "vehicle", 0.5, 2.0),
    ("wagon", 1, "thing", "vehicle", 1.1, 2.0),
    ("skateboard", 1, "thing", "mount", 0.07, 4.0),
    ("surfboard", 1, "thing", "mount", 0.06, 4.0),
    # buildings and structures
    ("structure", 1, "thing", "structure", 3.0, 1.2),
    ("facility", 1, "thing", "building", 3.0, 1.6),
    ("building", 1, "thing", "building", 5.0, 1.2),
    ("house", 1, "thing", "building", 4.0, 1.3),
    ("tower", 1, "thing", "building", 12.0, 0.35),
    ("bridge", 1, "thing", "structure", 4.0, 3.5),
    ("fence", 1, "thing", "structure", 0.7, 4.0),
    ("tent", 1, "thing", "structure", 1.3, 1.5),
    ("fountain", 2, "thing", "structure", 1.5, 1.2),
    ("statue", 1, "thing", "structure", 1.5, 0.5),
    ("lighthouse", 1, "thing", "building", 8.0, 0.3),
    ("castle", 2, "thing", "building", 10.0, 1.5),
    ("window", 1, "thing", "fixture", 0.8, 0.9),
    ("door", 1, "thing", "fixture", 1.2, 0.45),
    ("wall", 1, "thing", "structure", 1.6, 2.5),
    ("pier", 1, "thing", "structure", 0.3, 4.0),
    ("pier", 2, "thing", "structure", 0.3, 4.0),
    ("windowsill", 1, "thing", "fixture", 0.05, 6.0),
    # furniture and household
    ("furniture", 1, "thing", "furniture", 0.5, 1.5),
    ("seat", 3, "thing", "furniture", 0.55, 0.9),
    ("chair", 1, "thing", "furniture", 0.55, 0.8),
    ("table", 2, "thing", "furniture", 0.45, 1.8),
    ("bed", 1, "thing", "furniture", 0.35, 1.9),
    ("sofa", 1, "thing", "furniture", 0.5, 2.2),
    ("bench", 1, "thing", "furniture", 0.5, 2.6),
    ("desk", 1, "thing", "furniture", 0.45, 1.7),
    ("shelf", 1, "thing", "furniture", 0.9, 1.6),
    ("counter", 1, "thing", "furniture", 0.55, 2.5),
    ("hammock", 2, "thing", "furniture", 0.35, 2.5),
    ("lamp", 1, "thing", "device", 0.35, 0.6),
    ("container", 1, "thing", "container", 0.15, 1.0),
    ("bowl", 3, "thing", "container", 0.07, 2.0),
    ("bowl", 4, "thing", "container", 0.07, 2.0),
    ("plate", 4, "thing", "container", 0.03, 3.5),
    ("tray", 1, "thing", "container", 0.03, 3.5),
    ("cup", 1, "thing", "container", 0.06, 1.0),
    ("glass", 2, "thing", "container", 0.09, 0.6),
    ("bottle", 1, "thing", "container", 0.18, 0.35),
    ("vase", 1, "thing", "container", 0.2, 0.6),
    ("box", 1, "thing", "container", 0.2, 1.3),
    ("basket", 1, "thing", "container", 0.2, 1.4),
    ("jar", 1, "thing", "container", 0.12, 0.8),
    ("pot", 1, "thing", "container", 0.15, 1.2),
    ("bucket", 1, "thing", "container", 0.2, 1.0),
    ("suitcase", 1, "thing", "carried", 0.35, 1.4),
    ("device", 1, "thing", "device", 0.12, 1.0),
    ("instrumentality", 3, "thing", "object", 0.2, 1.0),
    ("artifact", 1, "thing", "object", 0.2, 1.0),
    ("implement", 1, "thing", "carried", 0.12, 0.5),
    ("tool", 1, "thing", "carried", 0.12, 0.5),
    ("utensil", 1, "thing", "carried", 0.1, 0.4),
    ("cutlery", 2, "thing", "carried", 0.1, 0.3),
    ("weapon", 1, "thing", "carried", 0.4, 0.3),
    ("musical_instrument", 1, "thing", "carried", 0.5, 0.6),
    ("book", 2, "thing", "carried", 0.12, 0.75),
    ("book", 1, "thing", "carried", 0.12, 0.75),
    ("toy", 1, "thing", "object", 0.15, 1.0),
    ("ball", 1, "thing", "object", 0.1, 1.0),
    ("balloon", 1, "thing", "carried", 0.15, 0.8),
    ("kite", 3, "thing", "flying", 0.4, 0.8),
    ("candle", 1, "thing", "object", 0.08, 0.3),
    ("computer", 1, "thing", "device", 0.25, 1.4),
    ("telephone", 1, "thing", "carried", 0.08, 0.5),
    ("screen", 3, "thing", "device", 0.4, 1.6),
    ("clock", 1, "thing", "device", 0.2, 1.0),
    ("picture", 2, "thing", "object", 0.4, 1.3),
    ("rug", 1, "thing", "furnishing", 0.02, 2.0),
    ("pillow", 1, "thing", "furnishing", 0.15, 1.4),
    ("blanket", 1, "thing", "furnishing", 0.1, 1.6),
    # land, water, sky (stuff)
    ("body_of_water", 1, "ground", "water", 0.0, 0.0),
    ("beach", 1, "ground", "land", 0.0, 0.0),
    ("shore", 1, "ground", "land", 0.0, 0.0),
    ("land", 4, "ground", "land", 0.0, 0.0),
    ("land", 2, "ground", "land", 0.0, 0.0),
    ("field", 1, "ground", "land", 0.0, 0.0),
    ("grassland", 1, "ground", "land", 0.0, 0.0),
    ("meadow", 1, "ground", "land", 0.0, 0.0),
    ("road", 1, "ground", "road", 0.0, 0.0),
    ("street", 1, "ground", "road", 0.0, 0.0),
    ("path", 2, "ground", "road", 0.0, 0.0),
    ("floor", 1, "ground", "floor", 0.0, 0.0),
    ("snow", 2, "ground", "land", 0.0, 0.0),
    ("ice", 1, "ground", "land", 0.0, 0.0),
    ("sand", 1, "ground", "land", 0.0, 0.0),
    ("wave", 1, "ground", "water", 0.0, 0.0),
    ("puddle", 1, "ground", "water", 0.0, 0.0),
    ("stream", 1, "ground", "water", 0.0, 0.0),
    ("sky", 1, "sky", "sky", 0.0, 0.0),
    ("cloud", 2, "sky", "sky", 0.0, 0.0),
    ("atmosphere", 5, "sky", "sky", 0.0, 0.0),
    ("aurora", 1, "sky", "sky", 0.0, 0.0),
    ("star", 1, "sky", "sky", 0.0, 0.0),
    ("celestial_body", 1, "sky", "sky", 0.0, 0.0),
    ("rainbow", 1, "sky", "sky", 0.0, 0.0),
    ("firework", 1, "sky", "sky", 0.0, 0.0),
    ("mountain", 1, "backdrop", "landform", 0.0, 0.0),
    ("hill", 1, "backdrop", "landform", 0.0, 0.0),
    ("range", 4, "backdrop", "landform", 0.0, 0.0),
    ("skyline", 1, "backdrop", "landform", 0.0, 0.0),
    ("skyline", 2, "backdrop", "landform", 0.0, 0.0),
    ("volcano", 2, "backdrop", "landform", 0.0, 0.0),
    ("cliff", 1, "thing", "landform", 3.0, 1.4),
    ("rock", 2, "thing", "landform", 0.6, 1.4),
    ("rock", 1, "thing", "landform", 0.6, 1.4),
    ("geological_formation", 1, "thing", "landform", 2.0, 1.5),
    ("natural_elevation", 1, "backdrop", "landform", 0.0, 0.0),
    ("branch", 2, "thing", "plant", 0.3, 3.0),
    ("valley", 1, "ground", "land", 0.0, 0.0),
    ("canyon", 1, "ground", "land", 0.0, 0.0),
    # settings: places you are in
    ("room", 1, "setting", "interior", 0.0, 0.0),
    ("area", 5, "setting", "interior", 0.0, 0.0),
    ("location", 1, "setting", "place", 0.0, 0.0),
    ("forest", 2, "setting", "place", 0.0, 0.0),
    ("forest", 1, "setting", "place", 0.0, 0.0),
    ("jungle", 2, "setting", "place", 0.0, 0.0),
    ("desert", 1, "setting", "place", 0.0, 0.0),
    ("park", 2, "setting", "place", 0.0, 0.0),
    ("city", 1, "setting", "place", 0.0, 0.0),
    ("establishment", 4, "setting", "place", 0.0, 0.0),
    ("library", 1, "setting", "interior", 0.0, 0.0),
    ("kitchen", 1, "setting", "interior", 0.0, 0.0),
    ("space", 1, "setting", "place", 0.0, 0.0),
    ("region", 3, "setting", "place", 0.0, 0.0),
    ("geographical_area", 1, "setting", "place", 0.0, 0.0),
    # never a region: time, weather, light, phenomena
    ("time_period", 1, "non-object", "time", 0.0, 0.0),
    ("time_unit", 1, "non-object", "time", 0.0, 0.0),
    ("day", 4, "non-object", "time", 0.0, 0.0),
    ("atmospheric_phenomenon", 1, "non-object", "weather", 0.0, 0.0),
    ("weather", 1, "non-object", "weather", 0.0, 0.0),
    ("light", 1, "non-object", "light", 0.0, 0.0),
    ("light", 2, "non-object", "light", 0.0, 0.0),
    ("natural_phenomenon", 1, "non-object", "phenomenon", 0.0, 0.0),
    ("physical_phenomenon", 1, "non-object", "phenomenon", 0.0, 0.0),
    ("precipitation", 3, "non-object", "weather", 0.0, 0.0),
    ("substance", 1, "thing", "material", 0.1, 1.0),
    ("material", 1, "thing", "material", 0.1, 1.0),
    ("fire", 1, "thing", "phenomenon", 0.3, 1.0),
    ("smoke", 1, "non-object", "phenomenon", 0.0, 0.0),
]

# First senses that are not what a picture means, and stuff words WordNet files elsewhere (kind, category, size, aspect).
OVERRIDES: dict[str, tuple[str, str, float, float]] = {
    "plant": ("thing", "plant", 0.3, 0.8),
    "pool": ("ground", "water", 0.0, 0.0),
    "bank": ("ground", "land", 0.0, 0.0),
    "sea": ("ground", "water", 0.0, 0.0),
    "ocean": ("ground", "water", 0.0, 0.0),
    "lake": ("ground", "water", 0.0, 0.0),
    "river": ("ground", "water", 0.0, 0.0),
    "pond": ("ground", "water", 0.0, 0.0),
    "water": ("ground", "water", 0.0, 0.0),
    "grass": ("ground", "vegetation", 0.0, 0.0),
    "lawn": ("ground", "land", 0.0, 0.0),
    "snow": ("ground", "land", 0.0, 0.0),
    "sand": ("ground", "land", 0.0, 0.0),
    "floe": ("thing", "landform", 0.15, 3.0),
    "glacier": ("backdrop", "landform", 0.0, 0.0),
    "moon": ("sky", "sky", 0.0, 0.0),
    "sun": ("sky", "sky", 0.0, 0.0),
    "stars": ("sky", "sky", 0.0, 0.0),
    "fireworks": ("sky", "sky", 0.0, 0.0),
    "rain": ("non-object", "weather", 0.0, 0.0),
    "fog": ("non-object", "weather", 0.0, 0.0),
    "mist": ("non-object", "weather", 0.0, 0.0),
    "storm": ("non-object", "weather", 0.0, 0.0),
    "sunset": ("non-object", "time", 0.0, 0.0),
    "sunrise": ("non-object", "time", 0.0, 0.0),
    "dusk": ("non-object", "time", 0.0, 0.0),
    "dawn": ("non-object", "time", 0.0, 0.0),
    "night": ("non-object", "time", 0.0, 0.0),
    "twilight": ("non-object", "time", 0.0, 0.0),
    "moonlight": ("non-object", "light", 0.0, 0.0),
    "sunlight": ("non-object", "light", 0.0, 0.0),
    "sunshine": ("non-object", "light", 0.0, 0.0),
    "shadow": ("non-object", "light", 0.0, 0.0),
    "glow": ("non-object", "light", 0.0, 0.0),
    "foreground": ("non-object", "framing", 0.0, 0.0),
    "background": ("non-object", "framing", 0.0, 0.0),
    "distance": ("non-object", "framing", 0.0, 0.0),
    "left": ("non-object", "direction", 0.0, 0.0),
    "right": ("non-object", "direction", 0.0, 0.0),
    "middle": ("non-object", "direction", 0.0, 0.0),
    "center": ("non-object", "direction", 0.0, 0.0),
    "centre": ("non-object", "direction", 0.0, 0.0),
    "side": ("non-object", "direction", 0.0, 0.0),
    "top": ("non-object", "direction", 0.0, 0.0),
    "bottom": ("non-object", "direction", 0.0, 0.0),
    "portrait": ("non-object", "framing", 0.0, 0.0),
    "closeup": ("non-object", "framing", 0.0, 0.0),
    "view": ("non-object", "framing", 0.0, 0.0),
    "scene": ("non-object", "framing", 0.0, 0.0),
    "horizon": ("non-object", "framing", 0.0, 0.0),
    "weather": ("non-object", "weather", 0.0, 0.0),
    "wind": ("non-object", "weather", 0.0, 0.0),
    "tree": ("thing", "tree", 3.5, 0.8),
    "trunk": ("thing", "tree", 3.0, 0.4),
    "hair": ("part", "body", 0.15, 1.0),
    "ponytail": ("part", "body", 0.1, 0.6),
    "beard": ("part", "body", 0.08, 1.0),
    "mustache": ("part", "body", 0.03, 2.5),
    "glasses": ("wearable", "eyewear", 0.05, 2.5),
    "sunglasses": ("wearable", "eyewear", 0.05, 2.5),
    "cap": ("wearable", "headwear", 0.08, 1.3),
    "hat": ("wearable", "headwear", 0.1, 1.4),
    "helmet": ("wearable", "headwear", 0.12, 1.1),
    "tie": ("wearable", "clothing", 0.25, 0.25),
    "suit": ("wearable", "clothing", 0.8, 0.5),
    "dress": ("wearable", "clothing", 0.6, 0.5),
    "coat": ("wearable", "clothing", 0.55, 0.6),
    "scarf": ("wearable", "clothing", 0.2, 1.0),
    "hoodie": ("wearable", "clothing", 0.4, 0.9),
    "candle": ("thing", "object", 0.08, 0.3),
    "egg": ("thing", "food", 0.04, 0.8),
    "cake": ("thing", "food", 0.12, 1.3),
    "teddy": ("thing", "toy", 0.3, 0.8),
    "teddy bear": ("thing", "toy", 0.3, 0.8),
    "lime": ("thing", "food", 0.04, 1.0),
    "lemon": ("thing", "food", 0.05, 0.9),
    "rose": ("thing", "plant", 0.15, 0.8),
    "cherry": ("thing", "food", 0.02, 1.0),
    "peach": ("thing", "food", 0.05, 1.0),
    "oak": ("thing", "tree", 4.0, 0.9),
    "palm": ("thing", "tree", 4.0, 0.6),
    "maple": ("thing", "tree", 4.0, 0.9),
    "pepperoni": ("part", "topping", 0.01, 1.0),
    "olive": ("thing", "food", 0.02, 1.0),
    "kite": ("thing", "flying", 0.4, 0.8),
    "balloon": ("thing", "carried", 0.15, 0.8),
    "cup": ("thing", "container", 0.06, 1.0),
    "mug": ("thing", "container", 0.07, 1.1),
    "glass": ("thing", "container", 0.09, 0.6),
    "plate": ("thing", "container", 0.03, 3.5),
    "bowl": ("thing", "container", 0.07, 2.0),
    "table": ("thing", "furniture", 0.45, 1.8),
    "bench": ("thing", "furniture", 0.5, 2.6),
    "branch": ("thing", "plant", 0.3, 3.0),
    "window": ("thing", "fixture", 0.8, 0.9),
    "station": ("thing", "building", 3.0, 2.0),
    "convertible": ("thing", "vehicle", 0.8, 2.4),
    "post": ("thing", "structure", 0.6, 0.3),
    "frisbee": ("thing", "object", 0.03, 1.0),
    "chopsticks": ("thing", "carried", 0.02, 6.0),
    "fries": ("thing", "food", 0.08, 1.0),
    "sandcastle": ("thing", "structure", 0.2, 1.3),
    "city": ("setting", "place", 0.0, 0.0),
    "town": ("setting", "place", 0.0, 0.0),
    "village": ("setting", "place", 0.0, 0.0),
    "world": ("non-object", "abstract", 0.0, 0.0),
    "nature": ("non-object", "abstract", 0.0, 0.0),
    "air": ("non-object", "weather", 0.0, 0.0),
    "light": ("non-object", "light", 0.0, 0.0),
    "day": ("non-object", "time", 0.0, 0.0),
    "morning": ("non-object", "time", 0.0, 0.0),
    "evening": ("non-object", "time", 0.0, 0.0),
    "afternoon": ("non-object", "time", 0.0, 0.0),
    "midnight": ("non-object", "time", 0.0, 0.0),
    "noon": ("non-object", "time", 0.0, 0.0),
    "winter": ("non-object", "time", 0.0, 0.0),
    "summer": ("non-object", "time", 0.0, 0.0),
    "autumn": ("non-object", "time", 0.0, 0.0),
    "spring": ("non-object", "time", 0.0, 0.0),
    "fall": ("non-object", "time", 0.0, 0.0),
    "sailor": ("thing", "person", 1.0, 0.42),
    "toddler": ("thing", "person", 0.5, 0.45),
    "man": ("thing", "person", 1.0, 0.42),
    "woman": ("thing", "person", 0.97, 0.42),
    "girl": ("thing", "person", 0.8, 0.42),
    "boy": ("thing", "person", 0.8, 0.42),
    "mouse": ("thing", "animal", 0.04, 1.6),
    "cat": ("thing", "animal", 0.3, 1.0),
    "kitten": ("thing", "animal", 0.18, 1.0),
    "puppy": ("thing", "animal", 0.22, 1.2),
    "wave": ("ground", "water", 0.0, 0.0),
    "meadow": ("ground", "land", 0.0, 0.0),
    "valley": ("ground", "land", 0.0, 0.0),
    "canyon": ("ground", "land", 0.0, 0.0),
    "house": ("thing", "building", 4.0, 1.3),
    "barn": ("thing", "building", 4.0, 1.3),
    "castle": ("thing", "building", 10.0, 1.5),
    "mountains": ("backdrop", "landform", 0.0, 0.0),
    "rock": ("thing", "landform", 0.6, 1.4),
    "hammock": ("thing", "furniture", 0.35, 2.5),
    "ramen": ("thing", "food", 0.05, 1.5),
    "waterfall": ("thing", "landform", 4.0, 0.7),
    "fountain": ("thing", "structure", 1.5, 1.2),
}


def read_wordnet(root: Path) -> tuple[dict[str, list[str]], dict[str, tuple[str, list[str], list[str], bool]]]:
    index: dict[str, list[str]] = {}
    for line in (root / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        p = line.split()
        pcnt = int(p[3])
        rest = p[4 + pcnt :]
        n = int(rest[0])
        index[p[0]] = rest[2 : 2 + n]
    data: dict[str, tuple[str, list[str], list[str], bool]] = {}
    for line in (root / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        p = line.split("|")[0].split()
        off, lexfile, wcnt = p[0], p[1], int(p[3], 16)
        words = [p[4 + 2 * k].lower() for k in range(wcnt)]
        k = 4 + 2 * wcnt
        pcnt = int(p[k])
        hyper = [p[k + 1 + 4 * j + 1] for j in range(pcnt) if p[k + 1 + 4 * j] in ("@", "@i")]
        instance = any(p[k + 1 + 4 * j] == "@i" for j in range(pcnt))
        data[off] = (lexfile, words, hyper, instance)
    return index, data


def build(root: Path, min_zipf: float, min_zipf_compound: float) -> list[tuple[str, str, str, float, float, str]]:
    from wordfreq import zipf_frequency

    index, data = read_wordnet(root)
    anchors: dict[str, tuple[str, str, float, float]] = {}
    for lemma, sense, kind, cat, size, aspect in ANCHORS:
        offs = index.get(lemma, [])
        if len(offs) >= sense:
            anchors[offs[sense - 1]] = (kind, cat, size, aspect)
    rows = []
    for key, offs in index.items():
        parts = key.split("_")
        if not all(p.isalpha() and p.islower() for p in parts) or len(parts) > 3:
            continue
        word = " ".join(parts)  # compounds ("teddy bear", "gas station") are looked up before their head
        z = zipf_frequency(word, "en")
        if z < (min_zipf if len(parts) == 1 else min_zipf_compound):
            continue
        if word in OVERRIDES:
            kind, cat, size, aspect = OVERRIDES[word]
            rows.append((word, kind, cat, size, aspect, "override"))
            continue
        food = next((o for o in offs[:2] if data[o][0] == "13"), None)  # "a peach" is the fruit, not the tree
        sense = (
            (food if food and data[offs[0]][0] in ("20", "27", "13") else None)
            or next((o for o in offs[:4] if data[o][0] in DRAWABLE_FILES + ("15",)), None)
            or next((o for o in offs[:3] if data[o][0] in CONCRETE_FILES), None)
        )
        if sense is None or data[sense][3]:  # abstract, or a proper name (an instance: "tunis", "saturn")
            continue
        seen, queue, found = {sense}, deque([sense]), None
        while queue and found is None:
            o = queue.popleft()
            if o in anchors:
                found = anchors[o]
                break
            for h in data[o][2]:
                if h not in seen:
                    seen.add(h)
                    queue.append(h)
        if found is None:
            continue
        kind, cat, size, aspect = found
        if data[sense][0] == "28":
            kind, cat, size, aspect = "non-object", "time", 0.0, 0.0
        rows.append((word, kind, cat, size, aspect, f"wordnet:{sense}"))
    for word, (kind, cat, size, aspect) in OVERRIDES.items():
        if word not in {r[0] for r in rows}:
            rows.append((word, kind, cat, size, aspect, "override"))
    rows.sort()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--min-zipf", type=float, default=2.3, help="keep nouns at least this common (wordfreq Zipf scale)")
    ap.add_argument("--min-zipf-compound", type=float, default=3.6, help="the same for two- and three-word compounds")
    args = ap.parse_args()
    rows = build(args.wordnet, args.min_zipf, args.min_zipf_compound)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        f.write("# Generated by tools/build_noun_lexicon.py from Princeton WordNet 3.0 (first concrete sense, nearest anchor\n")
        f.write(
            f"# hypernym) and wordfreq (Zipf >= {args.min_zipf:.1f}); 'override' rows are the script's hand corrections. "
            "Do not edit by hand.\n"
        )
        f.write("# size: typical height relative to a standing adult (1.0); aspect: width / height; 0 for stuff without a size.\n")
        f.write("noun\tkind\tcategory\tsize\taspect\tsource\n")
        for r in rows:
            f.write(f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]:g}\t{r[4]:g}\t{r[5]}\n")
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r[1]] = kinds.get(r[1], 0) + 1
    print(f"{len(rows)} nouns -> {args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
