"""A small Mamdani engine: min for AND, max for OR, min implication, max aggregation, centroid.

Written here rather than taken from scikit-fuzzy: scikit-fuzzy is not among the host's packages
(it would become a new install for every user), importing ``skfuzzy.control`` pulls networkx and
matplotlib, and its rules are Python objects, whereas Pakati's rules are JSON data that must be
validated field by field. The engine is ~60 lines with the same semantics (scikit-fuzzy's
defaults: fmin/fmax, centroid) and is tested for coverage and monotonicity on dense grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .membership import membership
from .rulebase import FuzzyRuleError, RuleBase

RESOLUTION = 201


@dataclass(frozen=True)
class Inference:
    inputs: dict[str, float]  # normalised input values
    outputs: dict[str, float]  # crisp outputs

    def prompt_terms(self, rulebase: RuleBase) -> list[tuple[str, float]]:
        """(text, weight) for every prompt-term output at or above its ``min_weight``."""
        out = []
        for name, var in rulebase.outputs.items():
            if var.kind == "prompt_term" and self.outputs[name] >= max(var.min_weight, 1e-9):
                out.append((var.text, round(max(self.outputs[name], 0.0), 2)))
        return out


class MamdaniEngine:
    def __init__(self, rulebase: RuleBase):
        self.rulebase = rulebase
        self._grids = {n: np.linspace(o.range[0], o.range[1], RESOLUTION) for n, o in rulebase.outputs.items()}
        self._shapes = {
            n: {t: membership(term.shape, term.params, self._grids[n]) for t, term in o.terms.items()} for n, o in rulebase.outputs.items()
        }

    def normalise(self, deltas: dict[str, float]) -> dict[str, float]:
        """Delta values (their own units) to each input's universe; a missing delta reads as 0."""
        out = {}
        for name, var in self.rulebase.inputs.items():
            x = float(deltas.get(var.delta, 0.0)) / var.scale
            x = abs(x) if var.absolute else x
            lo, hi = var.universe
            out[name] = float(np.clip(x, lo, hi))
        return out

    def infer_normalised(self, x: dict[str, float]) -> Inference:
        rb = self.rulebase
        degree = {n: {t: float(membership(term.shape, term.params, x[n])) for t, term in v.terms.items()} for n, v in rb.inputs.items()}
        aggregate = {n: np.zeros(RESOLUTION) for n in rb.outputs}
        for rule in rb.rules:
            parts = [degree[var][term] for var, term in rule.antecedent.items()]
            strength = (min(parts) if rule.op == "and" else max(parts)) * rule.weight
            if strength <= 0:
                continue
            for var, term in rule.consequent.items():
                np.maximum(aggregate[var], np.minimum(self._shapes[var][term], strength), out=aggregate[var])
        outputs = {}
        for name, agg in aggregate.items():
            area = float(agg.sum())
            if area <= 0:
                raise FuzzyRuleError(
                    f"no rule fires for output '{name}' at inputs {x}: the rule base does not cover this case", f"outputs.{name}"
                )
            outputs[name] = float((agg * self._grids[name]).sum() / area)
        return Inference(x, outputs)

    def infer(self, deltas: dict[str, float]) -> Inference:
        """Adjustments for a set of named deltas (values in the deltas' own units)."""
        return self.infer_normalised(self.normalise(deltas))
