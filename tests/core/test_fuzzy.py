"""The Mamdani engine and the shipped rule base: coverage, monotonicity, JSON round trip, overrides."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from pakati_core.fuzzy import FuzzyRuleError, MamdaniEngine, RuleBase, default_rules_path, load_rulebase, merge_overrides
from pakati_core.fuzzy.membership import membership

GRID = np.linspace(-1.0, 1.0, 11)


@pytest.fixture(scope="module")
def engine() -> MamdaniEngine:
    return MamdaniEngine(load_rulebase())


def outputs_of(rb: RuleBase, input_name: str) -> set[str]:
    return {o for r in rb.rules if input_name in r.antecedent for o in r.consequent}


def test_membership_shapes():
    assert membership("tri", (0, 1, 2), 1.0) == 1.0 and membership("tri", (0, 1, 2), 0.5) == 0.5
    assert membership("trap", (-1, -1, -0.6, -0.3), -1.0) == 1.0  # shoulder
    assert membership("trap", (0, 1, 2, 3), 3.5) == 0.0


def test_every_input_combination_fires_a_rule_for_every_output(engine):
    rb = engine.rulebase
    universe = {n: (np.linspace(0, 1, 11) if v.absolute else GRID) for n, v in rb.inputs.items()}
    # the outputs fed by several inputs: the full 11^k grid over those inputs
    multi = ["structure", "sharpness", "saturation"]
    for values in itertools.product(*(universe[n] for n in multi)):
        x = {n: 0.0 for n in rb.inputs} | dict(zip(multi, values))
        engine.infer_normalised(x)  # raises FuzzyRuleError if any output is left without a rule
    # every input over its universe with all others random (seeded)
    rng = np.random.default_rng(0)
    for _ in range(400):
        x = {n: float(rng.uniform(*v.universe)) for n, v in rb.inputs.items()}
        out = engine.infer_normalised(x).outputs
        for name, var in rb.outputs.items():
            assert var.range[0] <= out[name] <= var.range[1]


def test_outputs_are_monotone_in_each_delta(engine):
    """Signed outputs move one way as a delta goes from - to +; strengths grow with |delta|."""
    rb = engine.rulebase
    rng = np.random.default_rng(1)
    for name, var in rb.inputs.items():
        fed = outputs_of(rb, name)
        for _ in range(5):
            base = {n: float(rng.uniform(*v.universe)) * 0.5 for n, v in rb.inputs.items()}
            xs = np.linspace(0, 1, 21) if var.absolute else np.linspace(-1, 1, 41)
            curves = {o: [engine.infer_normalised(base | {name: float(x)}).outputs[o] for x in xs] for o in fed}
            for o, ys in curves.items():
                lo, hi = rb.outputs[o].range
                tol = 1e-4 * (hi - lo)  # centroid round-off on the 201-point output grid
                if rb.outputs[o].kind == "correction" or (var.absolute and o == "denoise"):
                    # strengths grow with the size of the delta, whatever its sign
                    pos = np.asarray(ys)[xs >= 0]
                    assert np.all(np.diff(pos) >= -tol), (name, o)
                    if not var.absolute:
                        neg = np.asarray(ys)[xs <= 0][::-1]
                        assert np.all(np.diff(neg) >= -tol), (name, o)
                elif o == "denoise":
                    pos, neg = np.asarray(ys)[xs >= 0], np.asarray(ys)[xs <= 0][::-1]
                    assert np.all(np.diff(pos) >= -tol) and np.all(np.diff(neg) >= -tol), (name, o)
                else:
                    d = np.diff(ys)
                    assert np.all(d >= -tol) or np.all(d <= tol), f"{o} is not monotone in {name}: {ys}"


def test_signed_outputs_point_the_right_way(engine):
    cool = engine.infer({"warmth": -15.0})  # the region is cooler than the reference
    assert ("warm tones", cool.outputs["term_warm"] and round(cool.outputs["term_warm"], 2)) in cool.prompt_terms(engine.rulebase)
    assert cool.outputs["term_cool"] < 0.3
    muted = engine.infer({"saturation": -18.0})
    assert muted.outputs["cfg_delta"] > 1.0
    vivid = engine.infer({"saturation": 18.0})
    assert vivid.outputs["cfg_delta"] < -1.0
    blurry = engine.infer({"sharpness": -0.7})
    assert blurry.outputs["steps_factor"] > 1.5 and ("sharp focus, fine detail", pytest.approx(1.27, abs=0.05)) in blurry.prompt_terms(
        engine.rulebase
    )
    assert engine.infer({"ssim_loss": 0.4}).outputs["denoise"] > 0.5
    calm = engine.infer({})
    assert calm.prompt_terms(engine.rulebase) == [] and calm.outputs["denoise"] < 0.3
    assert engine.infer({"brightness": 20}).outputs["tone_strength"] > engine.infer({"brightness": 4}).outputs["tone_strength"]


def test_rules_round_trip_exactly():
    data = json.loads(default_rules_path().read_text())
    rb = RuleBase.from_dict(data)
    assert rb.to_dict() == data
    assert RuleBase.from_dict(json.loads(json.dumps(rb.to_dict()))) == rb


def test_user_override_replaces_adds_and_removes_rules(engine):
    override = {
        "version": 1,
        "outputs": {
            "term_golden": {
                "kind": "prompt_term",
                "range": [0, 1.5],
                "text": "golden hour",
                "min_weight": 0.3,
                "terms": {"none": ["tri", [-0.15, 0, 0.15]], "strong": ["trap", [0.9, 1.2, 1.5, 1.5]]},
            }
        },
        "rules": [
            {"id": "golden-cool", "if": {"warmth": "NL"}, "op": "and", "then": {"term_golden": "strong"}},
            *({"id": f"golden-{t}", "if": {"warmth": t}, "then": {"term_golden": "none"}} for t in ("NS", "Z", "PS", "PL")),
            {"id": "cfg-saturation-NL", "if": {"saturation": "NL"}, "then": {"cfg_delta": "keep"}},
        ],
        "remove_rules": ["term_muted-saturation-PL"],
    }
    rb = load_rulebase(json.dumps(override))
    ids = [r.id for r in rb.rules]
    assert "golden-cool" in ids and "term_muted-saturation-PL" not in ids
    assert len(ids) == len(engine.rulebase.rules) + 5 - 1 == 82
    e = MamdaniEngine(rb)
    assert ("golden hour", pytest.approx(1.27, abs=0.05)) in [(t, w) for t, w in e.infer({"warmth": -20}).prompt_terms(rb)]
    assert abs(e.infer({"saturation": -20}).outputs["cfg_delta"]) < 0.1  # the replaced rule


@pytest.mark.parametrize(
    "override, field",
    [
        ({"version": 1, "rules": [{"id": "x", "if": {"nope": "Z"}, "then": {"denoise": "low"}}]}, "rules[78].if.nope"),
        ({"version": 1, "rules": [{"id": "x", "if": {"warmth": "HUGE"}, "then": {"denoise": "low"}}]}, "rules[78].if.warmth"),
        ({"version": 1, "outputs": {"denoise": {"kind": "knob", "range": [0, 1], "terms": {}}}}, "outputs.denoise.kind"),
        (
            {"version": 1, "inputs": {"warmth": {"delta": "warmth", "scale": 20, "terms": {"Z": ["tri", [1, 0, -1]]}}}},
            "inputs.warmth.terms.Z",
        ),
        ({"version": 1, "remove_rules": ["ghost"]}, "override.remove_rules"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(override, field):
    with pytest.raises(FuzzyRuleError) as info:
        load_rulebase(override)
    assert info.value.field == field


def test_sparse_rule_base_is_reported_not_silently_zero():
    data = json.loads(default_rules_path().read_text())
    data = merge_overrides(
        data, {"remove_rules": [r["id"] for r in data["rules"] if r["id"].startswith("cfg-saturation-") and not r["id"].endswith("-Z")]}
    )
    e = MamdaniEngine(RuleBase.from_dict(data))
    with pytest.raises(FuzzyRuleError, match="no rule fires for output 'cfg_delta'"):
        e.infer({"saturation": -20})


def test_bad_override_json_is_a_typed_error():
    with pytest.raises(FuzzyRuleError, match="override: not valid JSON"):
        load_rulebase("{oops")
