"""Placing one box per object so that the goal's relations hold, with sizes plausible for the nouns.

Constructive first (deterministic and fast): objects linked by vertical or depth relations
share a column and are stacked in relation order; columns are ordered left to right by the
left/right relations (then by mention), packed with a small gap so that neighbours are near,
and scaled to fit the canvas. What that cannot satisfy (conflicting constraints across
columns) is handed to the solver (:func:`solver.solve_layout`), which moves boxes as little as
possible until every relation holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import lexicon as lx
from .rules import Box

GAP = 0.035  # of the shorter side, between neighbouring columns and stacked boxes
MAX_PER_ROW = 5  # unrelated objects beyond this wrap into a grid
DEPTH_OVERLAP = 0.3  # a box in front overlaps the one behind by this fraction of its height
VERTICAL = ("above", "on", "below")
DEPTH = ("in_front_of", "behind")


@dataclass
class Item:
    id: str
    noun: str
    mention: int
    scale: float = 1.0  # from size words ("big", "tiny")


def noun_size(noun: str, scale: float, side: int) -> tuple[float, float]:
    """A plausible box (w, h) in pixels for a noun on a canvas whose shorter side is ``side``."""
    base = lx.SIZE_OF.get(noun, lx.SIZE_OF.get(noun.rstrip("s"), lx.MEDIUM)) * side * scale
    if noun in lx.TALL_THINGS:
        return base * 0.72, base * 1.3
    if noun in lx.WIDE_THINGS:
        return base * 1.35, base * 0.8
    return base, base


def _topo(nodes: list[str], edges: list[tuple[str, str]], rank: dict[str, int]) -> list[str]:
    """Order nodes so that every (u, v) edge has u first where possible; ties by ``rank``."""
    indeg = {n: 0 for n in nodes}
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for u, v in set(edges):
        if u in indeg and v in indeg and u != v:
            succ[u].append(v)
            indeg[v] += 1
    out: list[str] = []
    ready = sorted((n for n in nodes if indeg[n] == 0), key=rank.__getitem__)
    left = set(nodes)
    while left:
        if not ready:  # a cycle: break it at the earliest mention
            ready = [min(left, key=rank.__getitem__)]
        n = ready.pop(0)
        if n not in left:
            continue
        left.discard(n)
        out.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0 and m in left:
                ready.append(m)
        ready.sort(key=rank.__getitem__)
    return out


def _around_hubs(order: list[str], near: list[tuple[str, str]]) -> list[str]:
    """Put each column's "near" partners on both sides of it (the one with most partners first),
    so that a horse near a lamp, a bicycle and a couch starts in the middle of them."""
    partners: dict[str, list[str]] = {}
    for a, b in near:
        partners.setdefault(a, []).append(b)
        partners.setdefault(b, []).append(a)
    if not partners or max(len(v) for v in partners.values()) < 2:
        return order
    placed: list[str] = []
    for hub in sorted(partners, key=lambda c: (-len(partners[c]), order.index(c))):
        if hub in placed:
            continue
        row = [hub]
        for k, p in enumerate(c for c in dict.fromkeys(partners[hub]) if c not in placed and c != hub):
            row = row + [p] if k % 2 == 0 else [p] + row
        placed += row
    return placed + [c for c in order if c not in placed]


def place(items: list[Item], relations: list[tuple[str, str, str]], width: int, height: int) -> tuple[dict[str, Box], list[str]]:
    """Boxes for every item and the z-order (bottom first) honouring depth and containment."""
    side = min(width, height)
    rank = {it.id: it.mention for it in items}
    by_id = {it.id: it for it in items}
    size = {it.id: noun_size(it.noun, it.scale, side) for it in items}
    inside = {a: b for a, rel, b in relations if rel == "inside" and a != b}
    top = [it.id for it in items if it.id not in inside]

    parent = {i: i for i in top}

    def find(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    stack_edges: list[tuple[str, str]] = []  # (upper, lower)
    depth_pairs: set[frozenset[str]] = set()
    for a, rel, b in relations:
        if a not in parent or b not in parent or a == b:
            continue
        if rel in VERTICAL + DEPTH:
            parent[find(a)] = find(b)
            upper, lower = (a, b) if rel in ("above", "on", "behind") else (b, a)
            stack_edges.append((upper, lower))
            if rel in DEPTH:
                depth_pairs.add(frozenset((a, b)))
    columns: dict[str, list[str]] = {}
    for i in top:
        columns.setdefault(find(i), []).append(i)
    col_of = {i: find(i) for i in top}
    col_rank = {c: min(rank[i] for i in members) for c, members in columns.items()}
    h_edges = []
    for a, rel, b in relations:
        if a in col_of and b in col_of and col_of[a] != col_of[b]:
            if rel == "left_of":
                h_edges.append((col_of[a], col_of[b]))
            elif rel == "right_of":
                h_edges.append((col_of[b], col_of[a]))
    order = _topo(list(columns), h_edges, col_rank)
    if not h_edges:
        order = _around_hubs(order, [(col_of[a], col_of[b]) for a, rel, b in relations
                                     if rel == "near" and a in col_of and b in col_of and col_of[a] != col_of[b]])
    stacks = {c: _topo(columns[c], stack_edges, rank) for c in columns}

    gap = GAP * side

    def col_dims(c: str, s: float) -> tuple[float, float]:
        ids = stacks[c]
        w = max(size[i][0] for i in ids) * s
        h = 0.0
        for k, i in enumerate(ids):
            hi = size[i][1] * s
            if k == 0:
                h = hi
            elif frozenset((ids[k - 1], i)) in depth_pairs:
                h += hi * (1 - DEPTH_OVERLAP)
            else:
                h += hi + gap
        return w, h

    # rows: unrelated columns wrap into a grid when one row would make them tiny
    related = bool(h_edges) or any(rel == "near" for _, rel, _ in relations)
    per_row = max(1, len(order) if related or len(order) <= MAX_PER_ROW else math.ceil(math.sqrt(len(order) * width / height)))
    rows = [order[i:i + per_row] for i in range(0, len(order), per_row)] or [[]]

    def row_dims(row: list[str], s: float) -> tuple[float, float]:
        if not row:
            return 0.0, 0.0
        return sum(col_dims(c, s)[0] for c in row) + gap * (len(row) - 1), max(col_dims(c, s)[1] for c in row)

    s = 1.0
    for _ in range(2):
        total_w = max(row_dims(r, s)[0] for r in rows)
        total_h = sum(row_dims(r, s)[1] for r in rows) + gap * (len(rows) - 1)
        s *= min(1.0, 0.94 * width / max(total_w, 1e-6), 0.9 * height / max(total_h, 1e-6))
    boxes: dict[str, Box] = {}
    total_h = sum(row_dims(r, s)[1] for r in rows) + gap * (len(rows) - 1)
    row_y = min(max(0.56 * height - total_h / 2.0, 0.04 * height), height - total_h - 0.02 * height) if len(rows) > 1 else None
    for row in rows:
        row_w, row_h = row_dims(row, s)
        x = (width - row_w) / 2.0
        for c in row:
            cw, ch = col_dims(c, s)
            cx = x + cw / 2.0
            if row_y is None:
                y = min(max(0.56 * height - ch / 2.0, 0.04 * height), height - ch - 0.02 * height)
            else:
                y = row_y + (row_h - ch) / 2.0
            ids = stacks[c]
            for k, i in enumerate(ids):
                w, h = size[i][0] * s, size[i][1] * s
                if k > 0 and frozenset((ids[k - 1], i)) in depth_pairs:
                    y -= (size[ids[k - 1]][1] * s) * DEPTH_OVERLAP + gap
                boxes[i] = (cx - w / 2.0, y, cx + w / 2.0, y + h)
                y += h + gap
            x += cw + gap
        if row_y is not None:
            row_y += row_h + gap
    for a in _topo(list(inside), [(inside[a], a) for a in inside if inside[a] in inside], rank):
        bx0, by0, bx1, by1 = boxes.get(inside[a], (0, 0, width, height))
        w, h = size[a]
        f = min(1.0, 0.55 * (bx1 - bx0) / w, 0.55 * (by1 - by0) / h)
        w, h = w * f, h * f
        cx, cy = (bx0 + bx1) / 2.0, by0 + (by1 - by0) * 0.58
        boxes[a] = (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    draw_before = [(b, a) for a, b in inside.items()]
    for a, rel, b in relations:
        if rel == "in_front_of":
            draw_before.append((b, a))
        elif rel == "behind":
            draw_before.append((a, b))
    z = _topo([it.id for it in items], draw_before, rank)
    del by_id
    return boxes, z
