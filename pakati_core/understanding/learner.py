"""The learning loop: hide parts of a reference, have the model bring them back, score it honestly.

For every strategy x level, the same view is given to the reconstructor under several seeds
and to the classical baselines. A level is *mastered* only when at least two seeds reach the
threshold composite (0.85) *and* beat the better classical baseline on the same view.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from ..errors import PakatiError
from ..finite import NAN_HINT, require_finite
from ..images import image_hash
from . import baselines
from .masking import MaskedView, check_image, get_strategy
from .scores import score

MASTERY_THRESHOLD = 0.85
MIN_SEEDS = 2
FORMAT_VERSION = 1


class LearningError(PakatiError):
    """Settings the learning loop cannot run with."""


class Reconstructor(Protocol):
    """What the host adapts its model to. Images are float H x W x 3 in [0, 1]."""

    def inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray: ...

    def img2img(self, image: np.ndarray, denoise: float, prompt: str, seed: int) -> np.ndarray: ...


@dataclass
class LearnSettings:
    description: str = ""
    strategies: Sequence[str] = ()
    levels: int = 2
    attempts: int = 2
    seed: int = 0
    threshold: float = MASTERY_THRESHOLD
    params: dict = field(default_factory=dict)  # sampler settings, recorded with the result

    def fingerprint(self) -> str:
        """Identifies the settings a stored understanding was learned with."""
        text = repr(
            (self.description, tuple(self.strategies), self.levels, self.attempts, self.seed, self.threshold, sorted(self.params.items()))
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _round(d: dict) -> dict:
    return {k: (None if v is None else round(float(v), 4)) for k, v in d.items()}


def level_result(view: MaskedView, attempts: list[dict], classical: dict[str, dict], threshold: float) -> dict:
    """Scores of one view, the baselines beside them, and the mastery verdict with its reasons."""
    comps = [a["scores"]["composite"] for a in attempts]
    best_name = max(classical, key=lambda k: classical[k]["composite"])
    bar = classical[best_name]["composite"]
    passing = [c for c in comps if c >= threshold and c > bar]
    mastered = len(passing) >= MIN_SEEDS
    best = max(comps)
    reasons = []
    if len(comps) < MIN_SEEDS:
        reasons.append(f"only {len(comps)} attempt(s): mastery needs at least {MIN_SEEDS} seeds")
    n_thr = sum(c >= threshold for c in comps)
    if n_thr < MIN_SEEDS:
        reasons.append(
            f"{n_thr} of {len(comps)} seeds reach {threshold}; the best composite {best:.3f} is {max(threshold - best, 0.0):.3f} short"
        )
    n_bar = sum(c > bar for c in comps)
    if n_bar < MIN_SEEDS:
        gap = f"{bar - best:.3f} ahead of" if bar >= best else f"{best - bar:.3f} behind"
        reasons.append(
            f"{n_bar} of {len(comps)} seeds beat the better classical baseline ({best_name}, "
            f"{bar:.3f}), which is {gap} the best reconstruction"
        )
    if not mastered and not reasons:
        reasons.append(f"fewer than {MIN_SEEDS} seeds both reach {threshold} and beat {best_name}")
    return {
        "level": view.level,
        "label": view.label,
        "hidden_fraction": round(view.hidden_fraction, 4),
        "attempts": [{"seed": a["seed"], "scores": _round(a["scores"])} for a in attempts],
        "mean": round(float(np.mean(comps)), 4),
        "spread": round(float(np.max(comps) - np.min(comps)), 4),
        "baselines": {k: _round(v) for k, v in classical.items()},
        "best_baseline": best_name,
        "best_baseline_composite": round(bar, 4),
        "margin_over_baseline": round(best - bar, 4),
        "mastered": mastered,
        "shortfall": reasons if not mastered else [],
    }


def reference_statistics(image: np.ndarray) -> dict:
    """Colour / texture / composition statistics of the whole reference (the delta-analysis targets)."""
    from ..delta import image_view, region_features

    f = region_features(image_view(image)[0])
    return {
        "color": {
            "mean_lab": np.round(f.mean_lab, 3).tolist(),
            "std_lab": np.round(f.std_lab, 3).tolist(),
            "mean_chroma": round(float(f.mean_chroma), 3),
        },
        "texture": {
            "sharpness": round(float(f.sharpness), 4),
            "glcm": {k: round(float(v), 4) for k, v in f.glcm.items()},
            "lbp_hist": np.round(f.lbp_hist, 4).tolist(),
        },
        "composition": {
            "energy_centroid": [round(float(v), 4) for v in f.energy_centroid],
            "energy_grid": np.round(f.energy_grid, 4).tolist(),
        },
    }


def learn(
    reference: np.ndarray,
    reconstructor: Reconstructor,
    settings: LearnSettings,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
    on_view: Callable[[MaskedView, np.ndarray], None] | None = None,
) -> dict:
    """Run strategies x levels x attempts and return the understanding record (JSON-ready)."""
    img = check_image(reference)
    if settings.levels < 1 or settings.attempts < 1:
        raise LearningError("levels and attempts must be at least 1", "levels" if settings.levels < 1 else "attempts")
    if not settings.strategies:
        raise LearningError("no strategy selected", "strategies")
    plan = []
    for name in settings.strategies:
        strategy = get_strategy(name)
        plan += [(strategy, lv) for lv in range(min(settings.levels, len(strategy.levels)))]
    total, done = len(plan) * settings.attempts, 0
    per_strategy: dict[str, dict] = {}
    best_overall: dict | None = None
    for strategy, lv in plan:
        if check_interrupt:
            check_interrupt()
        view = strategy.view(img, lv, settings.seed)
        # baselines are pasted exactly like the model's output, so both are judged on the same pixels
        classical = {k: score(img, np.where(view.hidden[..., None], rec, img), view.hidden) for k, rec in baselines.classical(view).items()}
        attempts, best_rec = [], None
        for a in range(settings.attempts):
            if check_interrupt:
                check_interrupt()
            seed = settings.seed + a
            if view.kind == "img2img":
                out = reconstructor.img2img(view.view, view.denoise, settings.description, seed)
            else:
                out = reconstructor.inpaint(view.view, view.hidden, settings.description, seed)
            out = np.asarray(out, np.float32)[..., :3]
            if out.shape != img.shape:
                raise LearningError(f"the reconstructor returned {out.shape}, expected {img.shape}", "reconstructor")
            require_finite(out, f"the reconstruction ({strategy.name}, level {lv}, seed {seed})", "reconstructor", NAN_HINT)
            rec = np.where(view.hidden[..., None], np.clip(out, 0, 1), img)
            s = score(img, rec, view.hidden)
            attempts.append({"seed": seed, "scores": s})
            if best_rec is None or s["composite"] > best_rec[0]:
                best_rec = (s["composite"], rec, seed)
            if best_overall is None or s["composite"] > best_overall["composite"]:
                best_overall = {
                    "composite": round(s["composite"], 4),
                    "strategy": strategy.name,
                    "level": lv,
                    "seed": seed,
                    "prompt": settings.description,
                    "denoise": view.denoise if view.kind == "img2img" else 1.0,
                }
            done += 1
            if progress:
                progress(done, total)
        if on_view:
            on_view(view, best_rec[1])
        entry = per_strategy.setdefault(strategy.name, {"kind": strategy.kind, "levels": []})
        entry["levels"].append(level_result(view, attempts, classical, settings.threshold))
    for name, entry in per_strategy.items():
        levels = entry["levels"]
        entry["mastered"] = all(lvl["mastered"] for lvl in levels)
        entry["highest_mastered_level"] = max((lvl["level"] for lvl in levels if lvl["mastered"]), default=None)
        entry["best_composite"] = max(a["scores"]["composite"] for lvl in levels for a in lvl["attempts"])
        entry["best_baseline_composite"] = max(lvl["best_baseline_composite"] for lvl in levels)
    mastered = all(e["mastered"] for e in per_strategy.values())
    short = {
        n: [f"level {lvl['level']} ({lvl['label']}): " + "; ".join(lvl["shortfall"]) for lvl in e["levels"] if not lvl["mastered"]]
        for n, e in per_strategy.items()
        if not e["mastered"]
    }
    return {
        "format": "pakati.understanding",
        "version": FORMAT_VERSION,
        "image_hash": image_hash(img),
        "size": [img.shape[1], img.shape[0]],
        "settings": {
            "description": settings.description,
            "strategies": list(settings.strategies),
            "levels": settings.levels,
            "attempts": settings.attempts,
            "seed": settings.seed,
            "threshold": settings.threshold,
            "params": dict(settings.params),
            "fingerprint": settings.fingerprint(),
        },
        "mastered": mastered,
        "summary": ("mastered every strategy" if mastered else f"not mastered: {len(short)} of {len(per_strategy)} strategies fall short"),
        "shortfalls": short,
        "strategies": per_strategy,
        "best": best_overall,
        "statistics": reference_statistics(img),
    }
