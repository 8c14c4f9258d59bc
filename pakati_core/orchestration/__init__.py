"""Orchestration: a goal becomes a region plan, the image is checked against it, the plan improves."""
from __future__ import annotations

from .errors import (
    CheckError, ContextError, DanglingDependencyError, GoalError, OrchestrationError, PlanCycleError, PlanError, PlannerError,
)
from .plan_model import Attribute, Plan, PlannedObject, Relation, Task, plan_schema
from .checker import CheckResult, Question, Verdict, check_alignment, questions, replan

__all__ = [
    "CheckResult", "Question", "Verdict", "check_alignment", "questions", "replan",
    "Attribute", "Plan", "PlannedObject", "Relation", "Task", "plan_schema",
    "CheckError", "ContextError", "DanglingDependencyError", "GoalError", "OrchestrationError", "PlanCycleError", "PlanError", "PlannerError",
]


def plan(goal: str, width: int = 1024, height: int = 1024, planner: str = "offline", **options) -> Plan:
    """Turn ``goal`` into a :class:`Plan` (Region JSON v1 canvas, base prompt, task DAG).

    ``planner``: "offline" (deterministic, no network) or an LLM provider ("anthropic",
    "openai"; falls back to offline with a note when no key is configured).
    """
    from .offline import plan_offline

    if planner == "offline":
        return plan_offline(goal, width, height, **options)
    from .llm import plan_with_llm

    return plan_with_llm(goal, width, height, provider=planner, **options)


__all__.append("plan")
