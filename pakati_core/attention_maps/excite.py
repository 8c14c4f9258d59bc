"""Attend-and-Excite, region-aware: nudge the latent until every subject is attended where it belongs.

Attend-and-Excite (Chefer et al., SIGGRAPH 2023) finds that a prompt's subject is left out of
an image when no latent pixel attends strongly to its token. During the first steps it moves
the latent ``z_t`` by gradient descent on ``max over subjects of (1 - max attention)`` before
the model call that the sampler uses, with the attention maps of the low-resolution layers,
renormalised over the prompt's words (×100, softmax, start and padding tokens left out) and
Gaussian-smoothed; at chosen steps it iterates until every subject reaches a threshold.

Here a subject (``ExciteTarget``) is a word of some context: the base prompt (the whole image,
plain Attend-and-Excite) or one region's prompt, whose tokens Pakati's regional attention
attends in their own softmax at the positions the region covers. A region's subject counts
only inside the region's mask, so the loss is the worst region's shortfall there:
``max over targets of (1 - in-mask max (or mean) of its smoothed map)``.

The host adapters (the ComfyUI patch, the diffusers backend) run the model on ``x`` and hand
each cross-attention call's projected queries and keys to ``ExciteMaps.add``; this module
does the maps, the loss and the update (``excite_latent``). Pure torch.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Callable, Hashable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from ..errors import AttentionMapError
from .recorder import token_probabilities

REDUCES = ("max", "mean")


@dataclass(frozen=True)
class ExciteSettings:
    """How hard and how long to excite.

    ``scale``: step size in the model-input latent space (Attend-and-Excite uses 20, decayed
    to ``scale * sqrt(0.5)`` over the schedule); ``steps``: the first sampler steps that are
    excited; ``iterations``: gradient updates at most per excited step (fewer once every
    subject reaches ``threshold``); ``reduce``: 'max' or 'mean' of a subject's map inside its
    mask; ``sharpen``: the renormalisation factor over the prompt's words (0: raw
    probabilities); ``smooth``: sigma of the 3x3 Gaussian on the maps (0: none).
    """

    scale: float = 20.0
    steps: int = 10
    iterations: int = 3
    threshold: float = 0.8
    reduce: str = "max"
    sharpen: float = 100.0
    smooth: float = 0.5

    def __post_init__(self) -> None:
        if self.reduce not in REDUCES:
            raise AttentionMapError(f"unknown reduce {self.reduce!r}; use one of {', '.join(REDUCES)}", "reduce")
        for name, value, low in (
            ("scale", self.scale, 0.0),
            ("steps", self.steps, 0),
            ("iterations", self.iterations, 1),
            ("sharpen", self.sharpen, 0.0),
            ("smooth", self.smooth, 0.0),
        ):
            if not (math.isfinite(value) and value >= low):
                raise AttentionMapError(f"{value} is not a finite number >= {low}", name)
        if not 0.0 <= self.threshold <= 1.0:
            raise AttentionMapError(f"{self.threshold} is outside [0, 1]", "threshold")

    def step_size(self, step: int, total: int) -> float:
        """Attend-and-Excite's schedule: ``scale * sqrt(r)``, r going linearly from 1 to 0.5 over the run."""
        r = 1.0 - 0.5 * step / max(total - 1, 1)
        return self.scale * math.sqrt(r)


@dataclass(frozen=True)
class ExciteTarget:
    """One subject: its token positions in its context and the prompt's word tokens there.

    ``region`` is the index of the region whose prompt and mask it belongs to, ``None`` for a
    word of the base prompt (excited over the whole image). ``text_positions`` are the
    context positions of the prompt's real tokens (no start, end or padding): the set the
    attention is renormalised over; ``positions`` must lie in it.
    """

    name: str
    positions: tuple[int, ...]
    text_positions: tuple[int, ...]
    region: int | None = None

    def __post_init__(self) -> None:
        if not self.positions:
            raise AttentionMapError(f"subject '{self.name}' has no token positions", "subjects")
        missing = sorted(set(self.positions) - set(self.text_positions))
        if missing:
            raise AttentionMapError(f"subject '{self.name}' sits at positions {missing} that are not word tokens of its prompt", "subjects")

    @property
    def columns(self) -> list[int]:
        index = {p: i for i, p in enumerate(self.text_positions)}
        return [index[p] for p in self.positions]


class PassComplete(Exception):
    """Raised by an adapter after the last layer the maps need: the rest of the UNet is not run."""


def gaussian_smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """``[B, h, w]`` maps convolved with a normalised 3x3 Gaussian (Attend-and-Excite's smoothing)."""
    if sigma <= 0:
        return maps
    ax = torch.tensor([-1.0, 0.0, 1.0], device=maps.device, dtype=maps.dtype)
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    kernel = (g[:, None] * g[None, :]) / (g.sum() ** 2)
    h, w = maps.shape[-2:]
    mode = "reflect" if h > 1 and w > 1 else "replicate"
    padded = F.pad(maps[:, None], (1, 1, 1, 1), mode=mode)
    return F.conv2d(padded, kernel[None, None])[:, 0]


def in_mask(maps: torch.Tensor, coverage: torch.Tensor | None, reduce: str) -> torch.Tensor:
    """``[B]``: each map's max (cells at least half covered) or coverage-weighted mean inside ``coverage`` ``[h*w]``.

    No coverage (``None``) means the whole image. A region that covers no cell at this grid
    gives 1 (nothing to excite there).
    """
    flat = maps.reshape(maps.shape[0], -1)
    if coverage is None:
        return flat.amax(1) if reduce == "max" else flat.mean(1)
    cov = coverage.to(device=flat.device, dtype=flat.dtype).reshape(-1)
    if float(cov.max()) <= 0.0:
        return flat.new_ones(flat.shape[0])
    if reduce == "mean":
        return (flat * cov).sum(1) / cov.sum()
    cells = cov >= min(0.5, float(cov.max()))
    return flat[:, cells].amax(1)


class ExciteMaps:
    """One model pass's attention for every target, layer by layer, turned into smoothed subject maps.

    ``add`` takes a cross-attention call's projected queries ``[rows, Q, heads*d]`` (conditional
    rows only, ``chunks`` equal blocks of the batch) and, per target, the keys of its context
    ``[rows or 1, T, heads*d]``. Gradients flow through the queries.
    """

    def __init__(self, targets: Sequence[ExciteTarget]):
        if not targets:
            raise AttentionMapError("nothing to excite: give at least one subject", "subjects")
        self.targets = list(targets)
        self._layers: dict[Hashable, tuple[tuple[int, int], list[torch.Tensor]]] = {}

    def __len__(self) -> int:
        return len(self._layers)

    def add(
        self, layer: Hashable, grid_hw: tuple[int, int], q: torch.Tensor, keys: Sequence[torch.Tensor], heads: int, chunks: int = 1
    ) -> None:
        if len(keys) != len(self.targets):
            raise AttentionMapError(f"{len(keys)} key tensors for {len(self.targets)} subjects", "subjects")
        probs = []
        for target, k in zip(self.targets, keys):
            if max(target.text_positions) >= k.shape[1]:
                raise AttentionMapError(
                    f"subject '{target.name}' sits at context position {max(target.text_positions)} but its context "
                    f"has {k.shape[1]} tokens: give the prompt exactly as encoded",
                    "text",
                )
            if k.shape[0] != q.shape[0]:
                k = k.expand(q.shape[0], -1, -1)
            p = token_probabilities(q, k, heads, target.text_positions)  # [rows, Q, T']
            probs.append(p.reshape(chunks, -1, p.shape[1], p.shape[2]).mean(0))
        if layer in self._layers:  # a layer called twice in one pass (several cond batches): average
            grid, prev = self._layers[layer]
            probs = [(a + b) / 2 for a, b in zip(prev, probs)]
        self._layers[layer] = (grid_hw, probs)

    def subject_maps(self, sharpen: float, smooth: float) -> tuple[tuple[int, int], list[torch.Tensor]]:
        """The common (coarsest) grid and, per target, ``[B, h, w]``: layers averaged at that grid,
        renormalised over the prompt's words (``softmax(sharpen * p)``), the subject's tokens summed, smoothed."""
        if not self._layers:
            raise AttentionMapError("the model pass reached no selected cross-attention layer", "blocks")
        grid = min((g for g, _ in self._layers.values()), key=lambda g: g[0] * g[1])
        out = []
        for t, target in enumerate(self.targets):
            total = None
            for (h, w), probs in self._layers.values():
                p = probs[t]  # [B, h*w, T']
                b, _, n = p.shape
                m = p.transpose(1, 2).reshape(b, n, h, w)
                if (h, w) != grid:
                    m = F.adaptive_avg_pool2d(m, grid)
                total = m if total is None else total + m
            mean = total / len(self._layers)
            if sharpen > 0:
                mean = torch.softmax(mean * sharpen, dim=1)
            subject = mean[:, target.columns].sum(1)
            out.append(gaussian_smooth(subject, smooth))
        return grid, out

    def values(self, settings: ExciteSettings, coverage: Callable[[int, tuple[int, int]], torch.Tensor | None]) -> torch.Tensor:
        """``[targets, B]``: each subject's in-mask attention; ``coverage(region, grid)`` gives a region's ``[h*w]`` mask."""
        grid, maps = self.subject_maps(settings.sharpen, settings.smooth)
        vals = [in_mask(m, None if t.region is None else coverage(t.region, grid), settings.reduce) for t, m in zip(self.targets, maps)]
        return torch.stack(vals)


def excite_loss(values: torch.Tensor) -> torch.Tensor:
    """``[B]``: the worst subject's shortfall, ``max over targets of (1 - value)``."""
    return (1.0 - values).amax(0)


class _NormalTensors(TorchFunctionMode):
    """Autograd may not save inference tensors (ComfyUI loads weights under ``torch.inference_mode``):
    while gradients are on, every inference tensor an op reads is replaced by a normal clone.
    The tensor an in-place op writes to is never swapped (the write must land)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if torch.is_grad_enabled():
            swap = lambda t: t.clone() if isinstance(t, torch.Tensor) and t.is_inference() else t  # noqa: E731
            name = getattr(func, "__name__", "")
            if name.endswith("_") and not name.endswith("__") and args:
                args = (args[0], *tree_map(swap, tuple(args[1:])))
            else:
                args = tree_map(swap, tuple(args))
            kwargs = tree_map(swap, kwargs)
        return func(*args, **kwargs)


@contextmanager
def gradients_on() -> Iterator[None]:
    """Gradients inside a host that runs under ``torch.inference_mode`` (ComfyUI's executor):
    normal mode, grad enabled, inference tensors read through normal clones."""
    with ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        stack.enter_context(_NormalTensors())
        yield


@dataclass
class ExciteResult:
    x: torch.Tensor  # the nudged latent (sampler space); the input itself when nothing was updated
    values: list[torch.Tensor]  # [targets, B] in-mask attention before each update (and the last check)
    updates: int


def excite_latent(
    x: torch.Tensor,
    c_in: torch.Tensor,
    run_pass: Callable[[torch.Tensor], torch.Tensor],
    settings: ExciteSettings,
    step: int,
    total: int,
    check: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExciteResult:
    """One excited step: up to ``settings.iterations`` gradient updates of ``x``.

    ``run_pass(x)`` runs the model on a latent and returns ``ExciteMaps.values`` ``[targets, B]``
    (graph-connected to its input). The update is Attend-and-Excite's, taken in the model's
    input space ``c_in * x``: ``x_in -= step_size * grad(loss)``. An image stops moving once
    all its subjects reach ``settings.threshold``; with no update at all ``x`` is returned as it
    is (bit-identical sampling). ``check`` is called before every pass
    (interrupts); ``progress(done, of)`` after it.
    """
    alpha = settings.step_size(step, total)
    history: list[torch.Tensor] = []
    updates = 0
    with gradients_on():
        c = c_in.clone().to(torch.float32)
        xc = x.detach().clone().to(torch.float32) * c
        for i in range(settings.iterations):
            if check is not None:
                check()
            xv = xc.detach().requires_grad_(True)
            values = run_pass((xv / c).to(x.dtype))
            history.append(values.detach().float().cpu())
            active = values.detach().amin(0) < settings.threshold
            if progress is not None:
                progress(i + 1, settings.iterations)
            if not bool(active.any()):
                break
            loss = excite_loss(values)
            (grad,) = torch.autograd.grad(loss[active].sum(), xv)
            if not bool(torch.isfinite(grad).all()):
                raise AttentionMapError(
                    "the gradient of the excite loss has NaN/infinite values (the model overflows in this "
                    "precision): lower the scale or run the model in fp32",
                    "scale",
                )
            xc = xc.detach() - alpha * grad
            updates += 1
        out = (xc / c).to(x.dtype).detach() if updates else x
    return ExciteResult(out, history, updates)
