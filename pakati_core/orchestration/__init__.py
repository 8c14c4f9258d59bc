"""Orchestration: a goal becomes a region plan, the image is checked against it, the plan improves."""

from __future__ import annotations

from .checker import CheckResult, Question, Verdict, check_alignment, questions, replan
from .context import ContextStore, goal_key, record_check, record_generation
from .errors import (
    CheckError,
    ContextError,
    DanglingDependencyError,
    GoalError,
    OrchestrationError,
    PlanCycleError,
    PlanError,
    PlannerError,
    RepairError,
)
from .plan_model import Attribute, Plan, PlannedObject, Relation, Task, plan_schema

__all__ = [
    "ContextStore",
    "goal_key",
    "record_check",
    "record_generation",
    "CheckResult",
    "Question",
    "Verdict",
    "check_alignment",
    "questions",
    "replan",
    "Attribute",
    "Plan",
    "PlannedObject",
    "Relation",
    "Task",
    "plan_schema",
    "CheckError",
    "ContextError",
    "DanglingDependencyError",
    "GoalError",
    "OrchestrationError",
    "PlanCycleError",
    "PlanError",
    "PlannerError",
    "RepairError",
]


from .planning import PLANNERS, plan  # noqa: E402 - after the names plan() builds on

__all__ += ["PLANNERS", "plan"]

from .repair import RegionRepair, RepairRound, RepairRun, RepairSettings, crop_regenerator, plan_repairs, repair_loop  # noqa: E402

__all__ += ["RegionRepair", "RepairRound", "RepairRun", "RepairSettings", "crop_regenerator", "plan_repairs", "repair_loop"]
