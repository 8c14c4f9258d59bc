"""Gathered regional attention: a region costs the positions it covers, not the whole layer.

A ``GatherPlan`` is built once per (row kind, latent size, layer grid, device, dtype) from the
normalised blend weights ``[S, Q]`` (row 0 the base prompt, rows 1.. the token segments of the
extra context). It holds, for every segment, the positions where its weight is non-zero and
the weights there; segments with the same token count are stacked into one fused SDPA call
when padding them to a common length wastes little. Attention then gathers each segment's
covered queries, attends to its own tokens and scatters the weighted result back, so the
work grows with covered area; the base prompt's attention is needed only where its weight
is non-zero, and is left untouched (weight 1) outside every region.

Pure torch, shared by the ComfyUI patch and the diffusers processor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PAD_WASTE = 1.3  # fuse a group when its padded length is at most this times its real length
BASE_SKIP = 1e-5  # below this the base weight is only the guard against an all-zero row: skipped


@dataclass(frozen=True)
class SegmentGroup:
    """Segments with equal token counts attended in one SDPA call (padded to a common length).

    ``spans`` are token ranges of the extra context; ``index``/``local`` are ``[G * L]``
    positions in the layer / in the covered set (padding repeats position 0 with weight 0);
    ``weight`` is ``[G * L, 1]``.
    """

    spans: tuple[tuple[int, int], ...]
    length: int
    index: torch.Tensor
    local: torch.Tensor
    weight: torch.Tensor
    exact: tuple[tuple[int, int], ...]  # per member: (offset into the padded rows, real count)


@dataclass(frozen=True)
class GatherPlan:
    """Where the base prompt and each segment apply at one layer grid, and with what weight."""

    positions: int
    base_weight: torch.Tensor  # [Q, 1]
    base_index: torch.Tensor | None  # positions where the base prompt applies (weight > BASE_SKIP); None = every position
    covered: torch.Tensor | None  # positions some segment covers (base weight < 1); None = every position
    covered_base_weight: torch.Tensor  # [C, 1]
    groups: tuple[SegmentGroup, ...]

    @property
    def covered_count(self) -> int:
        return self.positions if self.covered is None else int(self.covered.numel())


def build_plan(weights: torch.Tensor, spans: list[tuple[int, int]], device: torch.device, dtype: torch.dtype) -> GatherPlan:
    """Index and weight tables for ``weights [1 + len(spans), Q]`` (rows sum to 1)."""
    w = weights.detach().float().cpu()
    q_len = w.shape[1]
    base = w[0]
    regional = w[1:]
    cover = (regional > 0).any(0) if len(regional) else torch.zeros(q_len, dtype=torch.bool)
    covered = torch.nonzero(cover).flatten()
    local_of = torch.full((q_len,), -1, dtype=torch.long)
    local_of[covered] = torch.arange(covered.numel())
    base_pos = torch.nonzero(base > BASE_SKIP).flatten()

    members: dict[int, list[tuple[tuple[int, int], torch.Tensor, torch.Tensor]]] = {}
    for (a, e), row in zip(spans, regional):
        idx = torch.nonzero(row > 0).flatten()
        if idx.numel() == 0 or e <= a:  # empty at this grid: no work at all
            continue
        members.setdefault(e - a, []).append(((a, e), idx, row[idx]))

    groups: list[SegmentGroup] = []
    for _, items in sorted(members.items()):
        items.sort(key=lambda it: -it[1].numel())
        batch: list = []
        for item in items:  # greedy: add while the padded length stays close to the real one
            trial = batch + [item]
            longest = trial[0][1].numel()
            if batch and longest * len(trial) > PAD_WASTE * sum(t[1].numel() for t in trial):
                groups.append(_group(batch, local_of, device, dtype))
                trial = [item]
            batch = trial
        if batch:
            groups.append(_group(batch, local_of, device, dtype))

    full = lambda idx: None if idx.numel() == q_len else idx.to(device)  # noqa: E731
    return GatherPlan(
        positions=q_len,
        base_weight=base[:, None].to(device=device, dtype=dtype),
        base_index=full(base_pos),
        covered=full(covered),
        covered_base_weight=base[covered][:, None].to(device=device, dtype=dtype),
        groups=tuple(groups),
    )


def _group(items, local_of: torch.Tensor, device, dtype) -> SegmentGroup:
    length = items[0][1].numel()
    index = torch.zeros(len(items), length, dtype=torch.long)
    weight = torch.zeros(len(items), length)
    exact = []
    for g, (_, idx, wt) in enumerate(items):
        index[g, : idx.numel()] = idx
        weight[g, : idx.numel()] = wt
        exact.append((g * length, int(idx.numel())))
    flat = index.flatten()
    return SegmentGroup(
        spans=tuple(span for span, _, _ in items),
        length=length,
        index=flat.to(device),
        local=local_of[flat].clamp(min=0).to(device),
        weight=weight.flatten()[:, None].to(device=device, dtype=dtype),
        exact=tuple(exact),
    )


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, hd = t.shape
    return t.view(b, n, heads, hd // heads).transpose(1, 2)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head attention on ``[B, N, heads*d]`` tensors (k, v may have batch 1)."""
    b, n, hd = q.shape
    if k.shape[0] != b:
        k, v = k.expand(b, -1, -1), v.expand(b, -1, -1)
    out = F.scaled_dot_product_attention(_heads(q, heads), _heads(k, heads), _heads(v, heads))
    return out.transpose(1, 2).reshape(b, n, hd)


def add_segments(
    target: torch.Tensor, q: torch.Tensor, k_extra: torch.Tensor, v_extra: torch.Tensor, heads: int, plan: GatherPlan, local: bool
) -> torch.Tensor:
    """``target += sum_j w_j * attention(q_j, segment j)`` at each segment's covered positions.

    ``target`` is ``[B, Q, hd]`` (``local=False``) or ``[B, C, hd]`` over the covered positions
    (``local=True``); ``k_extra``/``v_extra`` are the extra context's projections, ``[1 or B, T, hd]``.
    """
    b, _, hd = q.shape
    d = hd // heads
    deterministic = q.device.type != "cpu"  # index_add_ on GPU adds with atomics: one member per call there
    for grp in plan.groups:
        n = len(grp.spans)
        rows = q.index_select(1, grp.index)  # [B, G*L, hd]
        qh = rows.view(b, n, grp.length, heads, d).permute(1, 0, 3, 2, 4).reshape(n * b, heads, grp.length, d)
        kh = torch.stack([k_extra[:, a:e] for a, e in grp.spans])  # [G, 1|B, T, hd]
        vh = torch.stack([v_extra[:, a:e] for a, e in grp.spans])
        t = kh.shape[2]
        kh = kh.expand(n, b, t, hd).reshape(n, b, t, heads, d).permute(0, 1, 3, 2, 4).reshape(n * b, heads, t, d)
        vh = vh.expand(n, b, t, hd).reshape(n, b, t, heads, d).permute(0, 1, 3, 2, 4).reshape(n * b, heads, t, d)
        out = F.scaled_dot_product_attention(qh, kh, vh)  # [G*B, heads, L, d]
        out = out.view(n, b, heads, grp.length, d).permute(1, 0, 3, 2, 4).reshape(b, n * grp.length, hd)
        out = out * grp.weight if out.requires_grad else out.mul_(grp.weight)  # autograd keeps SDPA's output
        where = grp.local if local else grp.index
        if deterministic and n > 1:
            for start, count in grp.exact:
                target.index_add_(1, where[start : start + count], out[:, start : start + count])
        else:
            target.index_add_(1, where, out)
    return target


def blend(base: torch.Tensor, q: torch.Tensor, k_extra: torch.Tensor, v_extra: torch.Tensor, heads: int, plan: GatherPlan) -> torch.Tensor:
    """The regional output ``w_base * base + sum_j w_j * region_j``, written into ``base``.

    ``base`` holds the base prompt's attention wherever ``plan.base_index`` says (elsewhere
    any finite value: its weight there is zero, so it is overwritten by zero times it).
    """
    if plan.covered is None:
        base.mul_(plan.base_weight)
    elif plan.covered.numel():
        base.index_copy_(1, plan.covered, base.index_select(1, plan.covered).mul_(plan.covered_base_weight))
    return add_segments(base, q, k_extra, v_extra, heads, plan, local=False)


def base_where_needed(q: torch.Tensor, kb: torch.Tensor, vb: torch.Tensor, heads: int, plan: GatherPlan) -> torch.Tensor:
    """The base prompt's attention only at the positions where its weight is non-zero (zeros elsewhere)."""
    if plan.base_index is None:
        return sdpa(q, kb, vb, heads)
    out = q.new_zeros(q.shape)
    if plan.base_index.numel():
        out.index_copy_(1, plan.base_index, sdpa(q.index_select(1, plan.base_index), kb, vb, heads))
    return out


def regional_delta(
    q: torch.Tensor, kb: torch.Tensor, vb: torch.Tensor, k_extra: torch.Tensor, v_extra: torch.Tensor, heads: int, plan: GatherPlan
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """What regions add to plain base attention, only at covered positions: ``(positions, delta)``.

    For wrapping another attention (IP-Adapter and the like) that already produced the base
    prompt's attention: the regional result is that plus ``delta`` at ``positions``
    (``None`` = every position). ``delta = (w_base - 1) * base + sum_j w_j * region_j``.
    """
    qc = q if plan.covered is None else q.index_select(1, plan.covered)
    if qc.shape[1] == 0:
        return plan.covered, qc
    delta = sdpa(qc, kb, vb, heads)
    delta = delta * (plan.covered_base_weight - 1.0) if delta.requires_grad else delta.mul_(plan.covered_base_weight - 1.0)
    return plan.covered, add_segments(delta, q, k_extra, v_extra, heads, plan, local=True)
