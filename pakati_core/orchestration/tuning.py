"""Parameter optimisation within a budget of generations (SciPy: a Sobol design over half the budget, then Nelder-Mead).

``evaluate(params) -> score`` renders with the parameters and scores the image (the checker's
score); each call is one generation, so the optimiser never makes more than ``budget`` of them
and never renders the same point twice. Parameters: region strength multiplier, base_weight,
CFG and denoise, each in a box; the best point and the whole history come back, and
:func:`apply_parameters` writes them into a plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.stats import qmc

from .errors import PlannerError
from .plan_model import Plan

DEFAULT_SPACE: dict[str, tuple[float, float]] = {
    "strength": (0.6, 1.6),
    "base_weight": (0.0, 0.8),
    "cfg": (3.0, 10.0),
    "denoise": (0.5, 1.0),
}
DEFAULT_START = {"strength": 1.0, "base_weight": 0.3, "cfg": 6.5, "denoise": 1.0}


class _BudgetSpent(Exception):
    pass


@dataclass
class TuningResult:
    best_params: dict[str, float]
    best_score: float
    history: list[tuple[dict[str, float], float]] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return len(self.history)


def optimise_parameters(
    evaluate: Callable[[dict[str, float]], float],
    budget: int,
    space: dict[str, tuple[float, float]] | None = None,
    start: dict[str, float] | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> TuningResult:
    """Maximise ``evaluate`` over ``space`` with at most ``budget`` calls (deterministic for a seed)."""
    space = dict(space or DEFAULT_SPACE)
    if not isinstance(budget, int) or budget < 1:
        raise PlannerError(f"budget must be a positive number of generations, got {budget!r}", field="budget")
    for k, (lo, hi) in space.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise PlannerError(f"bounds for {k} must be finite with low < high, got {(lo, hi)}", field=f"space.{k}")
    names = list(space)
    lo = np.array([space[k][0] for k in names])
    hi = np.array([space[k][1] for k in names])
    start = {**DEFAULT_START, **(start or {})}
    history: list[tuple[dict[str, float], float]] = []
    seen: dict[tuple, float] = {}

    def to_params(u: np.ndarray) -> dict[str, float]:
        x = lo + np.clip(u, 0.0, 1.0) * (hi - lo)
        return {k: round(float(v), 4) for k, v in zip(names, x)}

    def f(u: np.ndarray) -> float:
        p = to_params(u)
        key = tuple(p.values())
        if key in seen:
            return -seen[key]
        if len(history) >= budget:
            raise _BudgetSpent
        s = float(evaluate(p))
        if not math.isfinite(s):
            raise PlannerError(f"the evaluation returned {s} for {p}", field="evaluate")
        seen[key] = s
        history.append((p, s))
        if progress:
            progress(len(history), budget)
        return -s

    u0 = np.array(
        [
            (min(max(start.get(k, (space[k][0] + space[k][1]) / 2), space[k][0]), space[k][1]) - space[k][0]) / (space[k][1] - space[k][0])
            for k in names
        ]
    )
    try:
        f(u0)
        n_design = max(0, min(budget - 1, budget // 2))
        if n_design:
            design = qmc.Sobol(d=len(names), scramble=True, seed=seed).random(max(1, n_design))
            for u in design[:n_design]:
                f(u)
        best_u = min(((k, v) for k, v in seen.items()), key=lambda kv: -kv[1])[0]
        u_best = (np.array(best_u) - lo) / (hi - lo)
        remaining = budget - len(history)
        if remaining > 0:
            minimize(
                f,
                u_best,
                method="Nelder-Mead",
                bounds=[(0.0, 1.0)] * len(names),
                options={"maxfev": remaining, "initial_simplex": _simplex(u_best, 0.15), "xatol": 1e-3, "fatol": 1e-4},
            )
    except _BudgetSpent:
        pass
    best_p, best_s = max(history, key=lambda h: h[1])
    return TuningResult(best_p, best_s, history)


def _simplex(u: np.ndarray, step: float) -> np.ndarray:
    pts = [u]
    for i in range(len(u)):
        v = u.copy()
        v[i] = v[i] + step if v[i] + step <= 1.0 else v[i] - step
        pts.append(v)
    return np.array(pts)


def apply_parameters(plan: Plan, params: dict[str, float]) -> Plan:
    """The plan with tuned generation parameters: region strengths scaled, the generate task updated."""
    data = plan.to_dict()
    mult = float(params.get("strength", 1.0))
    for r in data["canvas"]["regions"]:
        if r["id"] != "background":
            r["strength"] = round(max(0.0, float(r.get("strength", 1.0)) * mult), 4)
    tasks = []
    for t in data["tasks"]:
        if t["kind"] == "generate":
            t = {**t, "params": {**t["params"], **{k: v for k, v in params.items() if k != "strength"}, "strength": mult}}
        tasks.append(t)
    data["tasks"] = tasks
    return Plan.from_dict(data)


__all__ = ["DEFAULT_SPACE", "TuningResult", "optimise_parameters", "apply_parameters"]
