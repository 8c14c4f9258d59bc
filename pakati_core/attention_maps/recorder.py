"""Recording cross-attention probabilities of chosen words during sampling.

At a cross-attention layer each query position (a latent pixel of that layer's grid) has a
probability distribution over the context tokens: softmax(q kᵀ / √d) per head. A word's map
is, per position, the probability mass on all its sub-tokens, averaged over heads. Each layer
keeps its own running mean at its own grid; a word's map is the mean over layers after
resizing each layer's map by area to one grid (the latent's).

The probabilities are computed beside the layer's real attention (which stays untouched),
in float32, only for the rows being recorded. Pure torch.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import torch
import torch.nn.functional as F

from ..errors import AttentionMapError


def token_probabilities(q: torch.Tensor, k: torch.Tensor, heads: int, positions: Sequence[int]) -> torch.Tensor:
    """Head-averaged attention probabilities of context ``positions``: ``[B, Q, len(positions)]``.

    q: ``[B, Q, heads*d]``, k: ``[B, T, heads*d]`` (projected). Softmax over all T tokens in float32.
    """
    b, nq, hd = q.shape
    d = hd // heads
    qh = q.float().reshape(b, nq, heads, d).transpose(1, 2)
    kh = k.float().reshape(b, k.shape[1], heads, d).transpose(1, 2)
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * (d**-0.5)
    idx = torch.as_tensor(list(positions), device=q.device, dtype=torch.long)
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    return torch.exp(scores.index_select(-1, idx) - lse).mean(dim=1)


class AttentionRecorder:
    """Running per-layer means of each watched word's attention map, over the calls of one sampling run.

    ``words``: names; ``positions``: each word's context positions. ``record`` is called by the
    attention patch for the conditional rows of every recorded layer call; ``reset`` starts a run.
    """

    def __init__(self, words: Sequence[str], positions: Sequence[Sequence[int]]):
        if len(words) != len(positions) or not words:
            raise AttentionMapError("need one position list per word and at least one word", "words")
        self.words = list(words)
        self.positions = [list(p) for p in positions]
        self._all = sorted({i for p in self.positions for i in p})
        self._cols = [[self._all.index(i) for i in p] for p in self.positions]
        self.runs_finished = 0
        self.reset()

    def reset(self) -> None:
        self._sums: dict[Hashable, torch.Tensor] = {}
        self._counts: dict[Hashable, int] = {}
        self._grids: dict[Hashable, tuple[int, int]] = {}
        self.latent_hw: tuple[int, int] | None = None
        self.recording = False

    def begin_run(self) -> None:
        self.reset()
        self.recording = True

    def end_run(self) -> None:
        self.recording = False
        self.runs_finished += 1

    def word_index(self, word: str) -> int:
        key = word.strip().lower()
        for i, w in enumerate(self.words):
            if w.lower() == key:
                return i
        raise AttentionMapError(f"'{word}' was not captured; the capture watches {', '.join(repr(w) for w in self.words)}", "word")

    def record(
        self,
        layer: Hashable,
        q: torch.Tensor,
        k: torch.Tensor,
        heads: int,
        chunks: int,
        grid_hw: tuple[int, int],
        latent_hw: tuple[int, int],
    ) -> None:
        """Add one call's maps: q, k hold ``chunks`` equal row blocks (conditional rows, one block per cond entry)."""
        if max(self._all) >= k.shape[1]:
            raise AttentionMapError(
                f"the watched words sit at context positions up to {max(self._all)} but the sampler's conditioning has "
                f"{k.shape[1]} tokens: capture with the prompt that the sampler's positive input encodes",
                "text",
            )
        with torch.no_grad():
            p = token_probabilities(q.detach(), k.detach(), heads, self._all)  # [rows, Q, P]
            p = p.reshape(chunks, -1, p.shape[1], p.shape[2]).mean(0)
            maps = torch.stack([p[..., cols].sum(-1) for cols in self._cols])  # [W, B, Q]
        if self.latent_hw is not None and self.latent_hw != latent_hw:
            self.reset()  # a new latent size means a new run (sampler not wrapped, e.g. a bare model call)
            self.recording = True
        self.latent_hw = latent_hw
        if layer in self._sums and self._sums[layer].shape != maps.shape:
            raise AttentionMapError(
                f"layer {layer} was called with {maps.shape[1]} images after {self._sums[layer].shape[1]} in one run", "model"
            )
        if layer in self._sums:
            self._sums[layer] += maps
            self._counts[layer] += 1
        else:
            self._sums[layer], self._counts[layer], self._grids[layer] = maps.clone(), 1, grid_hw

    @property
    def layers(self) -> list[Hashable]:
        return list(self._sums)

    def layer_map(self, layer: Hashable) -> torch.Tensor:
        """``[W, B, h, w]``: one layer's mean map at its own grid."""
        h, w = self._grids[layer]
        m = self._sums[layer] / self._counts[layer]
        return m.reshape(m.shape[0], m.shape[1], h, w)

    def maps(self, grid_hw: tuple[int, int] | None = None) -> torch.Tensor:
        """``[W, B, H, W]`` float32 on the CPU: every layer's map resized by area to one grid, averaged."""
        if not self._sums:
            raise AttentionMapError(
                "nothing was recorded: run a sampler with the captured model (and a step range "
                "and blocks that include at least one cross-attention call) before reading the map",
                "capture",
            )
        grid = grid_hw or self.latent_hw
        total = None
        for layer in self._sums:
            m = self.layer_map(layer).float().cpu()
            w, b, h, wd = m.shape
            r = F.adaptive_avg_pool2d(m.reshape(w * b, 1, h, wd), grid).reshape(w, b, *grid)
            total = r if total is None else total + r
        return total / len(self._sums)

    def word_map(self, word: str, grid_hw: tuple[int, int] | None = None) -> torch.Tensor:
        """``[B, H, W]``: the averaged map of one watched word."""
        return self.maps(grid_hw)[self.word_index(word)]
