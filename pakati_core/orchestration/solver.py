"""Layout optimisation: move boxes as little as possible until every relation holds.

A quadratic objective (squared displacement of the box centres from the proposed layout) under
linear constraints, one set per relation, solved with SciPy's SLSQP — every rule of
``rules.py`` is linear in the centres once the side a "near" pair separates along is chosen
from the proposed layout, so the problem is a small convex QP.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from .rules import Box

# Margins a little beyond the rule thresholds, so rounding never breaks a rule.
LEFT_MARGIN, ABOVE_MARGIN, NEAR_GAP, SEPARATION = 0.065, 0.035, 0.09, 0.46


def solve_layout(boxes: dict[str, Box], relations: list[tuple[str, str, str]], width: int, height: int) -> tuple[dict[str, Box], bool]:
    """Boxes with the same sizes, moved the least to satisfy ``relations``; and whether it succeeded."""
    ids = list(boxes)
    if not ids:
        return dict(boxes), True
    idx = {i: k for k, i in enumerate(ids)}
    wh = np.array([[b[2] - b[0], b[3] - b[1]] for b in boxes.values()])
    c0 = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in boxes.values()]).reshape(-1)
    side = min(width, height)
    rows: list[np.ndarray] = []
    rhs: list[float] = []

    def add(coeffs: dict[int, float], bound: float) -> None:  # sum(coeff * v) >= bound
        row = np.zeros(len(c0))
        for k, v in coeffs.items():
            row[k] += v
        rows.append(row)
        rhs.append(bound)

    for a, rel, b in relations:
        if a not in idx or b not in idx or a == b:
            continue
        ax, ay, bx, by = 2 * idx[a], 2 * idx[a] + 1, 2 * idx[b], 2 * idx[b] + 1
        wa, ha = wh[idx[a]]
        wb, hb = wh[idx[b]]
        if rel in ("left_of", "right_of"):
            left, right = (a, b) if rel == "left_of" else (b, a)
            lx_, ly, rx, ry = 2 * idx[left], 2 * idx[left] + 1, 2 * idx[right], 2 * idx[right] + 1
            add({rx: 1, lx_: -1}, LEFT_MARGIN * width)
            add({rx: 1, lx_: -1, ly: -1, ry: 1}, 0.01 * width)
            add({rx: 1, lx_: -1, ly: 1, ry: -1}, 0.01 * width)
        elif rel in ("above", "on", "below"):
            u, d = (a, b) if rel != "below" else (b, a)
            add({2 * idx[d] + 1: 1, 2 * idx[u] + 1: -1}, ABOVE_MARGIN * height)
        elif rel == "near":
            g = NEAR_GAP * side
            add({ax: 1, bx: -1}, -((wa + wb) / 2 + g))
            add({bx: 1, ax: -1}, -((wa + wb) / 2 + g))
            add({ay: 1, by: -1}, -((ha + hb) / 2 + g))
            add({by: 1, ay: -1}, -((ha + hb) / 2 + g))
            dx, dy = c0[bx] - c0[ax], c0[by] - c0[ay]
            if abs(dx) / (wa + wb) >= abs(dy) / (ha + hb):
                sgn = 1.0 if dx >= 0 else -1.0
                add({bx: sgn, ax: -sgn}, SEPARATION * (wa + wb))
            else:
                sgn = 1.0 if dy >= 0 else -1.0
                add({by: sgn, ay: -sgn}, SEPARATION * (ha + hb))
        elif rel in ("in_front_of", "behind"):
            f, k = (a, b) if rel == "in_front_of" else (b, a)
            hf, hk = wh[idx[f]][1], wh[idx[k]][1]
            add({2 * idx[f] + 1: 1, 2 * idx[k] + 1: -1}, (hk - hf) / 2 + 0.02 * height)
        elif rel == "inside":
            add({ax: 1, bx: -1}, (wa - wb) / 2)
            add({bx: 1, ax: -1}, (wa - wb) / 2)
            add({ay: 1, by: -1}, (ha - hb) / 2)
            add({by: 1, ay: -1}, (ha - hb) / 2)
    if not rows:
        return dict(boxes), True
    A, lb = np.array(rows), np.array(rhs)
    bounds = []
    for w, h in wh:
        bounds += [(min(w / 2, width / 2), max(width - w / 2, width / 2)), (min(h / 2, height / 2), max(height - h / 2, height / 2))]
    scale = float(side)
    res = minimize(
        lambda v: float(((v - c0 / scale) ** 2).sum()),
        c0 / scale,
        jac=lambda v: 2 * (v - c0 / scale),
        method="SLSQP",
        bounds=[(lo / scale, hi / scale) for lo, hi in bounds],
        constraints=[{"type": "ineq", "fun": lambda v: A @ (v * scale) - lb, "jac": lambda v: A * scale}],
        options={"maxiter": 60, "ftol": 1e-9},  # a feasible QP converges in a few iterations; more only polishes an infeasible one
    )
    v = res.x * scale
    ok = bool(res.success) and bool((A @ v - lb >= -1e-3 * side).all())
    out = {}
    for i in ids:
        k = idx[i]
        w, h = wh[k]
        cx, cy = v[2 * k], v[2 * k + 1]
        out[i] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return out, ok
