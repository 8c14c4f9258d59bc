"""Offline planner on ordinary goals: the share of layout constraints kept and of goals fully right.

Run: python bench/bench_scene_planner.py [--data bench/data/scene_goals.txt] [--misses] [--split dev|held|all]

The goals (people, animals, food, vehicles, landscapes, written as a person types them) and
their constraints are in ``bench/data/scene_goals.txt``; the file's header says what each
constraint means. The goals and constraints were written before the scene grammar was tuned;
``held`` was measured once after the first grammar pass (its misses were seen and
general fixes followed), ``held2`` was written after that and never tuned on. A goal is fully right when every one of its
constraints holds. Constraints are judged on the plan only (objects, region prompts, boxes,
z-order), by this script's own checks, not by the planner's rules module.
Timing: planning time per goal (median, p95, max) over 20 rounds, in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import inflect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from pakati_core.orchestration import plan  # noqa: E402
from pakati_core.orchestration.rules import has_word, relation_holds  # noqa: E402

DATA = REPO / "bench" / "data" / "scene_goals.txt"
_inflect = inflect.engine()
TOL = 0.01  # of the shorter side, for "inside"


def sing(word: str) -> str:
    s = _inflect.singular_noun(word) if word.isalpha() and len(word) > 3 and not word.endswith("ss") else False
    return s if isinstance(s, str) and s else word


def read_goals(path: Path) -> list[tuple[str, str, list[list[str]]]]:
    goals: list[tuple[str, str, list[list[str]]]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head, _, rest = line.partition(": ")
        if head in ("dev", "held", "held2") and rest:
            goals.append((head, rest, []))
        else:
            goals[-1][2].append(line.split())
    return goals


class View:
    """The plan as the constraints read it."""

    def __init__(self, p):
        self.p = p
        self.w, self.h = p.width, p.height
        self.z = {r["id"]: i for i, r in enumerate(p.canvas["regions"])}

    def objs(self, noun: str) -> list:
        noun = sing(noun)
        return [o for o in self.p.objects if not o.background and (sing(o.noun) == noun or o.noun == noun)]

    def box(self, o) -> tuple[float, float, float, float]:
        return self.p.box(o.id)

    def prompt(self, o) -> str:
        return self.p.region(o.region_id).get("prompt", "")

    def inside(self, a, b, tol: float | None = None) -> bool:
        t = (TOL if tol is None else tol) * min(self.w, self.h)
        (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a, b
        return ax0 >= bx0 - t and ay0 >= by0 - t and ax1 <= bx1 + t and ay1 <= by1 + t

    def is_band(self, o) -> bool:
        x0, _, x1, _ = self.box(o)
        return x1 - x0 >= 0.9 * self.w


def has(text: str, word: str) -> bool:
    return has_word(text, word) or has_word(text, word + "s") or has_word(text, word + "es") or has_word(text, sing(word))


def pairs(v: View, a: str, b: str):
    A, B = v.objs(a), v.objs(b)
    if not A or not B:
        return None
    return [(x, y) for x in A for y in B if x.id != y.id]


def holds(v: View, c: list[str]) -> bool:
    kind, args = c[0], c[1:]
    W, H = v.w, v.h
    if kind == "region":
        return bool(v.objs(args[0]))
    if kind == "count":
        return len(v.objs(args[0])) == int(args[1])
    if kind == "no-region":
        return not v.objs(args[0])
    if kind == "setting":
        small = [o for o in v.objs(args[0]) if not v.is_band(o)]
        bg = " ".join(v.prompt(o) for o in v.p.objects if o.background)
        return not small and (has(v.p.base_prompt, args[0]) or has(bg, args[0]))
    if kind == "full":
        regions = v.p.canvas["regions"]
        if len(regions) != 1:
            return False
        x0, y0, x1, y1 = v.p.box(v.p.objects[0].id) if v.p.objects else (0, 0, 0, 0)
        return (x1 - x0) * (y1 - y0) >= 0.95 * W * H
    if kind == "band":
        objs = v.objs(args[0])
        if len(objs) != 1:
            return False
        x0, y0, x1, y1 = v.box(objs[0])
        if x1 - x0 < 0.9 * W:
            return False
        return (y0 <= 0.05 * H and y1 <= 0.65 * H) if args[1] == "top" else (y1 >= 0.95 * H and y0 >= 0.3 * H)
    if kind == "owned":
        owners = v.objs(args[1])
        if len(owners) != 1 or not has(v.prompt(owners[0]), args[0]):
            return False
        return all(v.inside(v.box(x), v.box(owners[0])) for x in v.objs(args[0]))
    if kind == "prompt":
        objs = v.objs(args[0])
        return bool(objs) and all(has(v.prompt(o), args[1]) for o in objs)
    if kind == "attr":
        objs = v.objs(args[0])
        if not objs or not all(has_word(v.prompt(o), args[1]) for o in objs):
            return False
        own = [v.box(o) for o in objs]
        for o in v.p.objects:
            if o in objs or any(v.inside(v.box(o), b) for b in own if not o.background):
                continue
            if has_word(v.prompt(o), args[1]):
                return False
        return True
    if kind == "fills":
        objs = v.objs(args[0])
        if not objs:
            return False
        x0, y0, x1, y1 = v.box(objs[0])
        return (x1 - x0) * (y1 - y0) >= float(args[1]) * W * H
    if kind == "between":
        a, bs = v.objs(args[0]), v.objs(args[1])
        if not a or len(bs) < 2:
            return False
        xs = [(v.box(b)[0] + v.box(b)[2]) / 2 for b in bs]
        return all(min(xs) < (v.box(x)[0] + v.box(x)[2]) / 2 < max(xs) for x in a)
    ps = pairs(v, args[0], args[1])
    if not ps:
        return False
    return all(_pair(v, kind, x, y, W, H) for x, y in ps)


def _pair(v: View, kind: str, x, y, W: int, H: int) -> bool:
    a, b = v.box(x), v.box(y)
    acx, acy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    bcy = (b[1] + b[3]) / 2
    overlap_x = min(a[2], b[2]) - max(a[0], b[0]) > 0
    if kind == "on":
        if v.is_band(y):
            return b[1] - 0.01 * H <= a[3] <= b[3] + 0.01 * H
        return b[0] <= acx <= b[2] and b[1] - 0.03 * H <= a[3] <= b[1] + 0.6 * (b[3] - b[1]) and acy < bcy
    if kind == "inside":
        return v.inside(a, b)
    if kind == "riding":
        return b[0] <= acx <= b[2] and b[1] <= a[3] <= b[3] and a[1] < b[1]
    if kind == "below":
        return acy > bcy + 0.02 * H and overlap_x
    if kind == "above":
        return acy < bcy - 0.02 * H and overlap_x
    if kind == "higher":
        return acy < bcy
    if kind == "lower":
        return acy > bcy
    if kind == "front":
        return a[3] > b[3] and v.z[x.region_id] > v.z[y.region_id]
    if kind == "behind":
        return a[3] < b[3] and v.z[x.region_id] < v.z[y.region_id]
    if kind == "near":
        return relation_holds("near", a, b, W, H)
    if kind == "left":
        return relation_holds("left_of", a, b, W, H)
    if kind == "right":
        return relation_holds("right_of", a, b, W, H)
    if kind == "larger":
        return (a[2] - a[0]) * (a[3] - a[1]) > (b[2] - b[0]) * (b[3] - b[1])
    raise ValueError(f"unknown constraint {kind!r}")


def evaluate(goals, width: int, height: int, show_misses: bool = False) -> dict[str, tuple[int, int, int, int]]:
    out: dict[str, list[int]] = {}
    for split, goal, constraints in goals:
        try:
            v = View(plan(goal, width, height))
            kept = [holds(v, c) for c in constraints]
        except Exception as e:  # noqa: BLE001 - a goal that errors keeps nothing, whatever the error
            kept = [False] * len(constraints)
            if show_misses:
                print(f"  ERROR {goal!r}: {type(e).__name__}: {e}")
        s = out.setdefault(split, [0, 0, 0, 0])
        s[0] += sum(kept)
        s[1] += len(kept)
        s[2] += all(kept)
        s[3] += 1
        if show_misses and not all(kept):
            print(f"  [{split}] {goal!r}: " + "; ".join(" ".join(c) for c, k in zip(constraints, kept) if not k))
    return {k: tuple(v) for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--split", choices=("dev", "held", "held2", "all"), default="all")
    ap.add_argument("--misses", action="store_true", help="print every goal that is not fully right and what it missed")
    ap.add_argument("--size", default="1024x1024", help="canvas WxH")
    ap.add_argument("--rounds", type=int, default=20, help="timing rounds over all goals")
    args = ap.parse_args()
    width, height = (int(s) for s in args.size.lower().split("x"))
    goals = [g for g in read_goals(args.data) if args.split in ("all", g[0])]
    res = evaluate(goals, width, height, args.misses)
    print(f"scene planner, {width}x{height}, {args.data.name}")
    print("| split | goals | constraints kept | goals fully right |")
    print("| --- | --- | --- | --- |")
    tot = [0, 0, 0, 0]
    for split, (k, n, g, m) in sorted(res.items()):
        print(f"| {split} | {m} | {k}/{n} = {100 * k / n:.1f}% | {g}/{m} = {100 * g / m:.1f}% |")
        tot = [t + x for t, x in zip(tot, (k, n, g, m))]
    if len(res) > 1:
        print(f"| all | {tot[3]} | {tot[0]}/{tot[1]} = {100 * tot[0] / tot[1]:.1f}% | {tot[2]}/{tot[3]} = {100 * tot[2] / tot[3]:.1f}% |")
    times = []
    for _ in range(max(1, args.rounds)):
        for _, goal, _ in goals:
            t0 = time.perf_counter()
            try:
                plan(goal, width, height)
            except Exception:  # noqa: BLE001, S110 - timing only; errors were reported above
                pass
            times.append(time.perf_counter() - t0)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(
        f"planning time per goal: median {1000 * statistics.median(times):.2f} ms, p95 {1000 * p95:.2f} ms, max {1000 * times[-1]:.2f} ms "
        f"({len(times)} plans)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
