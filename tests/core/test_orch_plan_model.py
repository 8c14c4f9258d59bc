"""The plan model: schema-checked JSON round trip, task DAG order and waves, typed graph errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pakati_core.orchestration import (
    DanglingDependencyError,
    Plan,
    PlanCycleError,
    PlanError,
    PlannedObject,
    Relation,
    Task,
    plan_schema,
)
from pakati_core.orchestration.plan_model import Attribute


def _canvas():
    return {
        "version": 1,
        "width": 512,
        "height": 512,
        "regions": [
            {"id": "cat", "name": "cat", "shape": "rect", "points": [[40, 200], [220, 420]], "prompt": "black cat"},
            {"id": "pillow", "name": "pillow", "shape": "rect", "points": [[260, 220], [470, 420]], "prompt": "white pillow"},
        ],
    }


def _plan(tasks):
    objs = [PlannedObject("cat", "cat", "cat", attributes=(Attribute("colour", "black"),)), PlannedObject("pillow", "pillow", "pillow")]
    return Plan(
        "a black cat next to a pillow",
        _canvas(),
        "a cat and a pillow",
        "blurry",
        objs,
        [Relation("cat", "near", "pillow", "next to")],
        tasks,
    )


def test_round_trip_is_exact_and_strict_json():
    tasks = [
        Task("gen", "generate", ("cat", "pillow"), {"steps": 20}),
        Task("chk", "check", (), {}, ("gen",)),
        Task("fix", "refine", ("cat",), {"denoise": 0.4}, ("chk",)),
    ]
    p = _plan(tasks)
    text = p.to_json(indent=2)
    q = Plan.from_json(text)
    assert q.to_dict() == p.to_dict()
    assert q.tasks == p.tasks and q.objects == p.objects and q.relations == p.relations
    assert json.loads(text)["canvas"]["regions"][0]["prompt"] == "black cat"
    assert plan_schema()["properties"]["version"]["const"] == 1


def test_topological_order_and_parallel_groups():
    tasks = [
        Task("check", "check", (), {}, ("a", "b")),
        Task("a", "generate", ("cat",)),
        Task("b", "inpaint", ("pillow",), {}, ("a",)),
        Task("c", "refine", ("pillow",), {}, ("a",)),
    ]
    p = _plan(tasks)
    assert [t.id for t in p.topological_order()] == ["a", "b", "c", "check"]
    assert [[t.id for t in g] for g in p.parallel_groups()] == [["a"], ["b", "c"], ["check"]]


def test_cycle_is_a_typed_error_naming_the_cycle():
    tasks = [
        Task("a", "generate", (), {}, ("c",)),
        Task("b", "refine", (), {}, ("a",)),
        Task("c", "check", (), {}, ("b",)),
        Task("d", "check"),
    ]
    with pytest.raises(PlanCycleError) as e:
        _plan(tasks)
    assert sorted(e.value.cycle) == ["a", "b", "c"] and "->" in str(e.value)


def test_dangling_dependency_is_a_typed_error():
    with pytest.raises(DanglingDependencyError) as e:
        _plan([Task("a", "generate"), Task("b", "check", (), {}, ("nope",))])
    assert e.value.missing == "nope" and e.value.field == "tasks[1].depends_on"


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["tasks"][0].update(kind="paint"), "tasks[0].kind"),
        (lambda d: d["objects"][0].update(region_id="dog"), "objects[0].region_id"),
        (lambda d: d["relations"][0].update(relation="orbiting"), "relations[0].relation"),
        (lambda d: d["canvas"].update(width=500), "canvas.width"),
        (lambda d: d.update(extra=1), "plan"),
    ],
)
def test_bad_plans_name_the_field(mutate, field):
    d = _plan([Task("gen", "generate", ("cat",))]).to_dict()
    mutate(d)
    with pytest.raises(PlanError) as e:
        Plan.from_dict(d)
    assert e.value.field == field


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b"{" + b)))
def test_bad_json_reads_through_the_one_parser_with_the_plan_error(text):
    """Plan.from_json parses with jsonutil.parse_json: text that is not JSON gives a PlanError on field
    'plan' whose message says where it broke, word for word as json.loads reports it."""
    try:
        json.loads(text)
    except json.JSONDecodeError as d:
        with pytest.raises(PlanError) as e:
            Plan.from_json(text)
        assert (e.value.field, e.value.message) == ("plan", f"not valid JSON ({d.msg} at line {d.lineno} column {d.colno})")
        assert e.value.__cause__ is None and e.value.__suppress_context__
    except (UnicodeDecodeError, RecursionError):
        pass  # not a JSON syntax error: the parser lets it through, as json.loads does
    else:
        with pytest.raises(PlanError):  # JSON, but not a plan
            Plan.from_json(text)


def test_bad_json_and_version():
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.from_json("{")
    d = _plan([]).to_dict()
    d["version"] = 2
    with pytest.raises(PlanError, match="version"):
        Plan.from_dict(d)
