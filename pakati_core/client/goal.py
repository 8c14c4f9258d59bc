"""``run-goal``: plan → generate on the servers → check → replan, for at most K rounds.

The plan comes from :mod:`pakati_core.orchestration` (locally, offline or through an LLM
planner); its task DAG is walked level by level. ``generate`` tasks become prompts of the
user's workflow (the plan's canvas, base prompts and seed, one prompt per seed variant, spread
over the servers); ``check`` tasks score each candidate with ``check_alignment`` here. The
repair tasks a check emits (``inpaint``/``refine`` of a region, moved boxes) are applied to the
canvas by ``replan``, and the next round regenerates the image with that canvas: the client runs
whole-image prompts of the user's workflow, not separate region-only workflows.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .api import ComfyClient, Event, OutputImage
from .dispatch import Dispatcher, TaskResult
from .errors import WorkflowError
from .generate import as_workflow, make_dispatcher, make_tasks, save_result
from .workflow import Workflow

GOAL_SUMMARY_VERSION = 1


@dataclass
class GoalRound:
    round: int
    plan: dict
    results: list[dict]
    checks: list[dict]
    best: dict | None
    repairs: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"round": self.round, "plan": self.plan, "results": self.results, "checks": self.checks, "best": self.best,
                "repairs": self.repairs, "folded_into_canvas": self.folded, "seconds": round(self.seconds, 3)}


@dataclass
class GoalRun:
    """Every round's plan, candidates, checks and best image; ``best`` is the best over all rounds."""

    goal: str
    rounds: list[GoalRound]
    stop_reason: str  # target | max_rounds | no_repairs | no_check (the plan has none) | failed | interrupted
    best: dict | None
    best_image: np.ndarray | None = field(default=None, repr=False)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"version": GOAL_SUMMARY_VERSION, "goal": self.goal, "stop_reason": self.stop_reason, "best": self.best,
                "seconds": round(self.seconds, 3), "rounds": [r.to_dict() for r in self.rounds]}


def _checked_image(result: TaskResult, output_node: str | None) -> OutputImage | None:
    images = [im for im in result.images if output_node is None or im.node_id == str(output_node)]
    saved = [im for im in images if im.type == "output"]
    return (saved or images or [None])[0]


def run_goal(goal: str, workflow: Workflow | dict | str | Path, *, servers: Sequence[str | ComfyClient], width: int = 1024,
             height: int = 1024, planner: str = "offline", rounds: int = 3, variants: Sequence[int] = (0,),
             target: float | None = None, seed: int = 0, output_node: str | None = None, out_dir: str | Path | None = None,
             context: Any = None, backend: str = "threads", max_inflight: int = 1, timeout: float | None = None,
             on_event: Callable[[Event], None] | None = None, on_result: Callable[[TaskResult], None] | None = None,
             on_round: Callable[[GoalRound], None] | None = None, client_options: dict | None = None,
             ray_options: dict | None = None, planner_options: Mapping[str, Any] | None = None) -> GoalRun:
    """Run the goal loop; ``variants`` are seed offsets rendered in parallel per generate task.

    ``target`` overrides the check task's threshold. ``context`` (a ``ContextStore``) makes
    the planner start from the best earlier plan for the goal and records plans, generations
    and checks.
    """
    from ..orchestration import check_alignment, plan as make_plan, record_check, record_generation, replan

    if rounds < 1:
        raise WorkflowError(f"rounds must be >= 1, got {rounds}", "rounds")
    if not variants:
        raise WorkflowError("at least one seed variant is needed", "variants")
    wf = as_workflow(workflow)
    if not wf.canvas_nodes:
        raise WorkflowError(f"{wf.name}: run-goal needs a workflow with a PakatiCanvas node (the plan's canvas goes there), "
                            "for example workflows/api/regional_sdxl.json with your loader", "workflow")
    out = Path(out_dir) if out_dir is not None else None
    opts = dict(planner_options or {})
    if context is not None:
        opts["context"] = context
    t_start = time.monotonic()
    p = make_plan(goal, width, height, planner=planner, seed=seed, **opts)
    history: list[GoalRound] = []
    best_overall: dict | None = None
    best_image: np.ndarray | None = None
    stop = "max_rounds"
    dispatcher: Dispatcher = make_dispatcher(servers, backend=backend, max_inflight=max_inflight, timeout=timeout,
                                             on_event=on_event, on_result=on_result, client_options=client_options,
                                             ray_options=ray_options)
    try:
        for r in range(rounds):
            t0 = time.monotonic()
            rnd = GoalRound(r, p.to_dict(), [], [], None)
            candidates: list[tuple[TaskResult, np.ndarray]] = []
            last_check = None
            for wave in p.parallel_groups():
                gens = [t for t in wave if t.kind == "generate"]
                rnd.folded += [t.id for t in wave if t.kind in ("inpaint", "refine")]
                if gens:
                    tasks = []
                    for gt in gens:
                        base_seed = int(gt.params.get("seed", p.seed))
                        for ts in make_tasks(wf, [base_seed + v for v in variants], canvas=p.canvas, prompt=p.base_prompt,
                                             negative=p.base_negative):
                            ts.id = f"r{r}-{gt.id}-{ts.id}"
                            ts.meta.update(round=r, plan_task=gt.id)
                            tasks.append(ts)
                    g0 = time.monotonic()
                    summary = dispatcher.run(tasks)
                    for res in summary.results:
                        if out is not None and res.status == "done":
                            save_result(res, out / f"round{r}")
                        rnd.results.append(res.to_dict())
                        im = _checked_image(res, output_node) if res.status == "done" else None
                        if im is not None:
                            candidates.append((res, im.array()))
                    if context is not None:
                        record_generation(context, p, {"round": r, "tasks": [t.id for t in tasks],
                                                       "servers": sorted({x.server for x in summary.results if x.server})},
                                          time.monotonic() - g0)
                    if summary.interrupted:
                        stop = "interrupted"
                        break
                for ct in (t for t in wave if t.kind == "check"):
                    threshold = float(target if target is not None else ct.params.get("threshold", 0.75))
                    for res, arr in candidates:
                        c0 = time.monotonic()
                        rgb = arr[..., :3].astype(np.float32) / 255.0
                        chk = check_alignment(rgb, p)
                        if context is not None:
                            record_check(context, p, chk, time.monotonic() - c0)
                        entry = {"task": res.task_id, "seed": res.meta.get("seed"), "server": res.server, "score": round(float(chk.score), 4),
                                 "threshold": threshold, "check": chk.to_dict(), "files": res.files}
                        rnd.checks.append(entry)
                        if last_check is None or chk.score > last_check[0].score:
                            last_check = (chk, entry, arr, threshold)
            if stop == "interrupted":
                history.append(rnd)
                break
            if last_check is None:
                rnd.seconds = time.monotonic() - t0
                history.append(rnd)
                stop = "failed" if not candidates else "no_check"
                if candidates and best_overall is None:
                    res, arr = candidates[0]
                    best_overall, best_image = {"round": r, "task": res.task_id, "seed": res.meta.get("seed"), "server": res.server,
                                                "score": None, "files": res.files}, arr
                break
            chk, entry, arr, threshold = last_check
            rnd.best = {k: entry[k] for k in ("task", "seed", "server", "score", "files")}
            if best_overall is None or (best_overall["score"] is not None and entry["score"] > best_overall["score"]):
                best_overall, best_image = dict(rnd.best, round=r), arr
            rnd.repairs = [t.id for t in chk.repair_tasks]
            rnd.seconds = time.monotonic() - t0
            history.append(rnd)
            if on_round is not None:
                on_round(rnd)
            if chk.score >= threshold:
                stop = "target"
                break
            if not chk.repair_tasks:
                stop = "no_repairs"
                break
            if r + 1 < rounds:
                p = replan(p, chk)
    finally:
        dispatcher.close()
    run = GoalRun(goal, history, stop, best_overall, best_image, time.monotonic() - t_start)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if best_image is not None:
            from PIL import Image

            Image.fromarray(best_image).save(out / "best.png")
        (out / "plan_final.json").write_text(p.to_json(indent=2))
    return run


def write_goal_summary(run: GoalRun, path: str | Path, extra: Mapping[str, Any] | None = None) -> dict:
    data = dict(extra or {}) | run.to_dict()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, allow_nan=False))
    return data
