"""Typed errors of the orchestration layer (plans, planners, checks, context)."""

from __future__ import annotations

from ..errors import GoalError as GoalError  # the phrase reader's, in the shared base; the planner raises it too
from ..errors import PakatiError


class OrchestrationError(PakatiError):
    """Base of every orchestration error."""


class PlanError(OrchestrationError):
    """A plan that does not hold together (bad field, unknown region, bad JSON)."""


class PlanCycleError(PlanError):
    """The task graph has a cycle; ``cycle`` lists the task ids around it."""

    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__("task dependencies form a cycle: " + " -> ".join(cycle + cycle[:1]), field="tasks")


class DanglingDependencyError(PlanError):
    """A task depends on a task id that is not in the plan."""

    def __init__(self, task_id: str, missing: str, index: int):
        self.task_id, self.missing = task_id, missing
        super().__init__(f"task '{task_id}' depends on '{missing}', which is not a task of this plan", field=f"tasks[{index}].depends_on")


class PlannerError(OrchestrationError):
    """A planner that is unknown, or that could not produce a valid plan."""


class CheckError(OrchestrationError):
    """An alignment check that cannot run (bad image, plan without objects)."""


class ContextError(OrchestrationError):
    """The context store cannot be read or written."""


class RepairError(OrchestrationError):
    """A region repair loop that cannot run (bad settings, a regenerated image of the wrong size or with NaN)."""
