"""Goal-to-image orchestration nodes: plan a goal into a region canvas, check an image against it.

``PakatiPlan`` turns a sentence into a Region JSON v1 canvas, a base prompt and a base
negative that plug straight into ``PakatiRegionalConditioning``, shows the plan JSON and a
layout preview on the node, and remembers plans per goal under the ComfyUI user directory so
that a later plan for the same goal starts from what scored best. ``PakatiCheckAlignment``
asks the plan's DSG questions about an image and returns a score, a report and repair tasks.
API keys come only from the environment or the 0600 key file (the model layer); never a widget.
"""

from __future__ import annotations

import json
import time

import comfy.model_management
import comfy.utils
import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..pakati_core.canvas import Canvas
from ..pakati_core.errors import PakatiError
from ..pakati_core.orchestration import Plan, check_alignment, plan, record_check, replan
from ..pakati_core.orchestration.checker import exemplars_from_references
from ..pakati_core.preview import draw_overlay
from .common import CanvasType, PakatiNodeError, checked, node_error
from .persistence import BestEffortContext, BestEffortRecorder, user_cache, user_fingerprint

PlanType = io.Custom("PAKATI_PLAN")
ReferencesType = io.Custom("PAKATI_REFERENCES")
PLANNERS = ["offline", "anthropic", "openai", "local"]
CHECKERS = ["offline", "anthropic", "openai", "local"]
PREVIEW_SIDE = 384


def _preview(canvas: Canvas) -> torch.Tensor:
    s = PREVIEW_SIDE / max(canvas.width, canvas.height)
    w, h = max(8, int(canvas.width * s)), max(8, int(canvas.height * s))
    board = np.full((h, w, 3), 0.18, np.float32)
    img = draw_overlay(board, canvas)
    out = torch.from_numpy(np.ascontiguousarray(img))[None]
    if not torch.isfinite(out).all():
        raise PakatiNodeError("PakatiPlan", "goal", "the layout preview contains NaN or infinite values")
    return out


class PakatiPlan(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiPlan",
            display_name="Pakati Plan (goal to regions)",
            category="Pakati/orchestration",
            description="Turns a goal sentence into a region canvas (one region per object, placed so the stated relations hold), "
            "a base prompt and a base negative for Pakati Regional Conditioning. The plan JSON and a layout preview show on the node.",
            inputs=[
                io.String.Input(
                    "goal",
                    multiline=True,
                    default="The sleek black cat sat next to the fluffy white pillow.",
                    tooltip="What the image should show, in a plain sentence: objects, counts, colours and materials, "
                    "where things are, the setting.",
                ),
                io.Int.Input(
                    "width", default=1024, min=64, max=16384, step=8, tooltip="Canvas width in pixels (a multiple of 8); match the latent."
                ),
                io.Int.Input("height", default=1024, min=64, max=16384, step=8, tooltip="Canvas height in pixels (a multiple of 8)."),
                io.Combo.Input(
                    "planner",
                    options=PLANNERS,
                    default="offline",
                    tooltip="offline: deterministic, no network. anthropic/openai: an LLM fills the plan schema (key from the "
                    "environment or the 0600 key file; without one the offline planner is used and the plan says so). local: an "
                    "OpenAI-compatible server on your machine (Ollama, llama.cpp, vLLM, LM Studio) at "
                    "PAKATI_LOCAL_LLM_URL; no key.",
                ),
                io.String.Input(
                    "model",
                    default="",
                    tooltip="LLM model name for the anthropic/openai planner (empty: the configured default); "
                    "for local, the model name the server lists (empty: PAKATI_LOCAL_LLM_MODEL).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=2**31 - 1,
                    tooltip="Seed recorded in the plan's generate task (same goal and seed give the same plan).",
                ),
                io.Boolean.Input(
                    "remember",
                    default=True,
                    tooltip="Keep plans and checks per goal under the ComfyUI user folder and start "
                    "from the best-scoring earlier plan for the same goal.",
                ),
            ],
            outputs=[
                CanvasType.Output(
                    display_name="canvas", tooltip="The planned regions, for Pakati Regional Conditioning or a canvas preview."
                ),
                io.String.Output(display_name="base_prompt", tooltip="The whole-image prompt."),
                io.String.Output(display_name="base_negative", tooltip="The whole-image negative prompt."),
                PlanType.Output(display_name="plan", tooltip="The plan (objects, relations, task DAG), for Pakati Check Alignment."),
                io.String.Output(
                    display_name="plan_json", tooltip="The plan as JSON (schema: pakati_core/orchestration/plan.schema.json)."
                ),
            ],
        )

    @classmethod
    def validate_inputs(
        cls, goal: str | None = None, planner: str | None = None, width: int | None = None, height: int | None = None
    ) -> bool | str:
        if goal is not None and not goal.strip():
            return "PakatiPlan: input 'goal': the goal is empty; describe what the image should show"
        if planner is not None and planner not in PLANNERS:
            return f"PakatiPlan: input 'planner': unknown planner {planner!r}; expected one of {PLANNERS}"
        for name, v in (("width", width), ("height", height)):
            if v is not None and v % 8:
                return f"PakatiPlan: input '{name}': {v} is not a multiple of 8"
        return True

    @classmethod
    def fingerprint_inputs(cls, **_) -> str:
        """The plan starts from the user's own earlier plans and uses their plan cache: per user."""
        return user_fingerprint()

    @classmethod
    def execute(cls, goal: str, width: int, height: int, planner: str, model: str, seed: int, remember: bool) -> io.NodeOutput:
        node = cls.__name__
        pbar = comfy.utils.ProgressBar(1)
        comfy.model_management.throw_exception_if_processing_interrupted()
        options: dict = {"seed": seed}
        if planner != "offline" and model.strip():
            options["model"] = model.strip()
        if planner != "offline":  # LLM answers are kept in the user's cache table (a broken database: no cache)
            options["cache"] = user_cache("planning")
        if remember:
            options["context"] = BestEffortContext()
        result = checked(
            node, "goal", lambda: plan(goal, width, height, planner=planner, **options), {"goal", "width", "height", "seed", "planner"}
        )
        comfy.model_management.throw_exception_if_processing_interrupted()
        pbar.update(1)
        canvas = checked(node, "goal", result.canvas_obj)
        text = result.to_json(indent=2)
        preview = _preview(canvas)
        ui_out = {**ui.PreviewImage(preview, cls=cls).as_dict(), "text": (text,)}
        return io.NodeOutput(canvas, result.base_prompt, result.base_negative, result, text, ui=ui_out)


class PakatiCheckAlignment(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiCheckAlignment",
            display_name="Pakati Check Alignment",
            category="Pakati/orchestration",
            description="Asks the plan's questions about the image (is every object there, in its colour, where the goal says) and "
            "scores it in [0, 1]. Colours are measured offline; a vision model (anthropic/openai) answers the rest when chosen. "
            "Failed questions become repair tasks and a replanned plan.",
            is_output_node=True,
            inputs=[
                io.Image.Input("image", tooltip="The image to check (the first of a batch)."),
                PlanType.Input(
                    "plan",
                    optional=True,
                    tooltip="The plan from Pakati Plan. Without it, the goal is planned offline at the canvas (or image) size.",
                ),
                io.String.Input(
                    "goal",
                    multiline=True,
                    default="",
                    optional=True,
                    tooltip="The goal, when no plan is connected (or to check against another goal).",
                ),
                CanvasType.Input(
                    "canvas", optional=True, tooltip="A canvas whose region boxes replace the planned ones (regions matched by id)."
                ),
                io.Combo.Input(
                    "checker",
                    options=CHECKERS,
                    default="offline",
                    tooltip="offline: colours and the plan's geometry only. anthropic/openai: a vision model answers what "
                    "cannot be measured. "
                    "local: a vision model on an OpenAI-compatible server on your machine (PAKATI_LOCAL_LLM_URL; no key).",
                ),
                io.String.Input(
                    "model",
                    default="",
                    optional=True,
                    tooltip="Vision model name for the anthropic/openai checker (empty: the "
                    "configured default); for local, the model name the server lists (empty: PAKATI_LOCAL_LLM_MODEL).",
                ),
                ReferencesType.Input(
                    "references",
                    optional=True,
                    tooltip="Optional: Pakati References whose description names an object "
                    '("a cat"): the object is then found in the image by its look, and relations are judged where it really is.',
                ),
                io.Boolean.Input(
                    "remember",
                    default=True,
                    optional=True,
                    tooltip="Keep this check with its plan under the ComfyUI user folder, so "
                    "that Pakati Plan starts from the best-scoring plan for the same goal next time.",
                ),
            ],
            outputs=[
                io.Float.Output(display_name="score", tooltip="Share of the plan's questions the image meets, in [0, 1]."),
                io.String.Output(display_name="report", tooltip="Every question with its verdict, score, source and reason (JSON)."),
                io.String.Output(
                    display_name="suggestions", tooltip="Repair tasks (move/resize a box, regenerate a region, refine a colour) as JSON."
                ),
                PlanType.Output(display_name="replanned", tooltip="The plan with the repairs applied (moved boxes, reweighted prompts)."),
                CanvasType.Output(display_name="repaired_canvas", tooltip="The replanned canvas, ready for another regional pass."),
            ],
        )

    @classmethod
    def validate_inputs(cls, checker: str | None = None) -> bool | str:
        return unknown_checker("PakatiCheckAlignment", checker) or True

    @classmethod
    def fingerprint_inputs(cls, **_) -> str:
        """The check is remembered, and the judge's answers cached, for whoever queued the graph."""
        return user_fingerprint()

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        checker: str,
        plan: Plan | None = None,
        goal: str = "",
        canvas: Canvas | None = None,
        model: str = "",
        remember: bool = True,
        references: tuple | None = None,
    ) -> io.NodeOutput:
        node = cls.__name__
        frame = first_frame(node, image)
        the_plan = _resolve_plan(node, plan, goal or "", canvas, frame.shape[:2])
        notes: list[str] = []
        judge = checker_judge(node, checker, model, notes)
        pbar = comfy.utils.ProgressBar(2)
        comfy.model_management.throw_exception_if_processing_interrupted()
        t0 = time.perf_counter()
        try:
            exemplars = exemplars_from_references(references or (), the_plan)
            result = check_alignment(frame, the_plan, judge=judge, exemplars=exemplars)
        except PakatiError as e:
            raise node_error(node, e, "plan", ("image",), input_of=checker_input) from e
        pbar.update(1)
        comfy.model_management.throw_exception_if_processing_interrupted()
        seconds = time.perf_counter() - t0
        if remember:
            try:
                record_check(BestEffortContext(), the_plan, result, seconds)
            except PakatiError as e:
                notes.append(f"the check was not remembered: {e.message}")
        improved = checked(node, "plan", lambda: replan(the_plan, result))
        report = {**result.to_dict(), "notes": notes, "seconds": round(seconds, 4), "goal": the_plan.goal}
        report_text = json.dumps(report, indent=2, allow_nan=False)
        suggestions = json.dumps([t.to_dict() for t in result.repair_tasks], indent=2, allow_nan=False)
        score = float(result.score)
        if not np.isfinite(score):
            raise PakatiNodeError(node, "image", "the check produced a non-finite score")
        pbar.update(1)
        summary = (
            f"score {score:.2f}\n"
            + "\n".join(f"{v.verdict:6s} {v.question.text} ({v.source})" for v in result.verdicts)
            + ("\n" + "\n".join(notes) if notes else "")
        )
        return io.NodeOutput(score, report_text, suggestions, improved, improved.canvas_obj(), ui={"text": (summary,)})


def unknown_checker(node: str, checker: str | None) -> str | None:
    """``validate_inputs``' message for a checker name that is not one of CHECKERS; None when it is (or not given)."""
    if checker is not None and checker not in CHECKERS:
        return f"{node}: input 'checker': unknown checker {checker!r}; expected one of {CHECKERS}"
    return None


def first_frame(node: str, image: torch.Tensor) -> np.ndarray:
    """The first image of an IMAGE batch as float32 ``[H, W, 3]`` for a check; a wrong shape or NaN names ``image``."""
    if image.ndim != 4 or image.shape[-1] < 3:
        raise PakatiNodeError(node, "image", f"expected an IMAGE batch [B, H, W, 3], got shape {tuple(image.shape)}")
    frame = image[0, ..., :3].detach().float().cpu().numpy().astype(np.float32)
    if not np.isfinite(frame).all():
        raise PakatiNodeError(node, "image", "the image contains NaN or infinite values")
    return frame


def checker_judge(node: str, checker: str, model: str, notes: list[str]):
    """The vision judge ``checker`` names (None for offline), its answers cached per user; with no API key
    configured for a cloud checker, None and a note in ``notes`` (the check runs offline)."""
    if checker == "offline":
        return None
    from ..pakati_core.models import CachedJudge, KeyMissingError, make_judge
    from ..pakati_core.models.credentials import resolve_key

    try:
        if checker != "local":  # a local endpoint needs no key
            resolve_key(checker)
        return CachedJudge(make_judge(checker, model.strip() or None, recorder=BestEffortRecorder()), user_cache("judging"))
    except KeyMissingError as e:
        notes.append(f"checked offline: no API key is configured for {e.provider}")
    except PakatiError as e:
        raise node_error(node, e, "checker") from e
    return None


def _resolve_plan(node: str, plan_in: Plan | None, goal: str, canvas: Canvas | None, shape: tuple[int, int]) -> Plan:
    """The core's ``plan_to_check``, its errors named after this node's inputs."""
    from ..pakati_core.orchestration.errors import GoalError
    from ..pakati_core.orchestration.planning import plan_to_check

    if plan_in is None and not (goal or "").strip():
        raise PakatiNodeError(node, "plan", "connect a plan from Pakati Plan, or give a goal")
    try:
        return plan_to_check(plan_in, goal, canvas, shape)
    except PakatiError as e:
        goal_error = isinstance(e, GoalError)  # the goal itself: named once, not as 'goal: goal: ...'
        raise node_error(
            node,
            e,
            "canvas" if canvas is not None else "goal",
            input_of=lambda err: "goal" if goal_error else None,
            describe=lambda err: err.message if goal_error else str(err),
        ) from e


def checker_input(e: PakatiError) -> str | None:
    """A check's provider error blames the checker input, whatever its field."""
    from ..pakati_core.models.errors import ProviderError

    return "checker" if isinstance(e, ProviderError) else None


NODES = [PakatiPlan, PakatiCheckAlignment]
