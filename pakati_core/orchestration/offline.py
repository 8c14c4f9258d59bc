"""The offline planner: deterministic, no network, no weights — a goal becomes a plan in milliseconds."""

from __future__ import annotations

import re
from typing import Any

from ..canvas import validate_canvas_size
from ..errors import CanvasSizeError
from ..phrases import lexicon as lx
from ..phrases.reader import ParsedGoal, ParsedObject, noun_info, parse_goal, singular
from .errors import PlanError
from .layout import Item, place
from .plan_model import Attribute, Plan, PlannedObject, Relation, Task
from .rules import layout_violations
from .solver import solve_layout

MAX_OBJECTS = 31  # plus one background region: the canvas carries at most 32
MAX_INSTANCES = 8  # "twenty birds" is drawn as eight regions and a group prompt
DEFAULT_NEGATIVE = "blurry, low quality, deformed, distorted, extra limbs, watermark, text"
DEFAULT_GENERATE = {"steps": 25, "cfg": 6.5, "base_weight": 0.3, "denoise": 1.0}
DEFAULT_CHECK = {"threshold": 0.75}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "object"


def _instances(objects: list[ParsedObject]) -> tuple[list[tuple[ParsedObject, str, str, int]], dict[int, list[int]]]:
    """One entry per region: (parsed object, noun, phrase, count); and parsed index -> entry indices."""
    out: list[tuple[ParsedObject, str, str, int]] = []
    of: dict[int, list[int]] = {}
    for k, o in enumerate(objects):
        n = o.count if o.count > 1 else 1
        if n > 1:
            noun = singular(o.noun)
            phrase = re.sub(rf"\b{re.escape(o.noun)}\b(?!.*\b{re.escape(o.noun)}\b)", noun, o.phrase) if noun != o.noun else o.phrase
            shown = min(n, MAX_INSTANCES)
            of[k] = []
            for _ in range(shown):
                of[k].append(len(out))
                out.append((o, noun, phrase, n))
        else:
            of[k] = [len(out)]
            out.append((o, o.noun, o.phrase, 1))
        if len(out) >= MAX_OBJECTS:
            break
    return out[:MAX_OBJECTS], {k: [i for i in v if i < MAX_OBJECTS] for k, v in of.items()}


def build_plan(
    parsed: ParsedGoal,
    width: int,
    height: int,
    seed: int = 0,
    base_negative: str | None = None,
    generate: dict | None = None,
    notes: list[str] | None = None,
    planner: str = "offline",
) -> Plan:
    """Turn a parsed goal into a plan: regions placed so that the relations hold."""
    entries, of = _instances(parsed.objects)
    notes = list(notes or [])
    if sum(o.count for o in parsed.objects) > len(entries):
        notes.append(f"counts above {MAX_INSTANCES} per object (or {MAX_OBJECTS} in all) are drawn with fewer regions")
    ids: list[str] = []
    used: set[str] = set()
    for o, noun, _, _ in entries:
        base = _slug(noun)
        name, k = base, 1
        while name in used or name == "background":
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        ids.append(name)
    rels: list[tuple[str, str, str, str]] = []
    for a, rel, b, phrase in parsed.relations:
        left, right = of.get(a, []), of.get(b, [])
        if rel == "between" and len(right) >= 2:
            # "a hammock between two palm trees": right of the first, left of the second
            for ia in left:
                rels += [(ids[ia], "right_of", ids[right[0]], phrase), (ids[ia], "left_of", ids[right[1]], phrase)]
            continue
        if rel == "between":
            rel = "near"
        if rel == "near" and (len(left) > 1 or len(right) > 1) and left and right:
            # "three bottles next to three printers": each bottle beside a printer, not beside all of them
            n = max(len(left), len(right))
            pairs = [(left[k % len(left)], right[k % len(right)]) for k in range(n)]
        else:
            pairs = [(ia, ib) for ia in left for ib in right]
        for ia, ib in pairs:
            rels.append((ids[ia], rel, ids[ib], phrase))
    items = []
    for (o, noun, _, _), oid in zip(entries, ids):
        scale = 1.0
        for _, v in o.attributes:
            scale *= lx.SIZE_SCALE.get(v, 1.0)
        info = o.lex or noun_info(noun)
        items.append(Item(oid, noun, len(items), scale, o.kind, info.category, info.size, info.aspect, o.hint, o.depth, o.elevated))
    bands = {it.id for it in items if it.kind in lx.BANDS}
    layout_triples = [(a, r, b) for a, r, b, _ in rels]
    boxes, z = place(items, layout_triples, width, height)
    # the plan keeps the relations its rules can check: band relations are the layout's business, riding is "on"
    rels = [(a, "on" if r == "riding" else r, b, p) for a, r, b, p in rels if a not in bands and b not in bands]
    triples = [(a, r, b) for a, r, b, _ in rels]
    colours = {oid: {v for kd, v in o.attributes if kd == "colour"} for (o, *_), oid in zip(entries, ids)}
    regions_by_id: dict[str, dict] = {}
    objects: list[PlannedObject] = []
    feather = round(0.015 * min(width, height), 1)
    for (o, noun, phrase, count), oid in zip(entries, ids):
        others = sorted(set().union(*(c for k, c in colours.items() if k != oid)) - colours[oid]) if len(colours) > 1 else []
        prompt = phrase if count == 1 else f"{phrase}, one of {count}"
        band = oid in bands
        regions_by_id[oid] = {
            "id": oid,
            "name": noun,
            "shape": "rect",
            "points": [],
            "prompt": prompt,
            "negative": "" if band else ", ".join(f"{c} {noun}" for c in others),
            "strength": 0.8 if band else 1.0,
            "feather": feather * (3 if band else 1),
            "seed": None,
            "locked": False,
        }
        objects.append(PlannedObject(oid, noun, oid, phrase, count, tuple(Attribute(k, v) for k, v in o.attributes)))
    relations = [Relation(a, r, b, p) for a, r, b, p in rels]
    plan = _assemble(parsed, width, height, seed, base_negative, generate, notes, planner, regions_by_id, objects, relations, boxes, z)
    if any(v.rule not in ("noun", "attribute") for v in layout_violations(plan)):
        solved, ok = solve_layout(boxes, triples, width, height)
        plan = _assemble(
            parsed, width, height, seed, base_negative, generate, plan.notes, planner, regions_by_id, objects, relations, solved, z
        )
        left = layout_violations(plan)
        if not ok or left:
            plan.notes.append("the relations conflict; the layout keeps as many as it can: " + "; ".join(v.message for v in left[:4]))
    return plan


def _assemble(parsed, width, height, seed, base_negative, generate, notes, planner, regions_by_id, objects, relations, boxes, z) -> Plan:
    regions = []
    if parsed.background is not None:
        bg = parsed.background
        regions.append(
            {
                "id": "background",
                "name": "background",
                "shape": "rect",
                "points": [[0, 0], [width, height]],
                "prompt": bg.phrase,
                "negative": "",
                "strength": 0.7,
                "feather": 0.0,
                "seed": None,
                "locked": False,
            }
        )
    for oid in z:
        r = dict(regions_by_id[oid])
        x0, y0, x1, y1 = boxes[oid]
        x0, x1 = sorted((min(max(x0, 0.0), width - 2.0), min(max(x1, 0.0), width)))
        y0, y1 = sorted((min(max(y0, 0.0), height - 2.0), min(max(y1, 0.0), height)))
        r["points"] = [[round(x0, 1), round(y0, 1)], [round(max(x1, x0 + 2), 1), round(max(y1, y0 + 2), 1)]]
        regions.append(r)
    objs = list(objects)
    if parsed.background is not None:
        bg = parsed.background
        objs.insert(
            0, PlannedObject("background", bg.noun, "background", bg.phrase, 1, tuple(Attribute(k, v) for k, v in bg.attributes), True)
        )
    region_ids = [r["id"] for r in regions]
    gen = {**DEFAULT_GENERATE, **(generate or {}), "seed": int(seed)}
    tasks = [Task("generate", "generate", tuple(region_ids), gen), Task("check", "check", (), dict(DEFAULT_CHECK), ("generate",))]
    canvas = {"version": 1, "width": width, "height": height, "regions": regions}
    goal_text = parsed.goal.strip()
    return Plan(
        goal_text,
        canvas,
        goal_text.rstrip(" ."),
        DEFAULT_NEGATIVE if base_negative is None else base_negative,
        objs,
        list(relations),
        tasks,
        planner,
        int(seed),
        list(notes),
    )


def plan_offline(
    goal: str,
    width: int = 1024,
    height: int = 1024,
    seed: int = 0,
    base_negative: str | None = None,
    generate: dict | None = None,
    **options: Any,
) -> Plan:
    """Parse ``goal`` and place its objects; the same goal and options always give the same plan."""
    if options:
        raise PlanError(f"unknown option(s) {sorted(options)} for the offline planner", field="options")
    try:
        validate_canvas_size(width, height)
    except CanvasSizeError as e:
        raise PlanError(e.message, field=e.field) from None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise PlanError(f"seed must be an integer, got {seed!r}", field="seed")
    parsed = parse_goal(goal)
    if not parsed.objects and parsed.background is None:
        # no concrete noun ("a beautiful sunset", "a feeling of nostalgia"): one full-canvas region, never an error
        whole = ParsedObject("scene", goal.strip().rstrip(" ."), 1, [], True, -1, kind="setting")
        note = "no concrete noun to place: the plan is one full-canvas region with the whole goal as its prompt"
        return build_plan(ParsedGoal(parsed.goal, [], [], whole), width, height, seed, base_negative, generate, [note])
    return build_plan(parsed, width, height, seed, base_negative, generate)
