"""``run-goal``: plan → generate on the servers → check → replan, for at most K rounds.

The plan comes from :mod:`pakati_core.orchestration` (locally, offline or through an LLM
planner); its task DAG is walked level by level. ``generate`` tasks become prompts of the
user's workflow (the plan's canvas, base prompts and seed, one prompt per seed variant, spread
over the servers); ``check`` tasks score each candidate with ``check_alignment`` here. The
repair tasks a check emits (``inpaint``/``refine`` of a region, moved boxes) are applied to the
canvas by ``replan``. When the check failed on some of the plan's regions only, the next round
(``repair="regions"``, the default) redraws just those regions of the best image so far, each with a
region-only prompt built from the user's workflow (:mod:`.region_round`: their loader, LoRAs and
sampler settings; crop → sample → stitch on the server) and the core's repair round
(:func:`pakati_core.orchestration.repair.repair_round`: every other pixel stays bit-identical);
otherwise (or with ``repair="whole"``) it renders the whole image again with the replanned canvas.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .api import ComfyClient, Event, OutputImage
from .dispatch import Dispatcher, TaskResult
from .errors import WorkflowError
from .generate import as_workflow, make_dispatcher, make_tasks, save_result
from .region_round import LOAD, SAVE, region_workflow
from .workflow import Workflow

GOAL_SUMMARY_VERSION = 1
REPAIR_MODES = ("regions", "whole")
CHECKERS = ("offline", "anthropic", "openai", "local")


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
    kind: str = "whole"  # whole: the whole image rendered; regions: only the failed regions redrawn
    regions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "round": self.round,
            "kind": self.kind,
            "regions": self.regions,
            "plan": self.plan,
            "results": self.results,
            "checks": self.checks,
            "best": self.best,
            "repairs": self.repairs,
            "folded_into_canvas": self.folded,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class GoalRun:
    """Every round's plan, candidates, checks and best image; ``best`` is the best over all rounds."""

    goal: str
    rounds: list[GoalRound]
    stop_reason: str  # target | max_rounds | no_repairs | no_check (the plan has none) | failed | interrupted
    best: dict | None
    best_image: np.ndarray | None = field(default=None, repr=False)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "version": GOAL_SUMMARY_VERSION,
            "goal": self.goal,
            "stop_reason": self.stop_reason,
            "notes": self.notes,
            "best": self.best,
            "seconds": round(self.seconds, 3),
            "rounds": [r.to_dict() for r in self.rounds],
        }


def _checked_image(result: TaskResult, output_node: str | None) -> OutputImage | None:
    images = [im for im in result.images if output_node is None or im.node_id == str(output_node)]
    saved = [im for im in images if im.type == "output"]
    return (saved or images or [None])[0]


def run_goal(
    goal: str,
    workflow: Workflow | dict | str | Path,
    *,
    servers: Sequence[str | ComfyClient],
    width: int = 1024,
    height: int = 1024,
    planner: str = "offline",
    rounds: int = 3,
    variants: Sequence[int] = (0,),
    target: float | None = None,
    seed: int = 0,
    output_node: str | None = None,
    out_dir: str | Path | None = None,
    context: Any = None,
    backend: str = "threads",
    max_inflight: int = 1,
    timeout: float | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    on_round: Callable[[GoalRound], None] | None = None,
    client_options: dict | None = None,
    ray_options: dict | None = None,
    planner_options: Mapping[str, Any] | None = None,
    checker: str = "offline",
    checker_model: str | None = None,
    judge: Any = None,
    repair: str = "regions",
    repair_options: Mapping[str, Any] | None = None,
) -> GoalRun:
    """Run the goal loop; ``variants`` are seed offsets rendered in parallel per generate task.

    ``target`` overrides the check task's threshold. ``context`` (a ``ContextStore``) makes
    the planner start from the best earlier plan for the goal and records plans, generations
    and checks. ``checker`` (offline, anthropic, openai, local) picks the vision judge that answers what
    colours cannot (``checker_model`` its model; ``judge`` a ready ``VisionJudge`` instead). ``repair``:
    ``regions`` redraws only the failed regions when some regions passed, ``whole`` always renders the whole
    image again; ``repair_options`` are :class:`~pakati_core.orchestration.repair.RepairSettings` fields
    (``grow``, ``feather``, ``context``, ``crop_mode``) for the region-only rounds.
    """
    from ..orchestration import RepairSettings
    from ..orchestration import plan as make_plan

    if rounds < 1:
        raise WorkflowError(f"rounds must be >= 1, got {rounds}", "rounds")
    if not variants:
        raise WorkflowError("at least one seed variant is needed", "variants")
    if repair not in REPAIR_MODES:
        raise WorkflowError(f"repair must be one of {', '.join(REPAIR_MODES)}, got {repair!r}", "repair")
    if checker not in CHECKERS:
        raise WorkflowError(f"checker must be one of {', '.join(CHECKERS)}, got {checker!r}", "checker")
    settings = RepairSettings(**dict(repair_options or {}))
    wf = as_workflow(workflow)
    if not wf.canvas_nodes:
        raise WorkflowError(
            f"{wf.name}: run-goal needs a workflow with a PakatiCanvas node (the plan's canvas goes there), "
            "for example workflows/api/regional_sdxl.json with your loader",
            "workflow",
        )
    opts = dict(planner_options or {})
    if context is not None:
        opts["context"] = context
    t_start = time.monotonic()
    first_plan = make_plan(goal, width, height, planner=planner, seed=seed, **opts)
    notes: list[str] = []
    if judge is None:
        judge = make_checker(checker, checker_model, notes)
    dispatcher = make_dispatcher(
        servers,
        backend=backend,
        max_inflight=max_inflight,
        timeout=timeout,
        on_event=on_event,
        on_result=on_result,
        client_options=client_options,
        ray_options=ray_options,
    )
    out = Path(out_dir) if out_dir is not None else None
    loop = _GoalLoop(wf, dispatcher, first_plan, list(variants), target, output_node, out, context, judge, repair, settings)
    try:
        loop.run(rounds, on_round)
    finally:
        dispatcher.close()
    run = GoalRun(goal, loop.history, loop.stop, loop.best, loop.best_image, time.monotonic() - t_start, notes + loop.notes)
    if out is not None:
        _save_outputs(out, loop.best_image, loop.plan)
    return run


def make_checker(checker: str, model: str | None, notes: list[str]) -> Any:
    """The vision judge for ``checker`` (None for offline). A cloud checker with no API key configured checks
    offline and says so in ``notes`` (as the planner does); a local one needs ``PAKATI_LOCAL_LLM_URL``."""
    if checker == "offline":
        return None
    from ..models import KeyMissingError, make_judge

    try:
        return make_judge(checker, model or None)
    except KeyMissingError as e:
        notes.append(f"checked offline: no API key is configured for {e.provider}")
        return None


class _RegionRoundStopped(Exception):
    """A region-only round that ended without an image: ``reason`` is interrupted or failed."""

    def __init__(self, reason: str):
        self.reason = reason


@dataclass
class _Candidate:
    result: TaskResult
    pixels: np.ndarray  # H x W x C uint8, as the server saved it


@dataclass
class _Checked:
    check: Any  # CheckResult
    entry: dict
    pixels: np.ndarray
    threshold: float


@dataclass
class _GoalLoop:
    """The state of one run-goal: the current plan, the rounds so far and the best image; one method a step."""

    wf: Workflow
    dispatcher: Dispatcher
    plan: Any  # orchestration.Plan
    variants: list[int]
    target: float | None
    output_node: str | None
    out: Path | None
    context: Any
    judge: Any = None
    repair: str = "regions"
    settings: Any = None  # orchestration.RepairSettings for region-only rounds
    history: list[GoalRound] = field(default_factory=list)
    stop: str = "max_rounds"
    best: dict | None = None
    best_image: np.ndarray | None = None
    best_checked: _Checked | None = None
    best_plan: Any = None
    notes: list[str] = field(default_factory=list)

    def run(self, rounds: int, on_round: Callable[[GoalRound], None] | None) -> None:
        """Rounds of plan -> generate -> check until the target, a check with no repairs, no check, an interrupt or ``rounds``.

        After a check that failed on some regions only, the next round redraws just those regions of the best image."""
        from ..orchestration import replan

        region_round = False
        for r in range(rounds):
            t0 = time.monotonic()
            if region_round:
                rnd, candidates, best_check = self.repair_regions(r)
            else:
                rnd = GoalRound(r, self.plan.to_dict(), [], [], None)
                candidates, best_check = self.walk_plan(r, rnd)
            rnd.seconds = time.monotonic() - t0
            self.history.append(rnd)
            if self.stop in ("interrupted", "no_repairs"):
                return
            if best_check is None:
                self.stop = "failed" if not candidates else "no_check"
                if candidates and self.best is None:
                    self.keep_unchecked(r, candidates[0])
                return
            self.keep_best(r, rnd, best_check)
            if on_round is not None:
                on_round(rnd)
            if best_check.check.score >= best_check.threshold:
                self.stop = "target"
                return
            if not best_check.check.repair_tasks:
                self.stop = "no_repairs"
                return
            if r + 1 < rounds:
                region_round = self.region_only()
                if not region_round:
                    self.plan = replan(self.plan, best_check.check)

    def region_only(self) -> bool:
        """Whether the next round redraws only the best image's failed regions: some regions failed, not all, and the
        user's workflow can be turned into a region-only prompt."""
        from ..orchestration.repair import failed_regions

        if self.repair != "regions" or self.best_checked is None:
            return False
        failed = failed_regions(self.best_plan, self.best_checked.check)
        everything = {r["id"] for r in self.best_plan.canvas["regions"]}
        if not failed or set(failed) >= everything:
            return False
        try:
            region_workflow(self.wf, canvas=self.best_plan.canvas, region=next(iter(failed)), prompt=None, negative=None,
                            seed=0, denoise=1.0, grow=0, feather=0.0, context=0, crop_mode="keep")  # fmt: skip
        except WorkflowError as e:
            if not any(n.startswith("whole-image rounds") for n in self.notes):
                self.notes.append(f"whole-image rounds: {e}")
            return False
        return True

    def repair_regions(self, r: int) -> tuple[GoalRound, list, _Checked | None]:
        """One region-only round on the best image so far: its failed regions redrawn on the servers, one region-only
        prompt per region (each on the image the previous one made), every other pixel kept, then checked."""
        from ..orchestration import check_alignment, record_check
        from ..orchestration.repair import repair_round
        from .dispatch import PromptTask

        base, base_plan = self.best_checked, self.best_plan
        rnd = GoalRound(r, {}, [], [], None, kind="regions")
        made: list[TaskResult] = []
        s = self.settings

        def regenerate(image: np.ndarray, repairs: list, new_plan: Any, round_index: int) -> np.ndarray:
            current = np.asarray(image)[..., :3]
            for rep in repairs:
                prompt = region_workflow(
                    self.wf, canvas=new_plan.canvas, region=rep.region_id, prompt=new_plan.base_prompt, negative=new_plan.base_negative,
                    seed=rep.seed, denoise=rep.denoise, grow=s.grow, feather=s.feather, context=s.context, crop_mode=s.crop_mode,
                    colour_match=s.colour_match,
                )  # fmt: skip
                task = PromptTask(
                    f"r{r}-repair-{rep.region_id}", prompt, {LOAD: current}, {"round": r, "region": rep.region_id, "seed": rep.seed}, [SAVE]
                )
                summary = self.dispatcher.run([task])
                res = summary.results[0]
                if self.out is not None and res.status == "done":
                    save_result(res, self.out / f"round{r}")
                rnd.results.append(res.to_dict())
                if summary.interrupted:
                    raise _RegionRoundStopped("interrupted")
                im = _checked_image(res, SAVE) if res.status == "done" else None
                if im is None:
                    raise _RegionRoundStopped("failed")
                made.append(res)
                current = im.array()[..., :3]
            return current

        threshold = base.threshold
        c0 = time.monotonic()
        try:
            step = repair_round(
                base.pixels[..., :3], base_plan, base.check, regenerate, s, r,
                check=lambda img, p: check_alignment(img, p, judge=self.judge), best_score=float(base.check.score),
            )  # fmt: skip
        except _RegionRoundStopped as e:
            if e.reason == "interrupted":
                self.stop = "interrupted"
            return rnd, [], None
        if step is None:  # every failed region is locked: nothing can be redrawn
            self.stop = "no_repairs"
            return rnd, [], None
        repaired, pixels, new_plan, result = step
        self.plan = new_plan
        rnd.plan, rnd.regions = new_plan.to_dict(), repaired.regions
        if self.context is not None:
            record_check(self.context, new_plan, result, time.monotonic() - c0)
        last = made[-1]
        entry = {
            "task": last.task_id,
            "seed": last.meta.get("seed"),
            "server": last.server,
            "score": round(float(result.score), 4),
            "threshold": threshold,
            "check": result.to_dict(),
            "files": [f for res in made for f in res.files],
            "repairs": [rep.to_dict() for rep in repaired.repairs],
        }
        rnd.checks.append(entry)
        return rnd, [], _Checked(result, entry, pixels, threshold)

    def walk_plan(self, r: int, rnd: GoalRound) -> tuple[list[_Candidate], _Checked | None]:
        """The plan's task DAG, wave by wave: generate tasks render candidates, check tasks score them."""
        candidates: list[_Candidate] = []
        best: _Checked | None = None
        for wave in self.plan.parallel_groups():
            rnd.folded += [t.id for t in wave if t.kind in ("inpaint", "refine")]
            gens = [t for t in wave if t.kind == "generate"]
            if gens and self.generate(r, gens, rnd, candidates):
                self.stop = "interrupted"
                break
            for ct in (t for t in wave if t.kind == "check"):
                threshold = float(self.target if self.target is not None else ct.params.get("threshold", 0.75))
                for c in candidates:
                    checked = self.check(c, threshold, rnd)
                    if best is None or checked.check.score > best.check.score:
                        best = checked
        return candidates, best

    def generate(self, r: int, gens: list, rnd: GoalRound, candidates: list[_Candidate]) -> bool:
        """Render the generate tasks (one prompt per seed variant) on the servers; True when interrupted."""
        from ..orchestration import record_generation

        p = self.plan
        tasks = []
        for gt in gens:
            base_seed = int(gt.params.get("seed", p.seed))
            for ts in make_tasks(
                self.wf, [base_seed + v for v in self.variants], canvas=p.canvas, prompt=p.base_prompt, negative=p.base_negative
            ):
                ts.id = f"r{r}-{gt.id}-{ts.id}"
                ts.meta.update(round=r, plan_task=gt.id)
                tasks.append(ts)
        g0 = time.monotonic()
        summary = self.dispatcher.run(tasks)
        for res in summary.results:
            if self.out is not None and res.status == "done":
                save_result(res, self.out / f"round{r}")
            rnd.results.append(res.to_dict())
            im = _checked_image(res, self.output_node) if res.status == "done" else None
            if im is not None:
                candidates.append(_Candidate(res, im.array()))
        if self.context is not None:
            record_generation(
                self.context,
                p,
                {"round": r, "tasks": [t.id for t in tasks], "servers": sorted({x.server for x in summary.results if x.server})},
                time.monotonic() - g0,
            )
        return bool(summary.interrupted)

    def check(self, candidate: _Candidate, threshold: float, rnd: GoalRound) -> _Checked:
        """Score one candidate against the plan (``check_alignment`` reads the 8-bit pixels as they are)."""
        from ..orchestration import check_alignment, record_check

        res = candidate.result
        c0 = time.monotonic()
        chk = check_alignment(candidate.pixels[..., :3], self.plan, judge=self.judge)
        if self.context is not None:
            record_check(self.context, self.plan, chk, time.monotonic() - c0)
        entry = {
            "task": res.task_id,
            "seed": res.meta.get("seed"),
            "server": res.server,
            "score": round(float(chk.score), 4),
            "threshold": threshold,
            "check": chk.to_dict(),
            "files": res.files,
        }
        rnd.checks.append(entry)
        return _Checked(chk, entry, candidate.pixels, threshold)

    def keep_best(self, r: int, rnd: GoalRound, best: _Checked) -> None:
        """The round's best candidate, and the run's best when it beats every earlier round's."""
        rnd.best = {k: best.entry[k] for k in ("task", "seed", "server", "score", "files")}
        if self.best is None or (self.best["score"] is not None and best.entry["score"] > self.best["score"]):
            self.best, self.best_image = dict(rnd.best, round=r), best.pixels
            self.best_checked, self.best_plan = best, self.plan
        rnd.repairs = [t.id for t in best.check.repair_tasks]

    def keep_unchecked(self, r: int, candidate: _Candidate) -> None:
        """With no check in the plan, the first image is the result (unscored)."""
        res = candidate.result
        self.best = {"round": r, "task": res.task_id, "seed": res.meta.get("seed"), "server": res.server, "score": None, "files": res.files}
        self.best_image = candidate.pixels


def _save_outputs(out: Path, best_image: np.ndarray | None, plan: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if best_image is not None:
        from PIL import Image

        Image.fromarray(best_image).save(out / "best.png")
    (out / "plan_final.json").write_text(plan.to_json(indent=2))


def write_goal_summary(run: GoalRun, path: str | Path, extra: Mapping[str, Any] | None = None) -> dict:
    data = dict(extra or {}) | run.to_dict()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, allow_nan=False))
    return data
