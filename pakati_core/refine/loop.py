"""The multi-pass refinement loop: measure -> fuzzy adjustments -> cheap corrections -> regenerate
what still misses -> measure; stop on target, convergence, oscillation, max passes or interrupt.

The loop always returns the best pass, not the last. Each pass starts from the best image so far,
so one bad regeneration cannot drag the run down. Correction strengths for a channel are halved
every time that channel's delta flips sign (damping). A stretch of passes without progress is
"converged", or "oscillating" when the tried results swung a delta's sign on every one of them.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..delta.catalogue import DELTA_SPECS
from ..delta.report import DeltaReport, ReferenceCache, analyse
from ..delta.view import as_mask, as_rgb
from ..errors import PakatiError
from ..finite import NAN_HINT, require_finite
from ..fuzzy import MamdaniEngine, load_rulebase
from ..references import Reference
from .correct import correct_region, paste_masked
from .protocols import RefineInterrupted, RegenParams, Regenerator
from .store import WhatWorkedStore

STOP_REASONS = ("target", "converged", "oscillating", "max_passes", "interrupted")
STRATEGIES = {"conservative": 0.6, "adaptive": 1.0, "aggressive": 1.3}
# cheap action -> (correction channels it moves, fuzzy outputs giving their strengths)
CORRECTIONS = {
    "tone": {"brightness": "tone_strength", "contrast": "contrast_strength"},
    "colour": {"warmth": "warmth_strength", "tint": "tint_strength", "saturation": "saturation_strength"},
}
SPREAD_SEED_OFFSET = 7919
DEFAULT_DENOISE = 0.3  # when a rule override drops the denoise output


class RefineSettingsError(PakatiError):
    """Loop settings out of range."""


class RegeneratorOutputError(PakatiError):
    """The host's regenerator returned an image of the wrong shape."""


@dataclass(frozen=True)
class RefineSettings:
    max_passes: int = 4
    target: float = 0.95
    strategy: str = "adaptive"
    seed: int = 0
    epsilon: float = 0.002  # least best-so-far gain that counts as progress
    patience: int = 2  # passes without progress before "converged"

    def __post_init__(self) -> None:
        if not 1 <= self.max_passes <= 64:
            raise RefineSettingsError(f"max_passes must be 1..64, got {self.max_passes}", "max_passes")
        if not 0.0 < self.target <= 1.0:
            raise RefineSettingsError(f"target must be in (0, 1], got {self.target}", "target")
        if self.strategy not in STRATEGIES:
            raise RefineSettingsError(f"strategy must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'", "strategy")
        if self.epsilon < 0 or self.patience < 1:
            raise RefineSettingsError("epsilon must be >= 0 and patience >= 1", "epsilon" if self.epsilon < 0 else "patience")


@dataclass
class RefineResult:
    image: np.ndarray
    score: float
    best_pass: int
    stop_reason: str
    history: list[dict]
    epsilon: float
    records: list[dict] = field(default_factory=list)  # what-worked records of this run

    def to_dict(self) -> dict:
        return {"version": 1, "stop_reason": self.stop_reason, "best_pass": self.best_pass,
                "score": round(self.score, 6), "epsilon": round(self.epsilon, 6), "passes": self.history}


def _r(x: float) -> float:
    return round(float(x), 6)


def _measure(image: np.ndarray, refs: Sequence[Reference], mask: np.ndarray | None, cache: ReferenceCache) -> DeltaReport:
    return analyse(image, refs, mask, cache)


def _deltas(report: DeltaReport) -> dict[str, float]:
    d = report.weighted_deltas()
    d["shift"] = math.hypot(d.get("shift_x", 0.0), d.get("shift_y", 0.0))
    return d


def _aspects(report: DeltaReport) -> dict[str, float]:
    names = report.results[0].aspects
    total = sum(r.reference.weight for r in report.results)
    return {a: _r(sum(r.reference.weight * r.aspects[a] for r in report.results) / total) for a in names}


def _swinging(passes: list[dict], channels) -> bool:
    """True when some channel's measured delta changed sign on every pass of a stretch without
    progress: the loop is swinging the region back and forth rather than settling."""
    for c in channels:
        values = [h.get("tried_deltas", h["deltas"]).get(c, 0.0) for h in passes]
        if len(values) >= 3 and all(abs(v) > DELTA_SPECS[c].jnd for v in values) and all(
                np.sign(a) == -np.sign(b) for a, b in zip(values, values[1:])):
            return True
    return False


def _regenerated(regenerate: Regenerator, image: np.ndarray, mask: np.ndarray, params: RegenParams) -> np.ndarray:
    """The regenerator's pixels pasted through the mask, once: ``m * new + (1 - m) * old``.

    The regenerator returns raw pixels (never blended); the loop owns the paste, so a soft mask
    edge is blended exactly once and every pixel where ``m == 0`` stays bit-identical.
    """
    new = np.asarray(regenerate(image, mask, params), np.float32)
    if new.shape[:2] != image.shape[:2] or new.ndim != 3 or new.shape[2] < 3:
        raise RegeneratorOutputError(f"the regenerator returned shape {new.shape}, expected {image.shape}", "regenerator")
    require_finite(new[..., :3], f"the regenerated region (pass {params.pass_index}, seed {params.seed})", "regenerator", NAN_HINT)
    return paste_masked(image, np.clip(new[..., :3], 0.0, 1.0), mask)


def _run_id(refs: Sequence[Reference], settings: RefineSettings, image: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(image).tobytes())
    for r in refs:
        h.update(r.content_hash.encode())
    h.update(repr((settings.seed, settings.strategy, settings.target, settings.max_passes)).encode())
    return h.hexdigest()[:16]


def refine(
    image: np.ndarray,
    references: Sequence[Reference],
    mask: np.ndarray | None = None,
    settings: RefineSettings | None = None,
    engine: MamdaniEngine | None = None,
    regenerate: Regenerator | None = None,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
    store: WhatWorkedStore | None = None,
) -> RefineResult:
    """Refine the region of ``image`` under ``mask`` towards ``references``.

    ``check_interrupt`` and ``regenerate`` may raise :class:`RefineInterrupted`; the loop then
    stops with reason ``interrupted`` and still returns the best pass.
    """
    settings = settings or RefineSettings()
    engine = engine or MamdaniEngine(load_rulebase())
    rgb = as_rgb(image)
    m = as_mask(mask, rgb.shape[:2])
    region_mask = None if mask is None else m
    gain = STRATEGIES[settings.strategy]
    cache = ReferenceCache()
    run_id = _run_id(references, settings, rgb)
    cheap_order = store.order(list(CORRECTIONS)) if store else list(CORRECTIONS)

    report = _measure(rgb, references, region_mask, cache)
    best_img, best_score, best_pass, best_report = rgb, report.overall, 0, report
    current_img, current_report = rgb, report
    history = [{"pass": 0, "seed": None, "score": _r(report.overall), "best_so_far": _r(best_score),
                "aspects": _aspects(report), "deltas": {k: _r(v) for k, v in _deltas(report).items()},
                "adjustments": {}, "actions": [], "kept": "input"}]
    records: list[dict] = []
    damping = {c: 1.0 for chans in CORRECTIONS.values() for c in chans}
    epsilon, spread = settings.epsilon, None
    since_progress = 0
    stop = "max_passes"
    prev_start: dict[str, float] | None = None  # the deltas the previous pass started from

    def record(pass_index: int, action: str, before: DeltaReport, after: DeltaReport, deltas: dict, kept: bool) -> dict:
        ab, aa = _aspects(before), _aspects(after)
        rec = {"run": run_id, "pass": pass_index, "action": action, "deltas": {k: _r(v) for k, v in deltas.items()},
               "before": _r(before.overall), "after": _r(after.overall), "gain": _r(after.overall - before.overall),
               "aspects_gain": {k: _r(aa[k] - ab[k]) for k in ab}, "kept": kept}
        records.append(rec)
        return {k: rec[k] for k in ("action", "before", "after", "gain", "kept")}

    for p in range(1, settings.max_passes + 1):
        try:
            if check_interrupt:
                check_interrupt()
            if best_score >= settings.target:
                stop = "target"
                break
            deltas = _deltas(current_report)
            inference = engine.infer(deltas)
            out = inference.outputs
            adjustments = {k: _r(v) for k, v in out.items()}
            actions = []
            # damping: a channel whose delta changed sign since the last pass is corrected half as hard
            prev, prev_start = prev_start, deltas
            for c in damping:
                now = deltas.get(c, 0.0)
                flipped = prev is not None and abs(now) > DELTA_SPECS[c].jnd and np.sign(now) == -np.sign(prev.get(c, 0.0)) != 0
                if flipped:
                    damping[c] *= 0.5
            cand_img, cand_report = current_img, current_report
            tried = current_report
            for action in cheap_order:
                strengths = {c: float(np.clip(out.get(o, 0.0) * gain, 0.0, 1.0)) * damping[c] for c, o in CORRECTIONS[action].items()}
                trial = correct_region(cand_img, region_mask, deltas, strengths)
                trial_report = _measure(trial, references, region_mask, cache)
                kept = trial_report.overall > cand_report.overall
                tried = trial_report
                actions.append(record(p, action, cand_report, trial_report, deltas, kept) | {"strengths": {k: _r(v) for k, v in strengths.items()}})
                if kept:
                    cand_img, cand_report = trial, trial_report
                    deltas = _deltas(cand_report)
            seed = None
            if regenerate is not None and cand_report.overall < settings.target:
                seed = settings.seed + p
                params = RegenParams(seed=seed, denoise=float(np.clip(out.get("denoise", DEFAULT_DENOISE) * gain, 0.05, 1.0)),
                                     cfg_delta=out.get("cfg_delta", 0.0) * gain, steps_factor=out.get("steps_factor", 1.0),
                                     prompt_terms=tuple(inference.prompt_terms(engine.rulebase)), pass_index=p)
                regen = _regenerated(regenerate, cand_img, m, params)
                regen_report = _measure(regen, references, region_mask, cache)
                if spread is None:
                    # the seed-to-seed spread of a score at these settings: convergence never
                    # claims a gain smaller than what a different seed alone would give
                    alt = RegenParams(**{**params.__dict__, "seed": seed + SPREAD_SEED_OFFSET})
                    alt_img = _regenerated(regenerate, cand_img, m, alt)
                    alt_report = _measure(alt_img, references, region_mask, cache)
                    spread = abs(alt_report.overall - regen_report.overall)
                    epsilon = max(settings.epsilon, spread)
                    if alt_report.overall > regen_report.overall:
                        regen, regen_report, seed, params = alt_img, alt_report, alt.seed, alt
                kept = regen_report.overall > cand_report.overall
                tried = regen_report
                actions.append(record(p, "regenerate", cand_report, regen_report, deltas, kept) | {"params": params.to_dict()})
                if kept:
                    cand_img, cand_report = regen, regen_report
        except RefineInterrupted:
            stop = "interrupted"
            break
        improved = cand_report.overall - best_score
        if improved > 0:
            best_img, best_score, best_pass, best_report = cand_img, cand_report.overall, p, cand_report
        current_img, current_report = best_img, best_report
        since_progress = 0 if improved >= epsilon else since_progress + 1
        history.append({"pass": p, "seed": seed, "score": _r(cand_report.overall), "best_so_far": _r(best_score),
                        "aspects": _aspects(cand_report), "deltas": {k: _r(v) for k, v in _deltas(cand_report).items()},
                        "adjustments": adjustments, "actions": actions, "kept": "pass" if improved > 0 else "best",
                        "tried_deltas": {c: _r(_deltas(tried).get(c, 0.0)) for c in damping}})
        if progress:
            progress(p, settings.max_passes)
        if best_score >= settings.target:
            stop = "target"
            break
        if since_progress >= settings.patience:
            stop = "oscillating" if _swinging(history[-max(settings.patience, 3):], damping) else "converged"
            break
    if store is not None and records:
        store.append(records)
    return RefineResult(best_img, float(best_score), best_pass, stop, history, float(epsilon), records)
