"""The rules a layout must keep, as predicates on boxes (shared by planners, solver, checker, bench).

Boxes are ``(x0, y0, x1, y1)`` in canvas pixels, y grows downwards. The thresholds are the
acceptance rules of issue 13: left/right needs the centres 5% of the width apart and the
horizontal offset larger than the vertical one; above/below needs 2% of the height;
near/next to needs a gap of at most 15% of the shorter side and IoU at most 0.5.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .plan_model import Plan

LEFT_RIGHT_MIN = 0.05  # of the width
ABOVE_MIN = 0.02  # of the height
NEAR_MAX_GAP = 0.15  # of the shorter side
NEAR_MAX_IOU = 0.5

Box = tuple[float, float, float, float]

RULE_TEXT = {
    "left_of": "'A left of B': A's box centre at least 5% of the width left of B's, and |dx| > |dy|",
    "right_of": "'A right of B': A's box centre at least 5% of the width right of B's, and |dx| > |dy|",
    "above": "'A above / on top of B': A's centre at least 2% of the height above B's (y grows downwards)",
    "on": "'A on B': A's centre at least 2% of the height above B's (y grows downwards)",
    "below": "'A below / under B': A's centre at least 2% of the height below B's",
    "near": "'A near / next to / beside B': the boxes' gap at most 15% of the shorter side and IoU at most 0.5",
    "in_front_of": "'A in front of B': A's bottom edge lower than B's and A drawn above B (later in z-order)",
    "behind": "'A behind B': A's bottom edge higher than B's and A drawn below B (earlier in z-order)",
    "inside": "'A inside / in B': A's box within B's box",
    "noun": "each named object has its own region whose prompt contains its noun",
    "attribute": "each attribute appears in its own object's region prompt and not in another object's",
    "bounds": "every box lies on the canvas and is at least 3% of the shorter side across",
}


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    objects: tuple[str, ...] = ()

    def quoted(self) -> str:
        return f"{self.message} (rule: {RULE_TEXT[self.rule]})"


def centre(b: Box) -> tuple[float, float]:
    return (b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def gap(a: Box, b: Box) -> float:
    """Euclidean distance between two boxes (0 when they touch or overlap)."""
    gx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    gy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return math.hypot(gx, gy)


def relation_holds(rel: str, a: Box, b: Box, width: int, height: int, z_a: int = 0, z_b: int = 0) -> bool:
    (ax, ay), (bx, by) = centre(a), centre(b)
    dx, dy = bx - ax, by - ay
    if rel == "left_of":
        return dx >= LEFT_RIGHT_MIN * width and abs(dx) > abs(dy)
    if rel == "right_of":
        return -dx >= LEFT_RIGHT_MIN * width and abs(dx) > abs(dy)
    if rel in ("above", "on"):
        return dy >= ABOVE_MIN * height
    if rel == "below":
        return -dy >= ABOVE_MIN * height
    if rel == "near":
        return gap(a, b) <= NEAR_MAX_GAP * min(width, height) and iou(a, b) <= NEAR_MAX_IOU
    if rel == "in_front_of":
        return a[3] > b[3] and z_a > z_b
    if rel == "behind":
        return a[3] < b[3] and z_a < z_b
    if rel == "inside":
        return a[0] >= b[0] - 1 and a[1] >= b[1] - 1 and a[2] <= b[2] + 1 and a[3] <= b[3] + 1
    raise ValueError(f"unknown relation {rel!r}")


def has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(word.lower())}(?![a-z0-9])", text.lower()) is not None


def layout_violations(plan: Plan) -> list[Violation]:
    """Every rule the plan's layout breaks, each with a message naming the objects."""
    out: list[Violation] = []
    w, h = plan.width, plan.height
    z = {r["id"]: i for i, r in enumerate(plan.canvas["regions"])}
    fg = [o for o in plan.objects if not o.background]
    for o in plan.objects:
        prompt = plan.region(o.region_id).get("prompt", "")
        if not has_word(prompt, o.noun) and not has_word(prompt, o.noun.rstrip("s")):
            out.append(Violation("noun", f"region '{o.region_id}' prompt {prompt!r} does not name '{o.noun}'", (o.id,)))
        for a in o.attributes:
            if not has_word(prompt, a.value):
                out.append(Violation("attribute", f"'{a.value}' of {o.id} is missing from its region prompt {prompt!r}", (o.id,)))
            for other in plan.objects:
                if other.region_id == o.region_id or any(x.value == a.value for x in other.attributes):
                    continue
                if has_word(other.noun, a.value) or has_word(a.value, other.noun):
                    continue  # "a crystal and a crystal holder": the word is the other object's own noun
                if has_word(plan.region(other.region_id).get("prompt", ""), a.value):
                    out.append(
                        Violation("attribute", f"'{a.value}' of {o.id} also appears in {other.id}'s region prompt", (o.id, other.id))
                    )
    side = min(w, h)
    for o in fg:
        x0, y0, x1, y1 = plan.box(o.id)
        if x0 < -0.5 or y0 < -0.5 or x1 > w + 0.5 or y1 > h + 0.5 or min(x1 - x0, y1 - y0) < 0.03 * side:
            out.append(
                Violation("bounds", f"{o.id}'s box {tuple(round(v) for v in (x0, y0, x1, y1))} is off the canvas or too small", (o.id,))
            )
    for r in plan.relations:
        a, b = plan.object(r.subject), plan.object(r.object)
        if a.background or b.background:
            continue
        if not relation_holds(r.relation, plan.box(a.id), plan.box(b.id), w, h, z[a.region_id], z[b.region_id]):
            out.append(Violation(r.relation, f"{a.id} {r.relation.replace('_', ' ')} {b.id} does not hold", (a.id, b.id)))
    return out
