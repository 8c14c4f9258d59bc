"""The plan: a Region JSON v1 canvas, base prompt and negative, what the goal names, and a task DAG.

A plan is plain data so that it can be shown on a node, stored in the context store, sent to
an LLM as the shape to fill, and read back: ``Plan.to_json`` / ``Plan.from_json`` round-trip
exactly and ``from_json`` validates against the published schema (``plan.schema.json``) and
then the canvas with ``Canvas.from_dict``, the task graph (dangling dependency, cycle) and
every region id a task or object names.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from ..canvas import Canvas
from ..errors import PakatiError
from ..jsonutil import parse_json
from .errors import DanglingDependencyError, PlanCycleError, PlanError

PLAN_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("plan.schema.json")
TASK_KINDS = ("generate", "inpaint", "refine", "check")
RELATIONS = ("left_of", "right_of", "above", "below", "near", "in_front_of", "behind", "inside", "on")
ATTRIBUTE_KINDS = ("colour", "material", "texture", "size", "shape", "other")


@lru_cache(maxsize=1)
def plan_schema() -> dict:
    """The published JSON schema of a plan (also what the LLM planner is asked to fill)."""
    return json.loads(SCHEMA_PATH.read_text())


@dataclass(frozen=True)
class Task:
    """One step of a plan: ``kind`` on ``region_ids`` with ``params``, after ``depends_on``."""

    id: str
    kind: str
    region_ids: tuple[str, ...] = ()
    params: dict = field(default_factory=dict, compare=True)
    depends_on: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "region_ids": list(self.region_ids),
            "params": copy.deepcopy(self.params),
            "depends_on": list(self.depends_on),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        return cls(d["id"], d["kind"], tuple(d.get("region_ids", ())), copy.deepcopy(d.get("params", {})), tuple(d.get("depends_on", ())))


@dataclass(frozen=True)
class Attribute:
    kind: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value}


@dataclass(frozen=True)
class PlannedObject:
    """One thing the goal names, bound to the region that draws it."""

    id: str
    noun: str
    region_id: str
    phrase: str = ""
    count: int = 1
    attributes: tuple[Attribute, ...] = ()
    background: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "noun": self.noun,
            "phrase": self.phrase,
            "count": self.count,
            "attributes": [a.to_dict() for a in self.attributes],
            "region_id": self.region_id,
            "background": self.background,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PlannedObject":
        attrs = tuple(Attribute(a["kind"], a["value"]) for a in d.get("attributes", ()))
        return cls(d["id"], d["noun"], d["region_id"], d.get("phrase", ""), int(d.get("count", 1)), attrs, bool(d.get("background", False)))


@dataclass(frozen=True)
class Relation:
    """``subject`` stands in ``relation`` to ``object`` (object ids of the plan)."""

    subject: str
    relation: str
    object: str
    phrase: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "relation": self.relation, "object": self.object, "phrase": self.phrase}


@dataclass
class Plan:
    """A goal's plan. ``canvas`` is a Region JSON v1 dict; ``tasks`` a DAG of :class:`Task`."""

    goal: str
    canvas: dict
    base_prompt: str
    base_negative: str = ""
    objects: list[PlannedObject] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    planner: str = "offline"
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    # -- views ------------------------------------------------------------------------
    def canvas_obj(self) -> Canvas:
        return Canvas.from_dict(self.canvas)

    @property
    def width(self) -> int:
        return int(self.canvas["width"])

    @property
    def height(self) -> int:
        return int(self.canvas["height"])

    def object(self, object_id: str) -> PlannedObject:
        for o in self.objects:
            if o.id == object_id:
                return o
        raise PlanError(f"no object '{object_id}' in the plan", field="objects")

    def region(self, region_id: str) -> dict:
        for r in self.canvas["regions"]:
            if r["id"] == region_id:
                return r
        raise PlanError(f"no region '{region_id}' in the plan's canvas", field="canvas.regions")

    def box(self, object_id: str) -> tuple[float, float, float, float]:
        """The object's region as ``(x0, y0, x1, y1)`` in canvas pixels (rects and polygons alike)."""
        pts = self.region(self.object(object_id).region_id)["points"]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs), max(ys)

    # -- DAG --------------------------------------------------------------------------
    def topological_order(self) -> list[Task]:
        """Tasks so that each comes after everything it depends on (ties kept in plan order)."""
        return [t for group in self.parallel_groups() for t in group]

    def parallel_groups(self) -> list[list[Task]]:
        """Tasks in waves: every task of a wave depends only on tasks of earlier waves."""
        return _waves(self.tasks)

    # -- validation and JSON ---------------------------------------------------------------
    def validate(self) -> None:
        try:
            canvas = Canvas.from_dict(self.canvas)
        except PakatiError as e:
            raise PlanError(e.message, field=f"canvas.{e.field}" if e.field else "canvas") from None
        region_ids = {r.id for r in canvas.regions}
        seen: set[str] = set()
        for i, o in enumerate(self.objects):
            if o.id in seen:
                raise PlanError(f"duplicate object id '{o.id}'", field=f"objects[{i}].id")
            seen.add(o.id)
            if o.region_id not in region_ids:
                raise PlanError(
                    f"object '{o.id}' names region '{o.region_id}', which is not on the canvas", field=f"objects[{i}].region_id"
                )
            for a in o.attributes:
                if a.kind not in ATTRIBUTE_KINDS:
                    raise PlanError(
                        f"unknown attribute kind {a.kind!r}; expected one of {ATTRIBUTE_KINDS}", field=f"objects[{i}].attributes"
                    )
        for i, r in enumerate(self.relations):
            if r.relation not in RELATIONS:
                raise PlanError(f"unknown relation {r.relation!r}; expected one of {RELATIONS}", field=f"relations[{i}].relation")
            for end in (r.subject, r.object):
                if end not in seen:
                    raise PlanError(f"relation names object '{end}', which is not in the plan", field=f"relations[{i}]")
        ids: set[str] = set()
        for i, t in enumerate(self.tasks):
            if t.kind not in TASK_KINDS:
                raise PlanError(f"unknown task kind {t.kind!r}; expected one of {TASK_KINDS}", field=f"tasks[{i}].kind")
            if t.id in ids:
                raise PlanError(f"duplicate task id '{t.id}'", field=f"tasks[{i}].id")
            ids.add(t.id)
            for rid in t.region_ids:
                if rid not in region_ids:
                    raise PlanError(f"task '{t.id}' names region '{rid}', which is not on the canvas", field=f"tasks[{i}].region_ids")
        for i, t in enumerate(self.tasks):
            for dep in t.depends_on:
                if dep not in ids:
                    raise DanglingDependencyError(t.id, dep, i)
        _waves(self.tasks)  # raises PlanCycleError

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "goal": self.goal,
            "planner": self.planner,
            "seed": self.seed,
            "base_prompt": self.base_prompt,
            "base_negative": self.base_negative,
            "notes": list(self.notes),
            "canvas": copy.deepcopy(self.canvas),
            "objects": [o.to_dict() for o in self.objects],
            "relations": [r.to_dict() for r in self.relations],
            "tasks": [t.to_dict() for t in self.tasks],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any) -> "Plan":
        if not isinstance(data, dict):
            raise PlanError(f"expected a JSON object, got {type(data).__name__}", field="plan")
        if data.get("version") != PLAN_VERSION:
            raise PlanError(f"unknown plan version {data.get('version')!r}; this Pakati reads version {PLAN_VERSION}", field="version")
        validate_plan_dict(data)
        return cls(
            goal=data["goal"],
            canvas=copy.deepcopy(data["canvas"]),
            base_prompt=data["base_prompt"],
            base_negative=data["base_negative"],
            objects=[PlannedObject.from_dict(o) for o in data["objects"]],
            relations=[Relation(r["subject"], r["relation"], r["object"], r.get("phrase", "")) for r in data["relations"]],
            tasks=[Task.from_dict(t) for t in data["tasks"]],
            planner=data.get("planner", "offline"),
            seed=int(data.get("seed", 0)),
            notes=list(data.get("notes", [])),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> "Plan":
        return cls.from_dict(parse_json(text, PlanError, "plan"))


def validate_plan_dict(data: dict) -> None:
    """Check a plan dict against the published schema; the first error names its JSON path."""
    validator = jsonschema.Draft202012Validator(plan_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path).lstrip(".") or "plan"
        raise PlanError(e.message, field=path)


def _waves(tasks: list[Task]) -> list[list[Task]]:
    """Kahn's algorithm by levels; a leftover set means a cycle, which is found and named."""
    by_id = {t.id: t for t in tasks}
    done: set[str] = set()
    left = [t for t in tasks]
    waves: list[list[Task]] = []
    while left:
        wave = [t for t in left if all(d in done or d not in by_id for d in t.depends_on)]
        if not wave:
            raise PlanCycleError(_find_cycle({t.id: [d for d in t.depends_on if d in by_id] for t in left}))
        waves.append(wave)
        done.update(t.id for t in wave)
        left = [t for t in left if t.id not in done]
    return waves


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """One cycle in a graph where every node is on or leads to a cycle."""
    start = next(iter(graph))
    path: list[str] = []
    index: dict[str, int] = {}
    node = start
    while node not in index:
        index[node] = len(path)
        path.append(node)
        node = next(d for d in graph[node] if d in graph)
    return path[index[node] :]
