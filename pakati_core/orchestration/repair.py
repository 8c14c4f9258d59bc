"""Repair the regions that failed, not the whole image.

A check (:func:`~pakati_core.orchestration.checker.check_alignment`) names, in its failed questions,
the objects it found wrong; each object has its region in the plan. One repair round:

1. :func:`plan_repairs` maps the failed questions to regions (an attribute or colour question to its
   object's region, a relation to both objects', a count to every instance's) and replans
   (:func:`~pakati_core.orchestration.checker.replan`: the region's prompt reweighted as the repair task
   says, e.g. ``(blue:1.4) cube``; moved boxes);
2. a caller-supplied ``regenerate(image, repairs, plan, round)`` redraws those regions (the graph node:
   crop → the host's sampler → stitch, see :func:`crop_regenerator`; ``run-goal``: a region-only
   workflow on a ComfyUI server);
3. :func:`keep_outside` takes the new pixels only inside the repaired regions' grown, feathered blend
   masks: every other pixel is the input's, bit for bit;
4. the image is checked again.

:func:`repair_loop` runs at most ``max_rounds`` rounds, keeps the best-scoring image (ties keep the
earlier) and ends with a ``stop_reason``: ``target`` (the check reached the target), ``no_repairs``
(no failed question names a region that can be redrawn: none failed, or their regions are locked),
``max_rounds``, ``no_improvement`` (``patience`` rounds in a row did not beat the best score) or
``interrupted`` (the ``interrupted`` hook said so).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..images import to_uint8, unit_float
from ..regenerate import crop_region, locked_mask, region_blend, region_seed, stitch_region
from .checker import CheckResult, check_alignment, replan
from .errors import RepairError
from .plan_model import Plan

REPAIR_STOP_REASONS = ("target", "no_repairs", "max_rounds", "no_improvement", "interrupted")
DEFAULT_DENOISE = 0.75  # a failed region with no repair task that says how hard to redraw it
DEFAULT_THRESHOLD = 0.75  # the plan's check threshold when it has no check task


@dataclass(frozen=True)
class RepairSettings:
    """How a repair loop runs; ``grow``/``feather`` (px at the image's size) shape every region's blend mask, and
    the crop regenerator uses the same values, so the pixels it may change are exactly those the loop keeps."""

    max_rounds: int = 3
    target: float | None = None  # None: the plan's check threshold
    seed: int = 0
    grow: int = 8
    feather: float = 16.0
    context: int = 64
    crop_mode: str = "sdxl native"
    patience: int = 1
    colour_match: bool = True

    def __post_init__(self) -> None:
        if self.max_rounds < 1:
            raise RepairError(f"max_rounds must be at least 1, got {self.max_rounds}", field="max_rounds")
        if self.patience < 1:
            raise RepairError(f"patience must be at least 1, got {self.patience}", field="patience")
        if self.grow < 0 or self.feather < 0 or self.context < 0:
            raise RepairError(f"grow ({self.grow}), feather ({self.feather}) and context ({self.context}) must be >= 0", field="grow")
        if self.target is not None and not 0.0 <= self.target <= 1.0:
            raise RepairError(f"target must be in [0, 1], got {self.target}", field="target")


@dataclass(frozen=True)
class RegionRepair:
    """One region to redraw: its (reweighted) prompt, how hard, with which seed, and where (image-sized masks)."""

    region_id: str
    prompt: str
    negative: str
    denoise: float
    seed: int
    objects: tuple[str, ...]
    questions: tuple[str, ...]  # the failed question ids that name it
    tasks: tuple[str, ...]  # the check's repair task ids for it
    mask: np.ndarray = field(repr=False, compare=False)  # [H, W]: the region (old and new place when it moved)
    keep: np.ndarray = field(repr=False, compare=False)  # [H, W]: locked pixels, 1 = never change

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region_id,
            "prompt": self.prompt,
            "negative": self.negative,
            "denoise": round(float(self.denoise), 4),
            "seed": int(self.seed),
            "objects": list(self.objects),
            "questions": list(self.questions),
            "tasks": list(self.tasks),
        }


@dataclass
class RepairRound:
    round: int  # 0: the check of the input image
    score: float
    failed: list[str]  # failed question ids of this round's check
    repairs: list[RegionRepair] = field(default_factory=list)
    improved: bool = False
    seconds: float = 0.0
    check: dict = field(default_factory=dict)

    @property
    def regions(self) -> list[str]:
        return [r.region_id for r in self.repairs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "score": round(float(self.score), 4),
            "regions": self.regions,
            "repairs": [r.to_dict() for r in self.repairs],
            "failed": self.failed,
            "improved": self.improved,
            "seconds": round(self.seconds, 3),
            "check": self.check,
        }


@dataclass
class RepairRun:
    image: np.ndarray = field(repr=False)  # the best image, in the input's dtype
    score: float
    best_round: int
    stop_reason: str
    threshold: float
    rounds: list[RepairRound]
    plan: Plan  # the plan the best image was checked against
    check: CheckResult = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stop_reason": self.stop_reason,
            "score": round(float(self.score), 4),
            "best_round": self.best_round,
            "threshold": self.threshold,
            "regions_repaired": sorted({rid for r in self.rounds for rid in r.regions}),
            "rounds": [r.to_dict() for r in self.rounds],
        }


Regenerate = Callable[[np.ndarray, list[RegionRepair], Plan, int], np.ndarray]
Check = Callable[[np.ndarray, Plan], CheckResult]


def threshold_of(plan: Plan, target: float | None = None) -> float:
    """``target``, else the threshold of the plan's last check task (as run-goal reads it), else 0.75."""
    if target is not None:
        return float(target)
    checks = [t for t in plan.tasks if t.kind == "check"]
    return float(checks[-1].params.get("threshold", DEFAULT_THRESHOLD)) if checks else DEFAULT_THRESHOLD


def failed_regions(plan: Plan, check: CheckResult) -> dict[str, tuple[list[str], list[str]]]:
    """Region id → (object ids, failed question ids), in the order the questions failed.

    Every failed question names its objects (an attribute or colour question its own object, a relation
    both, a count every instance); each object has its region."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for v in check.failed:
        for oid in v.question.objects:
            o = plan.object(oid)
            objs, qs = out.setdefault(o.region_id, ([], []))
            if oid not in objs:
                objs.append(oid)
            if v.question.id not in qs:
                qs.append(v.question.id)
    return out


def plan_repairs(
    plan: Plan, check: CheckResult, width: int, height: int, seed: int = 0, round_index: int = 1
) -> tuple[list[RegionRepair], Plan]:
    """The regions to redraw after ``check`` (masks at ``width x height``) and the replanned plan they follow.

    A locked region is never redrawn. The prompt is the replanned region's (the repair task's reweighting
    applied); the denoise the strongest its repair tasks ask for; the seed the region's own, or one derived
    from its id and ``seed + round_index``."""
    new_plan = replan(plan, check)
    old, new = plan.canvas_obj(), new_plan.canvas_obj()
    repairs: list[RegionRepair] = []
    for rid, (objects, qids) in failed_regions(plan, check).items():
        index = new.index_of(rid)
        region = new.regions[index]
        if region.locked:
            continue
        tasks = [t for t in check.repair_tasks if rid in t.region_ids]
        denoise = max((float(t.params["denoise"]) for t in tasks if "denoise" in t.params), default=DEFAULT_DENOISE)
        mask = np.maximum(old.rasterize(rid, width, height, feather=0), new.rasterize(index, width, height, feather=0))
        repairs.append(
            RegionRepair(
                rid,
                region.prompt,
                region.negative,
                denoise,
                region_seed(region, seed + round_index),
                tuple(objects),
                tuple(qids),
                tuple(t.id for t in tasks),
                mask.astype(np.float32),
                locked_mask(new, width, height, exclude=[index]),
            )
        )
    return repairs, new_plan


def repair_blend(repairs: list[RegionRepair], grow: int, feather: float) -> np.ndarray:
    """The union of the repaired regions' blend masks (grown, feathered, 0 on locked pixels): where pixels may change."""
    out = np.zeros(repairs[0].mask.shape, np.float32)
    for r in repairs:
        out = np.maximum(out, region_blend(r.mask, grow, feather, r.keep))
    return out


def keep_outside(image: np.ndarray, regenerated: np.ndarray, blend: np.ndarray) -> np.ndarray:
    """``regenerated`` where ``blend > 0``, ``image`` (bit for bit, in its dtype) everywhere else; NaN/Inf in
    ``regenerated`` is refused (:class:`~pakati_core.errors.NonFiniteError`, field ``regenerated``)."""
    src = np.asarray(image)
    new = np.asarray(regenerated)
    if new.shape[:2] != src.shape[:2] or new.ndim != 3 or new.shape[2] < 3:
        raise RepairError(
            f"the regenerated image has shape {tuple(new.shape)} but the image is {tuple(src.shape)}; regenerate must keep the size",
            field="regenerated",
        )
    new = new[..., : src.shape[2]]
    new = to_uint8(new, "regenerated") if src.dtype == np.uint8 else unit_float(new, "regenerated", "the regenerated image")
    return np.where((blend > 0)[..., None], new.astype(src.dtype), src)


def crop_regenerator(
    sample_crop: Callable[[np.ndarray, np.ndarray, RegionRepair], np.ndarray],
    settings: RepairSettings,
    check_interrupt: Callable[[], None] | None = None,
) -> Regenerate:
    """A ``regenerate`` that redraws each region in turn: crop it (plus ``settings.context``) at its sampling size,
    ``sample_crop(crop, noise_mask, repair)`` (float ``h x w x 3`` → the same), stitch it back. The host's sampler
    goes in ``sample_crop``; crop and stitch are :mod:`pakati_core.regenerate`'s."""

    def regenerate(image: np.ndarray, repairs: list[RegionRepair], plan: Plan, round_index: int) -> np.ndarray:
        out = unit_float(image, "image")[None, ..., :3].astype(np.float32)
        for r in repairs:
            crop = crop_region(
                out,
                r.mask[None],
                context=settings.context,
                mode=settings.crop_mode,
                grow=settings.grow,
                feather=settings.feather,
                keep_out=r.keep,
                check_interrupt=check_interrupt,
            )
            new = sample_crop(crop.images[0], crop.masks[0], r)
            out = stitch_region(crop.stitch, np.asarray(new)[None], colour_match=settings.colour_match, check_interrupt=check_interrupt)
        return out[0]

    return regenerate


def repair_round(
    image: np.ndarray,
    plan: Plan,
    check_result: CheckResult,
    regenerate: Regenerate,
    settings: RepairSettings,
    round_index: int,
    check: Check | None = None,
    best_score: float | None = None,
) -> tuple[RepairRound, np.ndarray, Plan, CheckResult] | None:
    """One repair round on ``image`` (checked as ``check_result`` against ``plan``): the failed regions redrawn by
    ``regenerate``, every other pixel kept, the result checked against the replanned plan. None when no failed
    question names a region that can be redrawn. ``improved`` compares with ``best_score`` (default: the input's)."""
    check = check or (lambda img, p: check_alignment(img, p))
    t0 = time.monotonic()
    height, width = np.asarray(image).shape[:2]
    repairs, new_plan = plan_repairs(plan, check_result, width, height, settings.seed, round_index)
    if not repairs:
        return None
    regenerated = regenerate(image, repairs, new_plan, round_index)
    out = keep_outside(image, regenerated, repair_blend(repairs, settings.grow, settings.feather))
    result = check(out, new_plan)
    best = float(check_result.score) if best_score is None else best_score
    failed = [v.question.id for v in result.failed]
    score = float(result.score)
    rnd = RepairRound(round_index, score, failed, repairs, score > best, time.monotonic() - t0, result.to_dict())
    return rnd, out, new_plan, result


def repair_loop(
    image: np.ndarray,
    plan: Plan,
    regenerate: Regenerate,
    settings: RepairSettings = RepairSettings(),
    *,
    check: Check | None = None,
    initial: CheckResult | None = None,
    on_round: Callable[[RepairRound], None] | None = None,
    interrupted: Callable[[], bool] | None = None,
) -> RepairRun:
    """Check → repair the failed regions → check again, for at most ``settings.max_rounds`` repair rounds.

    ``image`` is ``H x W x 3`` (uint8 or float in 0..1; the result keeps its dtype). ``check(image, plan)``
    defaults to the offline :func:`check_alignment`; ``initial`` is the input image's check when the caller
    has it. A round that does not beat the best score starts the next one from the best image again.
    """
    check = check or (lambda img, p: check_alignment(img, p))
    src = np.asarray(image)
    if src.ndim != 3 or src.shape[2] < 3:
        raise RepairError(f"expected an H x W x 3 image, got shape {tuple(src.shape)}", field="image")
    threshold = threshold_of(plan, settings.target)
    t0 = time.monotonic()
    first = initial if initial is not None else check(src, plan)
    failed = [v.question.id for v in first.failed]
    rounds = [RepairRound(0, float(first.score), failed, seconds=time.monotonic() - t0, check=first.to_dict())]
    if on_round is not None:
        on_round(rounds[0])
    best = (src, first, plan, 0)
    stop, stale = "max_rounds", 0
    if first.score >= threshold:
        stop = "target"
    for r in range(1, settings.max_rounds + 1) if stop != "target" else ():
        if interrupted is not None and interrupted():
            stop = "interrupted"
            break
        current, current_check, current_plan, _ = best
        step = repair_round(current, current_plan, current_check, regenerate, settings, r, check, best_score=float(best[1].score))
        if step is None:
            stop = "no_repairs"
            break
        if interrupted is not None and interrupted():
            stop = "interrupted"
            break
        rnd, out, new_plan, result = step
        improved = rnd.improved
        rounds.append(rnd)
        if on_round is not None:
            on_round(rnd)
        if improved:
            best, stale = (out, result, new_plan, r), 0
        else:
            stale += 1
        if best[1].score >= threshold:
            stop = "target"
            break
        if stale >= settings.patience:
            stop = "no_improvement"
            break
    img, chk, p, at = best
    return RepairRun(img, float(chk.score), at, stop, threshold, rounds, p, chk)


__all__ = [
    "REPAIR_STOP_REASONS",
    "RegionRepair",
    "RepairError",
    "RepairRound",
    "RepairRun",
    "RepairSettings",
    "crop_regenerator",
    "failed_regions",
    "keep_outside",
    "plan_repairs",
    "repair_blend",
    "repair_loop",
    "repair_round",
    "threshold_of",
]
