"""Pakati from Python and across many ComfyUI servers, through ComfyUI's own HTTP/WS API.

No ComfyUI import: a :class:`ComfyClient` talks to one server (``/prompt``, ``/ws``,
``/history``, ``/view``, ``/upload/image``, ``/interrupt``, ``/queue``, ``/system_stats``,
``/object_info``); a :class:`Workflow` fills an API-format workflow's Pakati inputs; a
:class:`Dispatcher` spreads tasks over several servers (threads, or Ray actors).
"""

from .api import ComfyClient, Event, OutputImage, PromptResult, PromptTimeoutError, QueueState
from .dispatch import Dispatcher, PromptTask, RunSummary, TaskResult, execute_task
from .errors import (
    ClientError,
    ExecutionError,
    ExecutionInterruptedError,
    MissingNodeTypeError,
    PromptRejectedError,
    ServerUnavailableError,
    WorkflowError,
)
from .generate import generate, make_dispatcher, make_tasks, save_result, write_summary
from .goal import GoalRound, GoalRun, run_goal, write_goal_summary
from .workflow import Workflow, parse_seeds

__all__ = [
    "ComfyClient",
    "Event",
    "OutputImage",
    "PromptResult",
    "PromptTimeoutError",
    "QueueState",
    "Dispatcher",
    "RunSummary",
    "PromptTask",
    "TaskResult",
    "execute_task",
    "ClientError",
    "ExecutionError",
    "ExecutionInterruptedError",
    "MissingNodeTypeError",
    "PromptRejectedError",
    "ServerUnavailableError",
    "WorkflowError",
    "generate",
    "make_dispatcher",
    "make_tasks",
    "save_result",
    "write_summary",
    "Workflow",
    "parse_seeds",
    "GoalRound",
    "GoalRun",
    "run_goal",
    "write_goal_summary",
]
