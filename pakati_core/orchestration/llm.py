"""The LLM planner: a provider fills a fixed JSON schema (forced structured output, never run as
code); the answer is validated, repaired (clamped, rescaled, overlaps resolved by the layout
solver), re-asked at most twice with the broken rules quoted, and cached by a hash of the
request in a ``ResultCache`` (namespace "plan"): the caller's store (the database, per user),
else one dict per process. A cache that fails costs only the cache, never the plan. With no
key configured it falls back to the offline planner and says so in a note.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..cache import BestEffortCache, MemoryCache, ResultCache
from ..errors import PakatiError
from .errors import PlannerError
from .plan_model import RELATIONS, Attribute, Plan, PlannedObject, Relation
from .rules import has_word, layout_violations
from .solver import solve_layout

MAX_CALLS = 3
LLM_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "required": ["base_prompt", "base_negative", "background", "objects", "relations"],
    "properties": {
        "base_prompt": {"type": "string"},
        "base_negative": {"type": "string"},
        "background": {"type": "string", "description": "the setting, or an empty string"},
        "objects": {
            "type": "array",
            "minItems": 1,
            "maxItems": 31,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "noun", "phrase", "attributes", "box"],
                "properties": {
                    "id": {"type": "string"},
                    "noun": {"type": "string"},
                    "phrase": {"type": "string"},
                    "attributes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["kind", "value"],
                            "properties": {
                                "kind": {"enum": ["colour", "material", "texture", "size", "shape", "other"]},
                                "value": {"type": "string"},
                            },
                        },
                    },
                    "box": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 4,
                        "maxItems": 4,
                        "description": "x0, y0, x1, y1 as fractions of the width and height (y grows downwards)",
                    },
                },
            },
        },
        "relations": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["subject", "relation", "object"],
                "properties": {"subject": {"type": "string"}, "relation": {"enum": list(RELATIONS)}, "object": {"type": "string"}},
            },
        },
    },
}
SYSTEM = (
    "You plan images for a regional text-to-image renderer. Given a goal, list every object it names (one entry per instance), "
    "with its noun, a short prompt phrase containing the noun and only that object's attributes, and a box as fractions of the canvas. "
    "Place boxes so that stated relations hold: left/right of: centres at least 5% of the width apart and horizontal offset larger "
    "than vertical; above/on top of/below: centres at least 2% of the height apart (y grows downwards); near/next to: gap at most "
    "15% of the shorter side and overlap (IoU) at most 0.5. Answer only through the schema."
)
CACHE_NAMESPACE = "plan"
_memory_cache = MemoryCache()  # used when the caller gives no cache


def request_key(provider: str, model: str | None, goal: str, width: int, height: int, seed: int) -> str:
    blob = json.dumps(
        {"p": provider, "m": model, "g": goal.strip(), "w": width, "h": height, "s": seed, "schema": LLM_SCHEMA}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def plan_with_llm(
    goal: str,
    width: int = 1024,
    height: int = 1024,
    provider: str = "anthropic",
    model: str | None = None,
    credential: str | None = None,
    seed: int = 0,
    recorder: Any = None,
    text_planner: Any = None,
    cache: ResultCache | None = None,
    **planner_options: Any,
) -> Plan:
    """Plan ``goal`` with an LLM through the model layer (``make_planner``), or offline when no key is set.

    ``cache``: where answers are kept by request hash (a ``Store``'s ``cache`` repository; default: this process's memory)."""
    from ..models import KeyMissingError, MalformedResponseError, make_planner
    from .offline import plan_offline

    if not isinstance(goal, str) or not goal.strip():
        from .errors import GoalError

        raise GoalError("the goal is empty; describe what the image should show", field="goal")
    key = request_key(provider, model, goal, width, height, seed)
    store = BestEffortCache(cache if cache is not None else _memory_cache)
    cached = store.cache_get(CACHE_NAMESPACE, key)
    if cached is not None and isinstance(cached[0], dict):
        try:
            return Plan.from_dict(cached[0])
        except PakatiError:  # an entry written by an older plan format: ask again
            pass
    try:
        planner = text_planner if text_planner is not None else make_planner(provider, model, credential, recorder, **planner_options)
        from ..models.credentials import resolve_key

        if text_planner is None and provider != "local":
            resolve_key(provider, credential)  # no key: fall back before any call (a local endpoint needs none)
    except KeyMissingError as e:
        p = plan_offline(goal, width, height, seed=seed)
        p.notes.append(f"planned offline: no API key is configured for {e.provider} ({e.message.split(';')[0]})")
        return p
    user = f"Goal: {goal.strip()}\nCanvas: {width}x{height} pixels."
    problems: list[str] = []
    last: Plan | None = None
    for call in range(MAX_CALLS):
        prompt = user if not problems else user + "\nYour previous answer broke these rules; fix them:\n- " + "\n- ".join(problems)
        try:
            data = planner.complete_json(SYSTEM, prompt, LLM_SCHEMA)
        except KeyMissingError as e:
            p = plan_offline(goal, width, height, seed=seed)
            p.notes.append(f"planned offline: no API key is configured for {e.provider}")
            return p
        except MalformedResponseError as e:
            problems = [f"the answer did not match the schema ({e.message[:200]})"]
            continue
        try:
            last = _to_plan(goal, width, height, seed, data, f"llm:{provider}")
        except PlannerError as e:
            problems = [e.message]
            continue
        left = layout_violations(last)
        if not left:
            store.cache_put(CACHE_NAMESPACE, key, last.to_dict())
            return last
        problems = [v.quoted() for v in left[:8]]
    if last is not None:
        raise PlannerError(
            f"the {provider} planner broke the layout rules after {MAX_CALLS} calls: " + "; ".join(problems[:3]), field="planner"
        )
    raise PlannerError(f"the {provider} planner gave no usable plan in {MAX_CALLS} calls: " + "; ".join(problems[:3]), field="planner")


def _to_plan(goal: str, width: int, height: int, seed: int, data: Any, planner: str) -> Plan:
    """Validate and repair an LLM answer into a Plan: clamp boxes, rescale pixels, resolve relations."""
    from .offline import DEFAULT_CHECK, DEFAULT_GENERATE, DEFAULT_NEGATIVE
    from .plan_model import Task

    if not isinstance(data, dict) or not isinstance(data.get("objects"), list) or not data["objects"]:
        raise PlannerError("the answer has no objects list", field="objects")
    objs, boxes, regions = [], {}, {}
    ids: set[str] = set()
    for i, o in enumerate(data["objects"][:31]):
        if not isinstance(o, dict) or not all(k in o for k in ("id", "noun", "phrase", "box")):
            raise PlannerError(f"objects[{i}] needs id, noun, phrase and box", field=f"objects[{i}]")
        oid = "".join(c if c.isalnum() or c == "_" else "_" for c in str(o["id"]).strip().lower()) or f"object_{i}"
        while oid in ids or oid == "background":
            oid += "_2"
        ids.add(oid)
        box = o["box"]
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) and v == v and abs(v) < 1e6 for v in box)):
            raise PlannerError(f"objects[{i}].box must be four finite numbers", field=f"objects[{i}].box")
        x0, y0, x1, y1 = (float(v) for v in box)
        if max(abs(x0), abs(x1), abs(y0), abs(y1)) > 1.5:  # pixels given instead of fractions: rescale
            x0, x1, y0, y1 = x0 / width, x1 / width, y0 / height, y1 / height
        x0, x1 = sorted((min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)))
        y0, y1 = sorted((min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)))
        if x1 - x0 < 0.04:
            x0, x1 = max(0.0, (x0 + x1) / 2 - 0.05), min(1.0, (x0 + x1) / 2 + 0.05)
        if y1 - y0 < 0.04:
            y0, y1 = max(0.0, (y0 + y1) / 2 - 0.05), min(1.0, (y0 + y1) / 2 + 0.05)
        boxes[oid] = (x0 * width, y0 * height, x1 * width, y1 * height)
        noun = str(o["noun"]).strip().lower() or "object"
        phrase = str(o["phrase"]).strip()
        if not has_word(phrase, noun):
            phrase = f"{phrase} {noun}".strip()  # the region prompt must name its noun
        attrs = tuple(
            Attribute(a["kind"], str(a["value"]).strip().lower())
            for a in o.get("attributes", [])
            if isinstance(a, dict)
            and a.get("kind") in ("colour", "material", "texture", "size", "shape", "other")
            and str(a.get("value", "")).strip()
        )
        for a in attrs:
            if not has_word(phrase, a.value):
                phrase = f"{a.value} {phrase}"
        regions[oid] = {
            "id": oid,
            "name": noun,
            "shape": "rect",
            "points": [],
            "prompt": phrase,
            "negative": "",
            "strength": 1.0,
            "feather": round(0.015 * min(width, height), 1),
            "seed": None,
            "locked": False,
        }
        objs.append(PlannedObject(oid, noun, oid, phrase, 1, attrs))
    by_raw = {str(o.get("id", "")).strip(): objs[i].id for i, o in enumerate(data["objects"][:31]) if isinstance(o, dict)}
    rels = []
    for r in data.get("relations", []) or []:
        if isinstance(r, dict) and r.get("relation") in RELATIONS and r.get("subject") in by_raw and r.get("object") in by_raw:
            if by_raw[r["subject"]] != by_raw[r["object"]]:
                rels.append(Relation(by_raw[r["subject"]], r["relation"], by_raw[r["object"]], r["relation"].replace("_", " ")))
    solved, _ = solve_layout(boxes, [(r.subject, r.relation, r.object) for r in rels], width, height)
    region_list = []
    bg = str(data.get("background", "") or "").strip()
    all_objs = list(objs)
    if bg:
        region_list.append(
            {
                "id": "background",
                "name": "background",
                "shape": "rect",
                "points": [[0, 0], [width, height]],
                "prompt": bg,
                "negative": "",
                "strength": 0.7,
                "feather": 0.0,
                "seed": None,
                "locked": False,
            }
        )
        all_objs.insert(0, PlannedObject("background", bg.split()[-1].lower(), "background", bg, 1, (), True))
    for o in objs:
        x0, y0, x1, y1 = solved[o.id]
        r = dict(regions[o.id])
        r["points"] = [
            [round(max(0.0, x0), 1), round(max(0.0, y0), 1)],
            [round(min(float(width), x1), 1), round(min(float(height), y1), 1)],
        ]
        region_list.append(r)
    canvas = {"version": 1, "width": width, "height": height, "regions": region_list}
    gen = {**DEFAULT_GENERATE, "seed": int(seed)}
    tasks = [
        Task("generate", "generate", tuple(r["id"] for r in region_list), gen),
        Task("check", "check", (), dict(DEFAULT_CHECK), ("generate",)),
    ]
    return Plan(
        goal.strip(),
        canvas,
        str(data.get("base_prompt") or goal).strip(),
        str(data.get("base_negative") or DEFAULT_NEGATIVE),
        all_objs,
        rels,
        tasks,
        planner,
        int(seed),
        [],
    )
