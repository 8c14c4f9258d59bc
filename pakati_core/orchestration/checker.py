"""The alignment checker: DSG-style atomic questions about a plan, answered on the image.

Questions come from the plan (one per object, attribute, relation and count), each with the
questions it depends on (DSG: "is the cat black?" needs "is there a cat?"; a relation needs both
objects); a question whose parent fails scores 0. Answers, best source first:

- offline, no weights: colour attributes measured in the object's box (``colours.py``: Lab
  statistics from the delta-analysis view, names by CIEDE2000); where exemplar images are given
  for nouns (the user's references), existence and position by normalised cross-correlation
  on L* (``cv2.matchTemplate``, several scales) — relations are then judged on the found boxes
  with the layout rules of ``rules.py``; without exemplars a relation is judged on the plan's
  own geometry;
- a :class:`~pakati_core.models.protocols.VisionJudge` (Claude / OpenAI vision) for the rest.
Failed questions become repair tasks (move/resize a box, regenerate a region with a reweighted
prompt, refine a region's colour) that :func:`replan` applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from ..errors import PakatiError
from ..images import as_rgb
from ..lab import rgb_to_lab
from ..prompts import weighted
from .colours import accepted_names, colour_score, colour_shares
from .errors import CheckError
from .plan_model import Plan, Task
from .rules import RULE_TEXT, has_word, relation_holds
from .solver import solve_layout

PASS = 0.5  # a question with score >= PASS is met
MATCH_MIN = 0.85  # normalised cross-correlation for "the exemplar is there"
SCALES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.12, 1.25, 1.4, 1.6)
MATCH_SIDE = 48
REL_WORDS = {
    "left_of": "on the left of",
    "right_of": "on the right of",
    "above": "above",
    "on": "on top of",
    "below": "below",
    "near": "next to",
    "in_front_of": "in front of",
    "behind": "behind",
    "inside": "inside",
}


@dataclass
class Question:
    id: str
    kind: str  # exist | count | attribute | relation
    text: str
    objects: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    value: str = ""  # attribute value or relation name


@dataclass
class Verdict:
    question: Question
    verdict: str  # yes | no | unsure
    score: float
    source: str  # colour | exemplar | plan | judge | dependency | none
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        q = self.question
        return {
            "id": q.id,
            "kind": q.kind,
            "question": q.text,
            "objects": list(q.objects),
            "depends_on": list(q.depends_on),
            "verdict": self.verdict,
            "score": round(float(self.score), 4),
            "source": self.source,
            "reason": self.reason,
        }


@dataclass
class CheckResult:
    score: float
    verdicts: list[Verdict]
    repair_tasks: list[Task] = field(default_factory=list)
    located: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    moves: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict == "no"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(float(self.score), 4),
            "verdicts": [v.to_dict() for v in self.verdicts],
            "repair_tasks": [t.to_dict() for t in self.repair_tasks],
            "located": {k: [round(float(x), 1) for x in b] for k, b in self.located.items()},
            "moves": {k: [round(float(x), 1) for x in b] for k, b in self.moves.items()},
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def questions(plan: Plan) -> list[Question]:
    """Atomic questions with dependencies (objects first, then attributes, counts, relations)."""
    qs: list[Question] = []
    exist: dict[str, str] = {}
    for o in plan.objects:
        what = f"the {o.noun}" if not o.background else f"a {o.phrase} setting"
        qid = f"exist:{o.id}"
        qs.append(Question(qid, "exist", f"Is there {('a ' + o.noun) if not o.background else what} in the image?", (o.id,)))
        exist[o.id] = qid
        for a in o.attributes:
            qs.append(Question(f"attr:{o.id}:{a.value}", "attribute", f"Is {what} {a.value}?", (o.id,), (qid,), a.value))
    counted: dict[str, list[str]] = {}
    for o in plan.objects:
        if o.count > 1:
            counted.setdefault(o.noun, []).append(o.id)
    for noun, ids in counted.items():
        n = plan.object(ids[0]).count
        qs.append(
            Question(f"count:{noun}", "count", f"Are there {n} {noun}s in the image?", tuple(ids), tuple(exist[i] for i in ids), str(n))
        )
    for r in plan.relations:
        a, b = plan.object(r.subject), plan.object(r.object)
        qs.append(
            Question(
                f"rel:{a.id}:{r.relation}:{b.id}",
                "relation",
                f"Is the {a.noun} {REL_WORDS[r.relation]} the {b.noun}?",
                (a.id, b.id),
                (exist[a.id], exist[b.id]),
                r.relation,
            )
        )
    return qs


# ----------------------------------------------------------------------------- exemplars


def locate(
    image: np.ndarray, exemplar: np.ndarray, expected: tuple[float, float, float, float]
) -> tuple[float, tuple[float, float, float, float]]:
    """Best normalised cross-correlation of ``exemplar`` on L*, over scales about the expected box size.

    Matching runs at a reduced, slightly blurred resolution (the expected box about
    ``MATCH_SIDE`` pixels across), which keeps it fast and tolerant of a scale step between
    two tried sizes.
    """
    H, W = image.shape[:2]
    bw, bh = max(8.0, expected[2] - expected[0]), max(8.0, expected[3] - expected[1])
    f = min(1.0, MATCH_SIDE / max(bw, bh))
    sw, sh = max(8, int(round(W * f))), max(8, int(round(H * f)))
    L = cv2.GaussianBlur(cv2.resize(rgb_to_lab(image)[..., 0], (sw, sh), interpolation=cv2.INTER_AREA), (0, 0), 0.8)
    ex = rgb_to_lab(as_rgb(exemplar, "exemplar", min_side=8))[..., 0]
    best, box = -1.0, expected
    for s in SCALES:
        tw, th = int(round(bw * s * f)), int(round(bh * s * f))
        if tw < 6 or th < 6 or tw > sw or th > sh:
            continue
        t = cv2.GaussianBlur(cv2.resize(ex, (tw, th), interpolation=cv2.INTER_AREA), (0, 0), 0.8)
        if float(t.std()) < 1e-3:
            continue
        res = cv2.matchTemplate(L, t, cv2.TM_CCOEFF_NORMED)
        _, mx, _, loc = cv2.minMaxLoc(res)
        if mx > best:
            best, box = float(mx), (loc[0] / f, loc[1] / f, (loc[0] + tw) / f, (loc[1] + th) / f)
    return best, box


def exemplars_from_references(references: Sequence[Any], plan: Plan) -> dict[str, np.ndarray]:
    """Exemplar images per noun from Pakati references whose description names the noun
    (the reference's mask, when it has one, crops the exemplar to the object)."""
    out: dict[str, np.ndarray] = {}
    for o in plan.objects:
        if o.background or o.noun in out:
            continue
        for ref in references:
            desc = getattr(ref, "description", "") or ""
            if has_word(desc, o.noun) or has_word(desc, o.noun.rstrip("s")):
                img = np.asarray(ref.image, np.float32)
                if getattr(ref, "mask", None) is not None and (ref.mask > 0.5).any():
                    ys, xs = np.nonzero(ref.mask > 0.5)
                    img = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
                if min(img.shape[:2]) >= 8:
                    out[o.noun] = img
                    break
    return out


def _box_mask(shape: tuple[int, int], box: tuple[float, float, float, float], inset: float = 0.2) -> np.ndarray:
    """The inner part of a box (centre-weighted: edges belong to the background as often as not)."""
    H, W = shape
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * inset, (y1 - y0) * inset
    m = np.zeros((H, W), np.float32)
    xa, xb = int(max(0, round(x0 + dx))), int(min(W, round(x1 - dx)))
    ya, yb = int(max(0, round(y0 + dy))), int(min(H, round(y1 - dy)))
    if xb - xa < 2 or yb - ya < 2:
        xa, xb, ya, yb = int(max(0, x0)), int(min(W, max(x0 + 2, x1))), int(max(0, y0)), int(min(H, max(y0 + 2, y1)))
    m[ya:yb, xa:xb] = 1.0
    return m


# ----------------------------------------------------------------------------- checking


def check_alignment(
    image: np.ndarray, plan: Plan, goal: str | None = None, judge: Any = None, exemplars: dict[str, np.ndarray] | None = None
) -> CheckResult:
    """Score ``image`` (uint8 in 0..255 or float in 0..1: both read through ``pakati_core.images.as_rgb``) against
    ``plan`` (and ``goal`` when it differs from the plan's)."""
    if goal and goal.strip() and goal.strip() != plan.goal.strip():
        from .planning import plan as make_plan

        plan = make_plan(goal, plan.width, plan.height)
    try:
        rgb = as_rgb(image, "image", min_side=8)
    except PakatiError as e:
        raise CheckError(e.message, field="image") from None
    if not np.isfinite(rgb).all():
        raise CheckError("the image contains NaN or infinite values", field="image")
    if not plan.objects:
        raise CheckError("the plan names no objects to check", field="plan")
    H, W = rgb.shape[:2]
    sx, sy = W / plan.width, H / plan.height
    planned = {o.id: _scaled(plan.box(o.id), sx, sy) for o in plan.objects}
    qs = questions(plan)
    answers: dict[str, Verdict] = {}
    located: dict[str, tuple[float, float, float, float]] = {}
    exemplars = exemplars or {}
    # 1) existence by exemplar; one image area answers for one object only (the best match keeps it)
    found: dict[str, tuple[float, tuple[float, float, float, float]]] = {}
    for o in plan.objects:
        ex = exemplars.get(o.noun)
        if ex is not None and not o.background:
            found[o.id] = locate(rgb, ex, planned[o.id])
    for oid, (score, box) in sorted(found.items(), key=lambda kv: -kv[1][0]):
        taken = next((k for k in located if _covered(box, located[k]) > 0.3 and plan.object(k).noun != plan.object(oid).noun), None)
        q = next(q for q in qs if q.id == f"exist:{oid}")
        if score >= MATCH_MIN and taken is None:
            located[oid] = box
        why = f"best L* cross-correlation {score:.2f} (threshold {MATCH_MIN})" + (
            f", but at the place where {taken} was found" if taken else ""
        )
        ok = score >= MATCH_MIN and taken is None
        answers[q.id] = Verdict(
            q,
            "yes" if ok else "no",
            float(np.clip((score - 0.3) / (2 * (MATCH_MIN - 0.3)), 0, 1)) if ok or not taken else 0.0,
            "exemplar",
            why,
        )
    # 2) colours measured where the object is (found box, else planned box)
    for q in qs:
        if q.kind != "attribute" or not accepted_names(q.value):
            continue
        o = plan.object(q.objects[0])
        box = located.get(o.id, planned[o.id] if not o.background else (0, 0, W, H))
        shares, mean = colour_shares(rgb, _box_mask((H, W), box, 0.0 if o.background else 0.2))
        s = colour_score(shares, q.value)
        top = ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])[:3])
        answers[q.id] = Verdict(
            q,
            "yes" if s >= PASS else "no",
            s,
            "colour",
            f"named colours in the box: {top} (mean L*a*b* {mean[0]:.0f}, {mean[1]:.0f}, {mean[2]:.0f})",
        )
    # 3) relations on found boxes
    z = {r["id"]: i for i, r in enumerate(plan.canvas["regions"])}
    for q in qs:
        if q.kind != "relation":
            continue
        a, b = (plan.object(i) for i in q.objects)
        if a.id in located and b.id in located and q.value not in ("in_front_of", "behind"):
            ok = relation_holds(q.value, located[a.id], located[b.id], W, H, z[a.region_id], z[b.region_id])
            answers[q.id] = Verdict(q, "yes" if ok else "no", 1.0 if ok else 0.0, "exemplar", f"found boxes; rule: {RULE_TEXT[q.value]}")
    # 4) the judge for what is left
    rest = [q for q in qs if q.id not in answers]
    if judge is not None and rest:
        for q, ans in zip(rest, judge.ask(rgb, [q.text for q in rest])):
            verdict = ans.verdict if ans.verdict in ("yes", "no", "unsure") else "unsure"
            answers[q.id] = Verdict(q, verdict, float(np.clip(ans.score, 0, 1)), "judge", ans.reason)
    # 5) offline fallbacks: plan geometry for relations, unsure otherwise
    for q in qs:
        if q.id in answers:
            continue
        if q.kind == "relation":
            a, b = (plan.object(i) for i in q.objects)
            ok = relation_holds(q.value, plan.box(a.id), plan.box(b.id), plan.width, plan.height, z[a.region_id], z[b.region_id])
            answers[q.id] = Verdict(
                q,
                "unsure" if ok else "no",
                0.5 if ok else 0.0,
                "plan",
                "the plan's layout keeps this relation; no exemplar or judge saw the image"
                if ok
                else "the plan's own layout breaks this relation",
            )
        elif q.kind == "count" and all(i in located for i in q.objects):
            answers[q.id] = Verdict(q, "yes", 1.0, "exemplar", "every instance found")
        else:
            answers[q.id] = Verdict(q, "unsure", 0.5, "none", "no offline measure for this question and no judge given")
    # dependencies: a failed parent zeroes its children (DSG)
    verdicts = []
    for q in qs:
        v = answers[q.id]
        failed_parents = [d for d in q.depends_on if answers[d].verdict == "no"]
        if failed_parents:
            v = Verdict(q, "no", 0.0, "dependency", f"depends on {', '.join(failed_parents)}, which failed")
            answers[q.id] = v
        verdicts.append(v)
    score = float(np.mean([v.score for v in verdicts])) if verdicts else 0.0
    result = CheckResult(score, verdicts, [], {k: (b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy) for k, b in located.items()})
    result.repair_tasks, result.moves = _repairs(plan, result)
    return result


def _covered(a, b) -> float:
    """Share of box ``a`` covered by box ``b``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)


def _scaled(b, sx, sy):
    return (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)


def _repairs(plan: Plan, result: CheckResult) -> tuple[list[Task], dict[str, tuple[float, float, float, float]]]:
    """Tasks that fix what failed: regenerate missing objects, refine colours, move boxes."""
    tasks: list[Task] = []
    moves: dict[str, tuple[float, float, float, float]] = {}
    after = (plan.tasks[-1].id,) if plan.tasks else ()
    done: set[str] = set()
    bad_relations = [v for v in result.verdicts if v.question.kind == "relation" and v.verdict == "no" and v.source != "dependency"]
    if bad_relations:
        boxes = {o.id: plan.box(o.id) for o in plan.objects if not o.background}
        rels = [(r.subject, r.relation, r.object) for r in plan.relations]
        start = dict(boxes)
        for v in bad_relations:
            if v.source == "plan":
                continue  # the solver below moves the plan's own boxes
            a, _ = v.question.objects
            if a in result.located:  # start from where the object really is
                start[a] = result.located[a]
        solved, _ = solve_layout(start, rels, plan.width, plan.height)
        involved = {oid for v in bad_relations for oid in v.question.objects}
        for oid, b in solved.items():
            if oid in involved and any(abs(x - y) > 0.5 for x, y in zip(b, boxes[oid])):
                moves[oid] = b
        for oid, b in moves.items():
            o = plan.object(oid)
            tasks.append(
                Task(
                    f"repair_move_{oid}",
                    "inpaint",
                    (o.region_id,),
                    {"action": "move", "box": [round(float(x), 1) for x in b], "prompt": o.phrase, "denoise": 0.9, "strength": 1.2},
                    after,
                )
            )
            done.add(oid)
        # the layout already keeps the relation but the image does not: redraw those regions harder
        for oid in sorted(involved - done, key=lambda i: [o.id for o in plan.objects].index(i)):
            o = plan.object(oid)
            tasks.append(
                Task(
                    f"repair_regen_{oid}",
                    "inpaint",
                    (o.region_id,),
                    {"action": "regenerate", "prompt": weighted(o.phrase, 1.2), "denoise": 0.85, "strength": 1.3},
                    after,
                )
            )
            done.add(oid)
    for v in result.verdicts:
        q = v.question
        if v.verdict != "no" or v.source == "dependency":
            continue
        oid = q.objects[0]
        o = plan.object(oid)
        if q.kind == "exist" and oid not in done:
            tasks.append(
                Task(
                    f"repair_regen_{oid}",
                    "inpaint",
                    (o.region_id,),
                    {"action": "regenerate", "prompt": weighted(o.phrase, 1.3), "denoise": 0.9, "strength": 1.3},
                    after,
                )
            )
            done.add(oid)
        elif q.kind == "attribute" and oid not in done:
            colour = weighted(q.value, 1.4)
            prompt = o.phrase.replace(q.value, colour) if q.value in o.phrase else f"{colour} {o.phrase}"
            tasks.append(
                Task(
                    f"repair_colour_{oid}_{q.value}",
                    "refine",
                    (o.region_id,),
                    {"action": "refine_colour", "colour": q.value, "prompt": prompt, "denoise": 0.55},
                    after,
                )
            )
    if tasks:
        tasks.append(Task("recheck", "check", (), {"threshold": PASS}, tuple(t.id for t in tasks)))
    return tasks, moves


def replan(plan: Plan, check: CheckResult) -> Plan:
    """A new plan with the repairs applied: moved boxes, reweighted prompts, repair tasks appended."""
    data = plan.to_dict()
    regions = {r["id"]: r for r in data["canvas"]["regions"]}
    for t in check.repair_tasks:
        for rid in t.region_ids:
            r = regions[rid]
            if t.params.get("action") == "move":
                x0, y0, x1, y1 = t.params["box"]
                r["points"] = [[max(0.0, x0), max(0.0, y0)], [min(float(plan.width), x1), min(float(plan.height), y1)]]
            if "prompt" in t.params:
                r["prompt"] = t.params["prompt"]
            if "strength" in t.params:
                r["strength"] = float(t.params["strength"])
    existing = {t["id"] for t in data["tasks"]}
    data["tasks"] += [t.to_dict() for t in check.repair_tasks if t.id not in existing]
    data["notes"] = list(data["notes"]) + [f"replanned after a check scoring {check.score:.2f}: {len(check.repair_tasks)} repair task(s)"]
    return Plan.from_dict(data)


__all__ = ["CheckResult", "Question", "Verdict", "check_alignment", "exemplars_from_references", "questions", "replan", "locate"]
