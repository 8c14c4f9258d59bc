"""``plan()``: a goal becomes a plan, by the offline planner or an LLM, optionally starting from the context store."""

from __future__ import annotations

from .errors import PlannerError
from .plan_model import Plan

PLANNERS = ("offline", "anthropic", "openai", "local")


def plan(goal: str, width: int = 1024, height: int = 1024, planner: str = "offline", **options) -> Plan:
    """Turn ``goal`` into a :class:`Plan` (Region JSON v1 canvas, base prompt, task DAG).

    ``planner``: "offline" (deterministic, no network), a cloud LLM provider ("anthropic", "openai"; falls
    back to offline with a note when no key is configured) or "local" (an OpenAI-compatible endpoint on the
    user's machine: ``PAKATI_LOCAL_LLM_URL`` and a model name; no key). With
    ``context=<ContextStore>`` the plan starts from the best-scoring earlier plan for the same
    goal and size (when one scored at least ``reuse_min_score``, default 0.75) and is recorded.
    """
    import time

    from .context import best_plan, record_plan

    context = options.pop("context", None)
    min_score = float(options.pop("reuse_min_score", 0.75))
    t0 = time.perf_counter()
    if context is not None:
        found = best_plan(context, goal, width, height, min_score)
        if found is not None:
            data, score = found
            data = {**data, "notes": list(data.get("notes", [])) + [f"started from an earlier plan for this goal that scored {score:.2f}"]}
            if "seed" in options:
                data["seed"] = int(options["seed"])
            result = Plan.from_dict(data)
            record_plan(context, result, time.perf_counter() - t0)
            return result
    if planner == "offline":
        from .offline import plan_offline

        result = plan_offline(goal, width, height, **options)
    elif planner in ("openai", "anthropic", "local"):
        from .llm import plan_with_llm

        result = plan_with_llm(goal, width, height, provider=planner, **options)
    else:
        raise PlannerError(f"unknown planner {planner!r}; expected one of {', '.join(PLANNERS)}", field="planner")
    if context is not None:
        record_plan(context, result, time.perf_counter() - t0)
    return result


def with_canvas(the_plan: Plan, canvas) -> Plan:
    """``the_plan`` with its region boxes replaced by an edited canvas's (regions matched by id; the canvas is
    scaled to the plan's size first; mask regions keep the planned box). A ``PlanError`` when the result is invalid."""
    data = the_plan.to_dict()
    given = canvas if (canvas.width, canvas.height) == (the_plan.width, the_plan.height) else canvas.scaled(the_plan.width, the_plan.height)
    by_id = {r.id: r for r in given.regions}
    for r in data["canvas"]["regions"]:
        if r["id"] in by_id and by_id[r["id"]].shape != "mask":
            r["points"] = [list(p) for p in by_id[r["id"]].points]
            r["shape"] = by_id[r["id"]].shape
    return Plan.from_dict(data)


def plan_to_check(plan_in: Plan | None, goal: str, canvas=None, image_shape: tuple[int, int] | None = None) -> Plan:
    """The plan a check is made against: the given plan (unless another goal is named), else ``goal`` planned
    offline at the canvas's size (or the image's, rounded down to a multiple of 8); an edited ``canvas`` moves its boxes."""
    from .errors import GoalError

    goal = goal or ""
    if plan_in is not None and not (goal.strip() and goal.strip() != plan_in.goal.strip()):
        the_plan = plan_in
    else:
        if not goal.strip():
            raise GoalError("connect a plan from Pakati Plan, or give a goal", field="plan")
        if canvas is not None:
            w, h = canvas.width, canvas.height
        else:
            shape = image_shape or (1024, 1024)
            w, h = max(8, shape[1] // 8 * 8), max(8, shape[0] // 8 * 8)
        the_plan = plan(goal, w, h)
    return with_canvas(the_plan, canvas) if canvas is not None else the_plan
