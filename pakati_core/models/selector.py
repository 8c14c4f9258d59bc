"""Pick a model for a task from its configured capabilities and the recorded success of past calls, and say why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from .credentials import has_key
from .errors import NoModelError
from .protocols import CallRecord
from .registry import KINDS, ModelSpec, Registry, default_registry


@dataclass(frozen=True)
class ModelNeeds:
    """What the model must do: ``kind`` in image/vision/text, and the needs that rule models out."""

    kind: str
    size: tuple[int, int] | None = None
    inpainting: bool = False
    regional: bool = False
    quality: str | None = None
    max_cost_usd: float | None = None
    provider: str | None = None


@dataclass
class Selection:
    spec: ModelSpec
    reason: str
    ranked: list[tuple[str, float]] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)

    def explain(self) -> str:
        lines = [f"chose {self.spec.provider}:{self.spec.name}: {self.reason}"]
        lines += [f"  not {name}: {why}" for name, why in self.rejected.items()]
        return "\n".join(lines)


def success_stats(records: Iterable[CallRecord]) -> dict[str, tuple[int, int]]:
    """``{model: (successful calls, calls)}`` from call records."""
    stats: dict[str, list[int]] = {}
    for r in records:
        s = stats.setdefault(r.model, [0, 0])
        s[0] += int(bool(r.ok))
        s[1] += 1
    return {k: (v[0], v[1]) for k, v in stats.items()}


def select_model(
    task: ModelNeeds, registry: Registry | None = None, records: Iterable[CallRecord] = (), key_available: Callable[[str], bool] = has_key
) -> Selection:
    """The best model for ``task``: capable, not retired, with a key; ranked by recorded success, then current
    before legacy, then cost.

    Success is the smoothed rate ``(ok + 1) / (calls + 2)``, so an untried model starts at 0.5
    and a model that keeps failing sinks below one that works.
    """
    if task.kind not in KINDS:
        raise NoModelError(f"unknown task kind {task.kind!r}; expected one of {', '.join(KINDS)}", field="kind")
    reg = registry or default_registry()
    stats = success_stats(records)
    rejected: dict[str, str] = {}
    keys: dict[str, bool] = {}
    scored: list[tuple[float, float, ModelSpec, str]] = []  # (rate, cost, spec, notes)
    for spec in reg.models.values():
        if task.kind not in spec.kinds:
            continue
        why = None
        if spec.retired:
            why = "retired" + (f" (use {spec.replacement})" if spec.replacement else "")
        elif task.provider and spec.provider != task.provider:
            why = f"provider {spec.provider}, not {task.provider}"
        elif task.inpainting and not spec.inpainting:
            why = "cannot edit with a mask"
        elif task.regional and not spec.regional:
            why = "no regional prompting"
        elif task.max_cost_usd is not None and (spec.cost(task.quality) or 0.0) > task.max_cost_usd:
            why = f"estimated ${spec.cost(task.quality):.3f} per call is over the ${task.max_cost_usd:.3f} budget"
        else:
            if spec.provider not in keys:
                keys[spec.provider] = key_available(spec.provider)
            if not keys[spec.provider]:
                why = f"no key configured for {spec.provider}"
        if why:
            rejected[spec.name] = why
            continue
        ok, n = stats.get(spec.name, (0, 0))
        rate = (ok + 1) / (n + 2)
        notes = [f"success {ok}/{n} recorded calls" if n else "no recorded calls yet"]
        cost = spec.cost(task.quality)
        if cost is not None:
            notes.append(f"est ${cost:.3f} per call")
        if task.size and max(task.size) > spec.max_side:
            notes.append(f"{task.size[0]}x{task.size[1]} exceeds its {spec.max_side}px side, so it is resized")
            rate -= 0.05
        if spec.inpainting and task.inpainting:
            notes.insert(0, "edits with a mask")
        if spec.legacy:
            notes.append("legacy (still served; the provider has a newer model)")
        if spec.note:
            notes.append(spec.note)
        scored.append((rate, cost if cost is not None else float("inf"), spec, ", ".join(notes)))
    if not scored:
        detail = "; ".join(f"{k}: {v}" for k, v in rejected.items()) or "none configured"
        raise NoModelError(f"no configured model can do this {task.kind} task ({detail})", field="model")
    scored.sort(key=lambda t: (-t[0], t[2].legacy, t[1], t[2].name))
    rate, _, spec, notes = scored[0]
    return Selection(spec, f"{notes}; score {rate:.2f}", [(s.name, round(r, 4)) for r, _, s, _ in scored], rejected)
