"""Orchestration: a goal becomes a region plan, the image is checked against it, the plan improves."""
from __future__ import annotations

from .errors import (
    CheckError, ContextError, DanglingDependencyError, GoalError, OrchestrationError, PlanCycleError, PlanError, PlannerError,
)
from .plan_model import Attribute, Plan, PlannedObject, Relation, Task, plan_schema

__all__ = [
    "Attribute", "Plan", "PlannedObject", "Relation", "Task", "plan_schema",
    "CheckError", "ContextError", "DanglingDependencyError", "GoalError", "OrchestrationError", "PlanCycleError", "PlanError", "PlannerError",
]
