"""Rule bases as data: a versioned JSON document, validated into typed objects and back.

Schema (version 1)::

    {"version": 1,
     "inputs":  {NAME: {"delta": DELTA, "scale": S, "abs": false,
                        "terms": {TERM: ["tri", [a, b, c]] | ["trap", [a, b, c, d]]}}},
     "outputs": {NAME: {"kind": "correction" | "parameter" | "prompt_term", "range": [lo, hi],
                        "text": "warm tones", "min_weight": 0.25,          # prompt_term only
                        "terms": {TERM: [...]}}},
     "rules":   [{"id": ID, "if": {INPUT: TERM, ...}, "op": "and" | "or",
                  "then": {OUTPUT: TERM, ...}, "weight": 1.0}]}

An input reads the named delta, divides by ``scale`` and clips to [-1, 1] ([0, 1] with ``abs``).
Overrides use the same shape: a variable given there replaces the default one, a rule with a
known id replaces it, a new id is appended, and ``"remove_rules": [ID, ...]`` drops rules.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PakatiError
from .membership import SHAPES

RULEBASE_VERSION = 1
OUTPUT_KINDS = ("correction", "parameter", "prompt_term")


class FuzzyRuleError(PakatiError):
    """A rule base (default or override) that does not follow the schema."""


@dataclass(frozen=True)
class Term:
    shape: str
    params: tuple[float, ...]


@dataclass(frozen=True)
class InputVar:
    name: str
    delta: str
    scale: float
    absolute: bool
    terms: dict[str, Term]

    @property
    def universe(self) -> tuple[float, float]:
        return (0.0, 1.0) if self.absolute else (-1.0, 1.0)


@dataclass(frozen=True)
class OutputVar:
    name: str
    kind: str
    range: tuple[float, float]
    terms: dict[str, Term]
    text: str = ""
    min_weight: float = 0.0


@dataclass(frozen=True)
class Rule:
    id: str
    antecedent: dict[str, str]
    op: str
    consequent: dict[str, str]
    weight: float = 1.0


def _fail(message: str, field: str) -> FuzzyRuleError:
    return FuzzyRuleError(message, field)


def _number(v: Any, field: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _fail(f"expected a number, got {v!r}", field)
    return float(v)


def _terms(data: Any, field: str) -> dict[str, Term]:
    if not isinstance(data, dict) or not data:
        raise _fail("expected a non-empty object of terms", field)
    out = {}
    for name, spec in data.items():
        f = f"{field}.{name}"
        if not (isinstance(spec, list) and len(spec) == 2 and spec[0] in SHAPES and isinstance(spec[1], list)):
            raise _fail('expected ["tri", [a, b, c]] or ["trap", [a, b, c, d]]', f)
        params = tuple(_number(p, f"{f}[1][{i}]") for i, p in enumerate(spec[1]))
        if len(params) != SHAPES[spec[0]]:
            raise _fail(f"'{spec[0]}' takes {SHAPES[spec[0]]} points, got {len(params)}", f)
        if list(params) != sorted(params):
            raise _fail(f"points must be non-decreasing, got {list(params)}", f)
        out[name] = Term(spec[0], params)
    return out


@dataclass(frozen=True)
class RuleBase:
    inputs: dict[str, InputVar]
    outputs: dict[str, OutputVar]
    rules: tuple[Rule, ...]

    @classmethod
    def from_dict(cls, data: Any) -> "RuleBase":
        if not isinstance(data, dict):
            raise _fail("a rule base is a JSON object", "rulebase")
        if data.get("version") != RULEBASE_VERSION:
            raise _fail(f"unsupported version {data.get('version')!r}, this build reads {RULEBASE_VERSION}", "version")
        inputs = {}
        for name, v in (data.get("inputs") or {}).items():
            f = f"inputs.{name}"
            if not isinstance(v, dict) or not isinstance(v.get("delta"), str):
                raise _fail("an input needs a 'delta' name", f)
            scale = _number(v.get("scale", 1.0), f + ".scale")
            if scale <= 0:
                raise _fail("scale must be positive", f + ".scale")
            inputs[name] = InputVar(name, v["delta"], scale, bool(v.get("abs", False)), _terms(v.get("terms"), f + ".terms"))
        outputs = {}
        for name, v in (data.get("outputs") or {}).items():
            f = f"outputs.{name}"
            if not isinstance(v, dict) or v.get("kind") not in OUTPUT_KINDS:
                raise _fail(f"kind must be one of {', '.join(OUTPUT_KINDS)}", f + ".kind")
            rng = v.get("range")
            if not (isinstance(rng, list) and len(rng) == 2):
                raise _fail("range must be [lo, hi]", f + ".range")
            lo, hi = _number(rng[0], f + ".range[0]"), _number(rng[1], f + ".range[1]")
            if hi <= lo:
                raise _fail("range must have lo < hi", f + ".range")
            if v["kind"] == "prompt_term" and not str(v.get("text", "")).strip():
                raise _fail("a prompt_term output needs its 'text'", f + ".text")
            outputs[name] = OutputVar(
                name,
                v["kind"],
                (lo, hi),
                _terms(v.get("terms"), f + ".terms"),
                str(v.get("text", "")),
                _number(v.get("min_weight", 0.0), f + ".min_weight"),
            )
        if not inputs or not outputs:
            raise _fail("a rule base needs inputs and outputs", "inputs" if not inputs else "outputs")
        rules, seen = [], set()
        for i, r in enumerate(data.get("rules") or []):
            f = f"rules[{i}]"
            if not isinstance(r, dict) or not isinstance(r.get("id"), str) or r["id"] in seen:
                raise _fail("every rule needs a unique string 'id'", f + ".id")
            seen.add(r["id"])
            for part, table in (("if", inputs), ("then", outputs)):
                clause = r.get(part)
                if not isinstance(clause, dict) or not clause:
                    raise _fail(f"'{part}' must be a non-empty object", f"{f}.{part}")
                for var, term in clause.items():
                    if var not in table:
                        raise _fail(f"unknown variable '{var}'", f"{f}.{part}.{var}")
                    if term not in table[var].terms:
                        raise _fail(f"'{var}' has no term '{term}' (terms: {', '.join(table[var].terms)})", f"{f}.{part}.{var}")
            if r.get("op", "and") not in ("and", "or"):
                raise _fail("op must be 'and' or 'or'", f + ".op")
            weight = _number(r.get("weight", 1.0), f + ".weight")
            if not 0 < weight <= 1:
                raise _fail("weight must be in (0, 1]", f + ".weight")
            rules.append(Rule(r["id"], dict(r["if"]), r.get("op", "and"), dict(r["then"]), weight))
        if not rules:
            raise _fail("a rule base needs at least one rule", "rules")
        return cls(inputs, outputs, tuple(rules))

    def to_dict(self) -> dict:
        def terms(ts: dict[str, Term]) -> dict:
            return {k: [t.shape, list(t.params)] for k, t in ts.items()}

        outputs = {}
        for o in self.outputs.values():
            d: dict[str, Any] = {"kind": o.kind, "range": list(o.range)}
            if o.kind == "prompt_term":
                d.update(text=o.text, min_weight=o.min_weight)
            d["terms"] = terms(o.terms)
            outputs[o.name] = d
        return {
            "version": RULEBASE_VERSION,
            "inputs": {
                i.name: {"delta": i.delta, "scale": i.scale, "abs": i.absolute, "terms": terms(i.terms)} for i in self.inputs.values()
            },
            "outputs": outputs,
            "rules": [{"id": r.id, "if": r.antecedent, "op": r.op, "then": r.consequent, "weight": r.weight} for r in self.rules],
        }


def merge_overrides(base: dict, override: dict) -> dict:
    """Apply a user override document to a rule-base document (see the module docstring)."""
    if not isinstance(override, dict):
        raise _fail("an override is a JSON object", "override")
    out = copy.deepcopy(base)
    for section in ("inputs", "outputs"):
        extra = override.get(section) or {}
        if not isinstance(extra, dict):
            raise _fail("expected an object", f"override.{section}")
        out[section].update(copy.deepcopy(extra))
    removed = set(override.get("remove_rules") or [])
    unknown = removed - {r.get("id") for r in out["rules"]}
    if unknown:
        raise _fail(f"no rule with id {', '.join(sorted(map(str, unknown)))}", "override.remove_rules")
    rules = [r for r in out["rules"] if r.get("id") not in removed]
    index = {r.get("id"): i for i, r in enumerate(rules)}
    for r in override.get("rules") or []:
        rid = r.get("id") if isinstance(r, dict) else None
        if rid in index:
            rules[index[rid]] = copy.deepcopy(r)
        else:
            rules.append(copy.deepcopy(r))
    out["rules"] = rules
    return out


def default_rules_path() -> Path:
    return Path(__file__).resolve().parent / "rules" / "default.json"


def load_rulebase(override: str | dict | None = None) -> RuleBase:
    """The shipped default rules, with an optional override (JSON text or a parsed object)."""
    data = json.loads(default_rules_path().read_text())
    if override is not None and not (isinstance(override, str) and not override.strip()):
        if isinstance(override, str):
            try:
                override = json.loads(override)
            except json.JSONDecodeError as e:
                raise _fail(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})", "override") from None
        data = merge_overrides(data, override)
    return RuleBase.from_dict(data)
