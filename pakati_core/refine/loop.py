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
from ..delta.view import as_mask
from ..errors import PakatiError
from ..finite import NAN_HINT, require_finite
from ..fuzzy import MamdaniEngine, load_rulebase
from ..fuzzy.engine import Inference
from ..images import as_rgb
from ..masks import paste_masked
from ..references import Reference
from .correct import correct_region
from .protocols import RefineInterrupted, Regenerator, RegenParams
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
        return {
            "version": 1,
            "stop_reason": self.stop_reason,
            "best_pass": self.best_pass,
            "score": round(self.score, 6),
            "epsilon": round(self.epsilon, 6),
            "passes": self.history,
        }


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
        if (
            len(values) >= 3
            and all(abs(v) > DELTA_SPECS[c].jnd for v in values)
            and all(np.sign(a) == -np.sign(b) for a, b in zip(values, values[1:]))
        ):
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


@dataclass
class PassOutcome:
    """What one pass produced: its best image and report, the last report tried, the actions."""

    image: np.ndarray
    report: DeltaReport
    tried: DeltaReport
    adjustments: dict[str, float]
    actions: list[dict] = field(default_factory=list)
    seed: int | None = None


@dataclass
class RefineState:
    """Everything the loop carries from pass to pass (the steps below read and update it)."""

    references: Sequence[Reference]
    settings: RefineSettings
    engine: MamdaniEngine
    mask: np.ndarray  # what the regenerator gets (all ones without a mask)
    region_mask: np.ndarray | None  # what is measured (None: the whole image)
    cache: ReferenceCache
    run_id: str
    cheap_order: list[str]
    best_img: np.ndarray
    best_report: DeltaReport
    best_pass: int = 0
    history: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)  # what-worked records of this run
    damping: dict[str, float] = field(default_factory=lambda: {c: 1.0 for chans in CORRECTIONS.values() for c in chans})
    epsilon: float = 0.0
    spread: float | None = None  # seed-to-seed spread of the score, measured on the first regeneration
    since_progress: int = 0
    prev_start: dict[str, float] | None = None  # the deltas the previous pass started from
    stop: str = "max_passes"

    @property
    def gain(self) -> float:
        return STRATEGIES[self.settings.strategy]

    @property
    def best_score(self) -> float:
        return self.best_report.overall

    def measure(self, image: np.ndarray) -> DeltaReport:
        return _measure(image, self.references, self.region_mask, self.cache)

    def record(self, pass_index: int, action: str, before: DeltaReport, after: DeltaReport, deltas: dict, kept: bool) -> dict:
        """Keep a what-worked record of one tried action; returns its summary for the history."""
        ab, aa = _aspects(before), _aspects(after)
        rec = {
            "run": self.run_id,
            "pass": pass_index,
            "action": action,
            "deltas": {k: _r(v) for k, v in deltas.items()},
            "before": _r(before.overall),
            "after": _r(after.overall),
            "gain": _r(after.overall - before.overall),
            "aspects_gain": {k: _r(aa[k] - ab[k]) for k in ab},
            "kept": kept,
        }
        self.records.append(rec)
        return {k: rec[k] for k in ("action", "before", "after", "gain", "kept")}

    def result(self) -> RefineResult:
        return RefineResult(
            self.best_img, float(self.best_score), self.best_pass, self.stop, self.history, float(self.epsilon), self.records
        )


def start_state(
    image: np.ndarray,
    references: Sequence[Reference],
    mask: np.ndarray | None,
    settings: RefineSettings,
    engine: MamdaniEngine,
    store: WhatWorkedStore | None,
) -> RefineState:
    """Measure the input (pass 0) and set up the run."""
    rgb = as_rgb(image, min_side=8)
    m = as_mask(mask, rgb.shape[:2])
    cache = ReferenceCache()
    region_mask = None if mask is None else m
    report = _measure(rgb, references, region_mask, cache)
    state = RefineState(
        references,
        settings,
        engine,
        m,
        region_mask,
        cache,
        _run_id(references, settings, rgb),
        store.order(list(CORRECTIONS)) if store else list(CORRECTIONS),
        rgb,
        report,
        epsilon=settings.epsilon,
    )
    state.history.append(
        {
            "pass": 0,
            "seed": None,
            "score": _r(report.overall),
            "best_so_far": _r(report.overall),
            "aspects": _aspects(report),
            "deltas": {k: _r(v) for k, v in _deltas(report).items()},
            "adjustments": {},
            "actions": [],
            "kept": "input",
        }
    )
    return state


def damp(state: RefineState, deltas: dict[str, float]) -> None:
    """A channel whose delta changed sign since the last pass is corrected half as hard from now on."""
    prev, state.prev_start = state.prev_start, deltas
    for c in state.damping:
        now = deltas.get(c, 0.0)
        if prev is not None and abs(now) > DELTA_SPECS[c].jnd and np.sign(now) == -np.sign(prev.get(c, 0.0)) != 0:
            state.damping[c] *= 0.5


def cheap_corrections(
    state: RefineState, p: int, outcome: PassOutcome, deltas: dict[str, float], out: dict[str, float]
) -> dict[str, float]:
    """Try each in-mask tone/colour correction in turn, keeping those that raise the score;
    returns the deltas of what is kept."""
    for action in state.cheap_order:
        strengths = {c: float(np.clip(out.get(o, 0.0) * state.gain, 0.0, 1.0)) * state.damping[c] for c, o in CORRECTIONS[action].items()}
        trial = correct_region(outcome.image, state.region_mask, deltas, strengths)
        trial_report = state.measure(trial)
        kept = trial_report.overall > outcome.report.overall
        outcome.tried = trial_report
        outcome.actions.append(
            state.record(p, action, outcome.report, trial_report, deltas, kept) | {"strengths": {k: _r(v) for k, v in strengths.items()}}
        )
        if kept:
            outcome.image, outcome.report = trial, trial_report
            deltas = _deltas(outcome.report)
    return deltas


def regenerate_region(
    state: RefineState, p: int, outcome: PassOutcome, deltas: dict[str, float], inference: Inference, regenerate: Regenerator
) -> None:
    """Regenerate the region with the rules' sampler settings; keep it if it scores higher.

    The first regeneration also samples a second seed: the seed-to-seed spread of the score is
    the least gain convergence counts as progress (never claim what a different seed gives)."""
    out, gain = inference.outputs, state.gain
    seed = state.settings.seed + p
    params = RegenParams(
        seed=seed,
        denoise=float(np.clip(out.get("denoise", DEFAULT_DENOISE) * gain, 0.05, 1.0)),
        cfg_delta=out.get("cfg_delta", 0.0) * gain,
        steps_factor=out.get("steps_factor", 1.0),
        prompt_terms=tuple(inference.prompt_terms(state.engine.rulebase)),
        pass_index=p,
    )
    regen = _regenerated(regenerate, outcome.image, state.mask, params)
    regen_report = state.measure(regen)
    if state.spread is None:
        alt = RegenParams(**{**params.__dict__, "seed": seed + SPREAD_SEED_OFFSET})
        alt_img = _regenerated(regenerate, outcome.image, state.mask, alt)
        alt_report = state.measure(alt_img)
        state.spread = abs(alt_report.overall - regen_report.overall)
        state.epsilon = max(state.settings.epsilon, state.spread)
        if alt_report.overall > regen_report.overall:
            regen, regen_report, seed, params = alt_img, alt_report, alt.seed, alt
    kept = regen_report.overall > outcome.report.overall
    outcome.tried, outcome.seed = regen_report, seed
    outcome.actions.append(state.record(p, "regenerate", outcome.report, regen_report, deltas, kept) | {"params": params.to_dict()})
    if kept:
        outcome.image, outcome.report = regen, regen_report


def run_pass(state: RefineState, p: int, regenerate: Regenerator | None) -> PassOutcome:
    """One pass from the best image so far: fuzzy adjustments, cheap corrections, then a
    regeneration when the target is still missed. May raise :class:`RefineInterrupted`."""
    deltas = _deltas(state.best_report)
    inference = state.engine.infer(deltas)
    damp(state, deltas)
    outcome = PassOutcome(state.best_img, state.best_report, state.best_report, {k: _r(v) for k, v in inference.outputs.items()})
    deltas = cheap_corrections(state, p, outcome, deltas, inference.outputs)
    if regenerate is not None and outcome.report.overall < state.settings.target:
        regenerate_region(state, p, outcome, deltas, inference, regenerate)
    return outcome


def keep_best(state: RefineState, p: int, outcome: PassOutcome) -> None:
    """Adopt the pass if it beat the best so far, count progress, and write its history entry."""
    improved = outcome.report.overall - state.best_score
    if improved > 0:
        state.best_img, state.best_report, state.best_pass = outcome.image, outcome.report, p
    state.since_progress = 0 if improved >= state.epsilon else state.since_progress + 1
    state.history.append(
        {
            "pass": p,
            "seed": outcome.seed,
            "score": _r(outcome.report.overall),
            "best_so_far": _r(state.best_score),
            "aspects": _aspects(outcome.report),
            "deltas": {k: _r(v) for k, v in _deltas(outcome.report).items()},
            "adjustments": outcome.adjustments,
            "actions": outcome.actions,
            "kept": "pass" if improved > 0 else "best",
            "tried_deltas": {c: _r(_deltas(outcome.tried).get(c, 0.0)) for c in state.damping},
        }
    )


def stop_reason(state: RefineState) -> str | None:
    """Why the loop stops after this pass, or None to go on."""
    if state.best_score >= state.settings.target:
        return "target"
    if state.since_progress >= state.settings.patience:
        return "oscillating" if _swinging(state.history[-max(state.settings.patience, 3) :], state.damping) else "converged"
    return None


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
    state = start_state(image, references, mask, settings, engine, store)
    for p in range(1, settings.max_passes + 1):
        try:
            if check_interrupt:
                check_interrupt()
            if state.best_score >= settings.target:
                state.stop = "target"
                break
            outcome = run_pass(state, p, regenerate)
        except RefineInterrupted:
            state.stop = "interrupted"
            break
        keep_best(state, p, outcome)
        if progress:
            progress(p, settings.max_passes)
        reason = stop_reason(state)
        if reason:
            state.stop = reason
            break
    if store is not None and state.records:
        store.append(state.records)
    return state.result()
