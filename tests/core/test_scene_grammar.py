"""The offline planner's scene grammar: one test per rule (stuff bands, settings, non-objects, owners,
relations with geometry, counts, scale and depth, refusals) and the lexicon it reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pakati_core.orchestration import GoalError, Plan, PlanError, plan
from pakati_core.orchestration.rules import has_word, layout_violations
from pakati_core.phrases import lexicon as lx

W = H = 1024


def objs(p: Plan, noun: str):
    return [o for o in p.objects if not o.background and (o.noun == noun or o.noun.rstrip("s") == noun)]


def box(p: Plan, noun: str, k: int = 0):
    return p.box(objs(p, noun)[k].id)


def prompt(p: Plan, noun: str) -> str:
    return p.region(objs(p, noun)[0].region_id)["prompt"]


def centre(b):
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def inside(a, b, tol=2.0):
    return a[0] >= b[0] - tol and a[1] >= b[1] - tol and a[2] <= b[2] + tol and a[3] <= b[3] + tol


def area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


# -- lexicon -------------------------------------------------------------------------------------
def test_lexicon_covers_a_thousand_common_concrete_nouns_with_kind_size_and_aspect():
    table = lx.noun_table()
    concrete = [n for n, e in table.items() if e.kind in ("thing", "ground", "sky", "backdrop", "part", "wearable")]
    assert len(concrete) >= 1000
    assert {e.kind for e in table.values()} <= set(lx.KINDS)
    assert table["dog"].kind == "thing" and 0 < table["dog"].size < table["horse"].size < table["house"].size
    assert table["giraffe"].aspect < 1 < table["car"].aspect
    assert (table["sea"].kind, table["sky"].kind, table["mountain"].kind) == ("ground", "sky", "backdrop")
    assert (table["beard"].kind, table["raincoat"].kind, table["library"].kind, table["sunset"].kind) == (
        "part",
        "wearable",
        "setting",
        "non-object",
    )


# -- things, stuff, settings, non-objects --------------------------------------------------------
def test_ground_stuff_is_a_band_across_the_lower_part_and_sky_a_band_across_the_top():
    p = plan("a sailboat on the sea under a cloudy sky", W, H)
    sea, sky, boat = box(p, "sea"), box(p, "sky"), box(p, "sailboat")
    assert sea[0] == 0 and sea[2] == W and sea[3] == H and sea[1] >= 0.3 * H
    assert sky[0] == 0 and sky[2] == W and sky[1] == 0 and sky[3] <= 0.65 * H
    assert sea[1] <= boat[3] <= sea[3]  # the boat floats in the sea band
    z = [r["id"] for r in p.canvas["regions"]]
    assert z.index(objs(p, "sky")[0].region_id) < z.index(objs(p, "sailboat")[0].region_id)


def test_settings_go_to_the_background_region_not_an_object():
    p = plan("a red fox in a snowy forest", W, H)
    assert not objs(p, "forest")
    bg = [o for o in p.objects if o.background]
    assert bg and has_word(p.region(bg[0].region_id)["prompt"], "forest")


@pytest.mark.parametrize(
    "goal,words",
    [
        ("a man riding a horse on a beach at sunset", ["sunset"]),
        ("a woman walking her dog in the rain at night", ["rain", "night"]),
        ("a dog in the foreground and a house in the background", ["foreground", "background"]),
        ("a car on the left and a bicycle on the right", ["left", "right"]),
        ("a cat looking out of a window on a rainy day", ["day"]),
    ],
)
def test_times_weather_light_directions_and_framing_never_get_a_region(goal, words):
    p = plan(goal, W, H)
    for w in words:
        assert not objs(p, w), (w, [o.noun for o in p.objects])
        assert has_word(p.base_prompt, w)  # they still shape the base prompt


# -- owners --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "goal,owner,owned",
    [
        ("portrait of an old sailor with a white beard and a wool cap", "sailor", ["white beard", "wool cap"]),
        ("a woman in a yellow raincoat", "woman", ["yellow raincoat"]),
        ("an old man wearing glasses and a hat sitting on a bench", "man", ["glasses", "hat"]),
        ("a little girl holding a red balloon", "girl", ["red balloon"]),
        ("a knight in shining armor", "knight", ["shining armor"]),
    ],
)
def test_parts_clothing_and_carried_things_go_into_their_owners_prompt(goal, owner, owned):
    p = plan(goal, W, H)
    assert len(objs(p, owner)) == 1
    for phrase in owned:
        assert phrase in prompt(p, owner)
        assert not objs(p, phrase.split()[-1])  # no region of its own beside the owner
    assert not [v for v in layout_violations(p) if v.rule != "bounds"]


# -- relations with geometry ---------------------------------------------------------------------
def test_on_rests_on_the_top_surface_and_a_cat_on_a_sofa_under_a_window_stays_on_the_sofa():
    p = plan("a cat sleeping on a sofa under a window", W, H)
    cat, sofa, window = box(p, "cat"), box(p, "sofa"), box(p, "window")
    assert sofa[0] <= centre(cat)[0] <= sofa[2]
    assert sofa[1] - 0.03 * H <= cat[3] <= sofa[1] + 0.6 * (sofa[3] - sofa[1])
    assert centre(window)[1] < centre(cat)[1] < centre(sofa)[1]


def test_several_things_on_one_surface_stand_side_by_side_on_it():
    p = plan("a cup of coffee next to a croissant on a wooden table", W, H)
    table = box(p, "table")
    for n in ("cup", "croissant"):
        b = box(p, n)
        assert table[0] <= centre(b)[0] <= table[2] and table[1] - 0.03 * H <= b[3] <= table[1] + 0.6 * (table[3] - table[1])
    assert abs(box(p, "cup")[3] - box(p, "croissant")[3]) < 1.0


def test_riding_puts_the_rider_on_the_mount():
    for goal, rider, mount in [
        ("a man riding a horse", "man", "horse"),
        ("a cowboy on a horse", "cowboy", "horse"),
        ("a woman riding a bicycle", "woman", "bicycle"),
    ]:
        p = plan(goal, W, H)
        r, m = box(p, rider), box(p, mount)
        assert m[0] <= centre(r)[0] <= m[2] and m[1] <= r[3] <= m[3] and r[1] < m[1], goal


def test_contents_sit_inside_their_container_one_region_per_instance():
    p = plan("a bowl of ramen with two eggs", W, H)
    assert "ramen" in prompt(p, "bowl") and len(objs(p, "egg")) == 2
    eggs = [box(p, "egg", k) for k in range(2)]
    assert all(inside(e, box(p, "bowl")) for e in eggs) and eggs[0] != eggs[1]
    p = plan("three apples in a wooden bowl", W, H)
    assert len(objs(p, "apple")) == 3 and all(inside(box(p, "apple", k), box(p, "bowl")) for k in range(3))


def test_under_above_front_behind_beside_left_right_between():
    p = plan("a dog sitting under a tree", W, H)
    assert centre(box(p, "dog"))[1] > centre(box(p, "tree"))[1]
    p = plan("a hot air balloon flying over a green valley", W, H)
    assert centre(box(p, "balloon"))[1] < centre(box(p, "valley"))[1]
    p = plan("a red vintage car parked in front of a house", W, H)
    car, house = box(p, "car"), box(p, "house")
    z = [r["id"] for r in p.canvas["regions"]]
    assert car[3] > house[3] and z.index("car") > z.index("house")
    p = plan("a lion resting behind a tall rock", W, H)
    assert box(p, "lion")[3] < box(p, "rock")[3]
    p = plan("a giraffe standing next to a zebra", W, H)
    assert not layout_violations(p)
    p = plan("a car on the left and a bicycle on the right", W, H)
    assert centre(box(p, "car"))[0] < centre(box(p, "bicycle"))[0]
    p = plan("a child sleeping in a hammock between two palm trees", W, H)
    xs = sorted(centre(box(p, "tree", k))[0] for k in range(2))
    assert xs[0] < centre(box(p, "hammock"))[0] < xs[1] and inside(box(p, "child"), box(p, "hammock"))


def test_attributes_stay_with_their_own_noun():
    p = plan("a black cat and a white dog sleeping together", W, H)
    assert "black" in prompt(p, "cat") and "black" not in prompt(p, "dog")
    assert "white" in prompt(p, "dog") and "white" not in prompt(p, "cat")


# -- scale and depth -----------------------------------------------------------------------------
def test_a_single_portrait_subject_fills_at_least_thirty_percent():
    for goal, noun in [
        ("portrait of an old sailor with a white beard", "sailor"),
        ("a man in a black suit and a red tie", "man"),
        ("a bowl of ramen", "bowl"),
    ]:
        p = plan(goal, W, H)
        assert area(box(p, noun)) >= 0.3 * W * H, goal


def test_sizes_come_from_the_lexicon_and_depth_words_move_things():
    p = plan("an elephant and a mouse", W, H)
    assert area(box(p, "elephant")) > 4 * area(box(p, "mouse"))
    p = plan("a woman walking her dog", W, H)
    assert area(box(p, "woman")) > area(box(p, "dog"))
    p = plan("a dog in the foreground and a dog in the background", W, H)
    front = min((p.box(o.id) for o in objs(p, "dog")), key=lambda b: -b[3])
    back = min((p.box(o.id) for o in objs(p, "dog")), key=lambda b: b[3])
    assert front[3] > back[3] and area(front) > area(back)


# -- refusals and robustness ---------------------------------------------------------------------
WORDS = [
    "a",
    "the",
    "red",
    "cat",
    "on",
    "in",
    "with",
    "sofa",
    "sea",
    "sky",
    "riding",
    "horse",
    "wearing",
    "hat",
    "two",
    "eggs",
    "bowl",
    "of",
    "at",
    "night",
    "left",
    "and",
    ",",
    "beard",
    "between",
    "trees",
    "under",
    "foreground",
    "library",
    "flying",
]


@settings(max_examples=120, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=14))
def test_any_word_sequence_plans_or_is_a_typed_error(words):
    goal = " ".join(words)
    try:
        p = plan(goal, 768, 512)
    except (GoalError, PlanError):
        return
    Plan.from_json(p.to_json())
    assert p.canvas["regions"]
    for r in p.canvas["regions"]:
        (x0, y0), (x1, y1) = r["points"]
        assert 0 <= x0 < x1 <= 768 and 0 <= y0 < y1 <= 512
