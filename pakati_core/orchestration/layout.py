"""Placing one box per object so that the goal's relations hold, at sizes and depths a scene has.

The layout is a sequence of named steps, each driven by the numbers in :data:`LAYOUT` and the
noun lexicon (``pakati_core/phrases/data/nouns.tsv``: kind, typical size relative to a person, aspect):

1. :func:`band_boxes` — stuff is a band, not an object: ground (sea, beach, meadow, street, floor)
   across the lower part (nearer ground drawn over farther: water behind land), sky across the
   top, a backdrop (mountains, a skyline) behind things above the horizon.
2. :func:`thing_sizes` — each thing's box from its lexicon size and aspect (sizes compressed so a
   mouse beside an elephant is still drawable), size words ("big", "tiny") and depth words
   ("in the foreground" larger, "in the background" smaller).
3. :func:`columns` — things joined by vertical or depth relations share a column; "on" rests on
   the top surface (sinks into it a little), "riding" sits on the mount's back, "in front of"
   overlaps the one behind.
4. :func:`row_order` — columns left to right by the left/right relations, then "on the left" /
   "on the right" words, near-partners around a hub, else by mention.
5. :func:`ground_levels` — where each column stands: in its ground band, above the horizon when it
   is over the ground or flying, low in the foreground, at the horizon in the background.
6. :func:`fit_scale` — the one scale that fits every column between its ground level and the top
   and the row within the width, so a lone subject fills the frame.
7. :func:`stand` — boxes for the columns (a grid of rows when many unrelated things).
8. :func:`contain` — contained things ("in a bowl", "with two eggs") inside their container, side
   by side when several.
9. :func:`z_order` — bands first, then containers before contents and behind before in front.

What this cannot satisfy (conflicting constraints across columns) is handed to the solver
(:func:`solver.solve_layout`) by the planner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

from .rules import Box

LAYOUT = {
    "gap": 0.035,  # of the shorter side, between neighbouring columns and stacked boxes
    "max_per_row": 5,  # unrelated columns beyond this wrap into a grid
    "depth_overlap": 0.3,  # a box in front overlaps the one behind by this fraction of its height
    "on_sink": 0.15,  # "A on B": A's bottom this fraction of B's height below B's top (resting on its surface)
    "ride_sink": 0.5,  # "A riding B": A's bottom this far into the mount's height
    "size_power": 0.7,  # visual size = lexicon size ** this (a mouse next to an elephant stays visible)
    "min_size": 0.04,  # lexicon sizes below this are drawn at this size
    "min_share": 0.3,  # no thing is drawn smaller than this share of the scene's largest thing: a small region renders badly
    "aspect_range": (0.25, 4.0),
    "horizon": 0.5,  # of the height: the top of the ground when there is ground
    "near_ground_step": 0.15,  # each nearer ground band starts this much lower
    "sky_bottom": 0.04,  # the sky band reaches this far below the horizon
    "backdrop_top": 0.2,  # a backdrop band spans from here to just below the horizon
    "backdrop_below_horizon": 0.06,
    "stand_in_band": 0.7,  # a thing on a ground band stands this far down the band
    "ground_line": 0.95,  # where things stand when there is no ground band
    "ground_line_in_band": 0.93,
    "elevated_bottom": 0.45,  # a flying thing's lowest edge
    "over_ground": 0.05,  # "flying over the valley": the bottom edge this far above the horizon
    "over_ground_standing": 0.25,  # "a bridge over a river": standing this far down the band
    "foreground_bottom": 0.98,
    "foreground_scale": 1.25,
    "background_scale": 0.55,
    "background_above_horizon": -0.06,
    "top_margin": 0.03,
    "width_fill": 0.94,
    "contain_fill": 0.55,
    "contain_at": 0.58,  # contents fill this share of the container, centred this far down
}
VERTICAL = ("above", "on", "below", "riding")
DEPTH = ("in_front_of", "behind")
BAND_KINDS = ("ground", "sky", "backdrop")


@dataclass
class Item:
    id: str
    noun: str
    mention: int
    scale: float = 1.0  # from size words ("big", "tiny")
    kind: str = "thing"  # thing, ground, sky, backdrop
    category: str = "object"
    size: float = 0.3  # typical height relative to a standing adult
    aspect: float = 1.0  # width / height
    hint: str = ""  # left, right, center
    depth: str = ""  # foreground, background
    elevated: bool = False


def _topo(nodes: list[str], edges: list[tuple[str, str]], rank: dict[str, int]) -> list[str]:
    """Order nodes so that every (u, v) edge has u first where possible; ties by ``rank``."""
    indeg = {n: 0 for n in nodes}
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for u, v in sorted(set(edges)):
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


# -- 1. bands ------------------------------------------------------------------------------------
def band_boxes(items: list[Item], width: int, height: int) -> dict[str, Box]:
    """Full-width bands for ground, sky and backdrop stuff."""
    grounds = sorted((it for it in items if it.kind == "ground"), key=lambda it: (it.category != "water", it.mention))
    horizon = LAYOUT["horizon"] * height if grounds else None
    out: dict[str, Box] = {}
    for k, it in enumerate(grounds):
        out[it.id] = (0.0, horizon + k * LAYOUT["near_ground_step"] * height, float(width), float(height))
    base = horizon if horizon is not None else 0.55 * height
    for it in items:
        if it.kind == "sky":
            out[it.id] = (0.0, 0.0, float(width), base + LAYOUT["sky_bottom"] * height)
        elif it.kind == "backdrop":
            out[it.id] = (0.0, LAYOUT["backdrop_top"] * height, float(width), base + LAYOUT["backdrop_below_horizon"] * height)
    return out


# -- 2. sizes ------------------------------------------------------------------------------------
def thing_sizes(items: list[Item]) -> dict[str, tuple[float, float]]:
    """(w, h) in person-height units for every thing."""
    lo, hi = LAYOUT["aspect_range"]
    out = {}
    for it in items:
        h = max(it.size, LAYOUT["min_size"]) ** LAYOUT["size_power"] * it.scale
        if it.depth == "foreground":
            h *= LAYOUT["foreground_scale"]
        elif it.depth == "background":
            h *= LAYOUT["background_scale"]
        out[it.id] = (h * min(max(it.aspect, lo), hi), h)
    largest = max((max(w, h) for w, h in out.values()), default=0.0)
    for i, (w, h) in out.items():
        f = max(1.0, LAYOUT["min_share"] * largest / min(w, h))
        out[i] = (w * f, h * f)
    return out


# -- 3. columns ----------------------------------------------------------------------------------
@dataclass
class Columns:
    members: dict[str, list[str]]  # column id -> ids, top first
    of: dict[str, str]  # item id -> column id
    joins: dict[frozenset, tuple[str, float]]  # {upper, lower} -> (kind, fraction) of how they meet


def columns(things: list[str], relations: list[tuple[str, str, str]], rank: dict[str, int]) -> Columns:
    parent = {i: i for i in things}

    def find(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    edges: list[tuple[str, str]] = []  # (upper, lower)
    joins: dict[frozenset, tuple[str, float]] = {}
    rests: list[tuple[str, str]] = []
    for a, rel, b in relations:
        if a not in parent or b not in parent or a == b or rel not in VERTICAL + DEPTH:
            continue
        parent[find(a)] = find(b)
        upper, lower = (a, b) if rel in ("above", "on", "behind", "riding") else (b, a)
        edges.append((upper, lower))
        key = frozenset((a, b))
        if rel in DEPTH:
            joins[key] = ("depth", LAYOUT["depth_overlap"])
        elif rel == "on":
            joins[key] = ("sink", LAYOUT["on_sink"])
            rests.append((a, b))
        elif rel == "riding":
            joins[key] = ("sink", LAYOUT["ride_sink"])
            rests.append((a, b))
    members: dict[str, list[str]] = {}
    for i in things:
        members.setdefault(find(i), []).append(i)
    for c, ids in members.items():
        order = _topo(ids, edges, rank)
        for a, b in rests:  # what rests on something sits right on it ("a cat on a sofa under a window")
            if a in order and b in order and order.index(a) != order.index(b) - 1:
                order.remove(a)
                order.insert(order.index(b), a)
        members[c] = order
    return Columns(members, {i: find(i) for i in things}, joins)


def _join(cols: Columns, upper: str, lower: str, size: dict[str, tuple[float, float]], gap: float) -> float:
    """Vertical distance from the lower box's top up to the upper box's bottom (negative: they overlap)."""
    kind, f = cols.joins.get(frozenset((upper, lower)), ("gap", 0.0))
    if kind == "sink":
        return -f * size[lower][1]
    if kind == "depth":  # the one in front overlaps the one behind, and still ends lower
        return -min(f * size[upper][1], 0.6 * size[lower][1]) + gap
    return gap


def column_dims(cols: Columns, c: str, size: dict[str, tuple[float, float]], s: float, gap: float) -> tuple[float, float]:
    ids = cols.members[c]
    w = max(size[i][0] for i in ids) * s
    h = size[ids[0]][1] * s
    for up, lo in pairwise(ids):
        h += size[lo][1] * s + _join(cols, up, lo, size, gap / max(s, 1e-9)) * s
    return w, h


# -- 4. order ------------------------------------------------------------------------------------
def row_order(cols: Columns, relations: list[tuple[str, str, str]], items: dict[str, Item], rank: dict[str, int]) -> list[str]:
    col_rank = {c: min(rank[i] for i in m) for c, m in cols.members.items()}
    h_edges = []
    for a, rel, b in relations:
        if a in cols.of and b in cols.of and cols.of[a] != cols.of[b]:
            if rel == "left_of":
                h_edges.append((cols.of[a], cols.of[b]))
            elif rel == "right_of":
                h_edges.append((cols.of[b], cols.of[a]))
    order = _topo(list(cols.members), h_edges, col_rank)
    if not h_edges:
        order = _around_hubs(
            order,
            [
                (cols.of[a], cols.of[b])
                for a, rel, b in relations
                if rel == "near" and a in cols.of and b in cols.of and cols.of[a] != cols.of[b]
            ],
        )
    side = {c: next((items[i].hint for i in m if items[i].hint), "") for c, m in cols.members.items()}
    if any(side.values()):
        key = {"left": 0, "center": 1, "": 1, "right": 2}
        order = sorted(order, key=lambda c: key[side[c]])  # stable: relations and mention order kept within a side
    return order


# -- 5. ground levels ----------------------------------------------------------------------------
def ground_levels(
    cols: Columns, items: dict[str, Item], relations: list[tuple[str, str, str]], bands: dict[str, Box], height: int
) -> dict[str, float]:
    """The y of each column's bottom edge."""
    horizon = LAYOUT["horizon"] * height if any(items[b].kind == "ground" for b in bands) else None
    on_band = {
        a: b for a, rel, b in relations if rel == "on" and b in bands and items[b].kind != "backdrop"
    }  # "in the mountains": at their foot
    over_band = {a: b for a, rel, b in relations if rel == "above" and b in bands}
    out = {}
    for c, ids in cols.members.items():
        bottom_id = ids[-1]
        depth = next((items[i].depth for i in ids if items[i].depth), "")
        band = next((on_band[i] for i in reversed(ids) if i in on_band), None)
        over = next((over_band[i] for i in ids if i in over_band), None)
        if depth == "foreground":
            y = LAYOUT["foreground_bottom"] * height
        elif depth == "background":
            y = (horizon if horizon is not None else 0.6 * height) + LAYOUT["background_above_horizon"] * height
        elif band is not None and items[band].kind == "ground":
            b = bands[band]
            y = b[1] + LAYOUT["stand_in_band"] * (b[3] - b[1])
        elif over is not None and any(items[i].elevated for i in ids):
            y = bands[over][1] - LAYOUT["over_ground"] * height
        elif band is not None or items[bottom_id].elevated or any(items[i].elevated for i in ids):
            y = LAYOUT["elevated_bottom"] * height
        elif over is not None:
            b = bands[over]
            y = b[1] + LAYOUT["over_ground_standing"] * (b[3] - b[1])
        else:
            y = (LAYOUT["ground_line_in_band"] if horizon is not None else LAYOUT["ground_line"]) * height
        out[c] = y
    return out


# -- 6. scale ------------------------------------------------------------------------------------
def fit_scale(
    cols: Columns,
    rows: list[list[str]],
    size: dict[str, tuple[float, float]],
    bottoms: dict[str, float],
    width: int,
    height: int,
    gap: float,
) -> float:
    """The largest scale (pixels per person height) at which every column and row fits."""
    s = float(height)
    top = LAYOUT["top_margin"] * height
    for _ in range(4):  # the gaps do not scale, so settle in a few rounds; up or down, so a lone subject fills the frame
        widths = [sum(column_dims(cols, c, size, s, gap)[0] for c in r) + gap * (len(r) - 1) for r in rows]
        f = LAYOUT["width_fill"] * width / max(max(widths), 1e-6)
        if len(rows) > 1:
            total_h = sum(max(column_dims(cols, c, size, s, gap)[1] for c in r) for r in rows) + gap * (len(rows) - 1)
            f = min(f, 0.9 * height / max(total_h, 1e-6))
        else:
            f = min([f] + [(bottoms[c] - top) / max(column_dims(cols, c, size, s, gap)[1], 1e-6) for c in rows[0]])
        s *= f
    return s


# -- 7. stand ------------------------------------------------------------------------------------
def stand(
    cols: Columns,
    rows: list[list[str]],
    size: dict[str, tuple[float, float]],
    bottoms: dict[str, float],
    items: dict[str, Item],
    s: float,
    width: int,
    height: int,
    gap: float,
) -> dict[str, Box]:
    boxes: dict[str, Box] = {}
    heights = [max(column_dims(cols, c, size, s, gap)[1] for c in r) if r else 0.0 for r in rows]
    total_h = sum(heights) + gap * (len(rows) - 1)
    row_y = min(max(0.56 * height - total_h / 2.0, 0.04 * height), height - total_h - 0.02 * height) if len(rows) > 1 else None
    for row, row_h in zip(rows, heights):
        row_w = sum(column_dims(cols, c, size, s, gap)[0] for c in row) + gap * (len(row) - 1)
        hints = [next((items[i].hint for i in cols.members[c] if items[i].hint), "") for c in row]
        x = (width - row_w) / 2.0
        if hints and hints[0] == "left" and "right" not in hints:
            x = (1 - LAYOUT["width_fill"]) / 2 * width
        elif hints and hints[-1] == "right" and "left" not in hints:
            x = width - (1 - LAYOUT["width_fill"]) / 2 * width - row_w
        for c in row:
            cw, ch = column_dims(cols, c, size, s, gap)
            cx = x + cw / 2.0
            if row_y is None:
                y = max(bottoms[c] - ch, LAYOUT["top_margin"] * height)
            else:
                y = row_y + (row_h - ch) / 2.0
            ids = cols.members[c]
            for k, i in enumerate(ids):
                w, h = size[i][0] * s, size[i][1] * s
                boxes[i] = (cx - w / 2.0, y, cx + w / 2.0, y + h)
                if k + 1 < len(ids):
                    y += h + _join(cols, i, ids[k + 1], size, gap / s) * s
            x += cw + gap
        if row_y is not None:
            row_y += row_h + gap
    return boxes


# -- 8. containment ------------------------------------------------------------------------------
def contain(
    boxes: dict[str, Box], inside: dict[str, str], size: dict[str, tuple[float, float]], rank: dict[str, int], width: int, height: int
) -> None:
    """Put contents inside their containers; several contents of one container side by side."""
    groups: dict[str, list[str]] = {}
    for a in _topo(list(inside), [(inside[a], a) for a in inside if inside[a] in inside], rank):
        groups.setdefault(inside[a], []).append(a)
    for container in _topo(list(groups), [(inside[c], c) for c in groups if c in inside], rank):
        bx0, by0, bx1, by1 = boxes.get(container, (0, 0, width, height))
        contents = groups[container]
        n = len(contents)
        slot = (bx1 - bx0) / n
        for k, a in enumerate(contents):
            w, h = size[a]
            f = min(LAYOUT["contain_fill"] * slot / w, LAYOUT["contain_fill"] * (by1 - by0) / h)
            w, h = w * f, h * f
            cx, cy = bx0 + slot * (k + 0.5), by0 + (by1 - by0) * LAYOUT["contain_at"]
            boxes[a] = (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)


# -- 9. z-order ----------------------------------------------------------------------------------
def z_order(items: list[Item], relations: list[tuple[str, str, str]], bands: dict[str, Box], rank: dict[str, int]) -> list[str]:
    band_ids = sorted(bands, key=lambda i: (bands[i][1] if next(it for it in items if it.id == i).kind == "ground" else -1, rank[i]))
    sky_first = sorted(band_ids, key=lambda i: {"sky": 0, "backdrop": 1, "ground": 2}[next(it for it in items if it.id == i).kind])
    draw_before = [(b, a) for a, rel, b in relations if rel == "inside"]
    for a, rel, b in relations:
        if rel == "in_front_of":
            draw_before.append((b, a))
        elif rel == "behind":
            draw_before.append((a, b))
    things = [it for it in items if it.id not in bands]
    depth_rank = {it.id: {"background": 0, "": 1, "foreground": 2}[it.depth] for it in things}
    ordered = _topo([it.id for it in things], draw_before, {i: depth_rank[i] * 1000 + rank[i] for i in depth_rank})
    return sky_first + ordered


# -- 3b. several things on one surface -------------------------------------------------------------
def surfaces(
    relations: list[tuple[str, str, str]], size: dict[str, tuple[float, float]], rank: dict[str, int], gap_units: float
) -> tuple[list[tuple[str, str, str]], dict[str, list[str]]]:
    """Things resting on the same surface ("a cup and a croissant on a table") stand side by side on it: each such
    group becomes one row item (``on:<surface>``) resting on the surface; returns the rewritten relations and the rows."""
    on: dict[str, list[str]] = {}
    for a, rel, b in relations:
        if rel == "on" and a in size and b in size and a != b and a not in on.get(b, []):
            on.setdefault(b, []).append(a)
    rows = {f"on:{b}": sorted(set(a_), key=rank.__getitem__) for b, a_ in on.items() if len(set(a_)) >= 2}
    if not rows:
        return relations, {}
    grouped = {(a, b.split(":", 1)[1]) for b, a_ in rows.items() for a in a_}
    out = [(a, rel, b) for a, rel, b in relations if not (rel == "on" and (a, b) in grouped)]
    for row, members in rows.items():
        size[row] = (sum(size[a][0] for a in members) + gap_units * (len(members) - 1), max(size[a][1] for a in members))
        rank[row] = min(rank[a] for a in members)
        out.append((row, "on", row.split(":", 1)[1]))
    return out, rows


def spread(boxes: dict[str, Box], rows: dict[str, list[str]], size: dict[str, tuple[float, float]]) -> None:
    """Replace each surface row's box by its members' boxes, side by side, bottoms aligned."""
    for row, members in rows.items():
        x0, y0, x1, y1 = boxes.pop(row)
        s = (y1 - y0) / size[row][1]
        gap = ((x1 - x0) - sum(size[a][0] * s for a in members)) / max(len(members) - 1, 1)
        x = x0
        for a in members:
            w, h = size[a][0] * s, size[a][1] * s
            boxes[a] = (x, y1 - h, x + w, y1)
            x += w + gap


def place(items: list[Item], relations: list[tuple[str, str, str]], width: int, height: int) -> tuple[dict[str, Box], list[str]]:
    """Boxes for every item and the z-order (bottom first): the steps above, in order."""
    side = min(width, height)
    gap = LAYOUT["gap"] * side
    rank = {it.id: it.mention for it in items}
    by_id = {it.id: it for it in items}
    bands = band_boxes(items, width, height)
    things = [it for it in items if it.id not in bands]
    size = thing_sizes(things)
    inside = {a: b for a, rel, b in relations if rel == "inside" and a != b and a in size}
    on_rows: dict[str, list[str]] = {}
    all_relations = relations
    relations, on_rows = surfaces(relations, size, rank, LAYOUT["gap"] * 0.5)
    for row, members in on_rows.items():
        by_id[row] = Item(row, row, rank[row], hint=next((by_id[a].hint for a in members if by_id[a].hint), ""))
    standing = [it.id for it in things if it.id not in inside and not any(it.id in m for m in on_rows.values())] + list(on_rows)
    cols = columns(standing, relations, rank)
    order = row_order(cols, relations, by_id, rank)
    related = any(rel in ("left_of", "right_of", "near") for _, rel, _ in relations)
    per_row = max(1, len(order) if related or len(order) <= LAYOUT["max_per_row"] else math.ceil(math.sqrt(len(order) * width / height)))
    rows = [order[i : i + per_row] for i in range(0, len(order), per_row)] or [[]]
    boxes: dict[str, Box] = dict(bands)
    if order:
        bottoms = ground_levels(cols, by_id, relations, bands, height)
        s = fit_scale(cols, rows, size, bottoms, width, height, gap)
        boxes.update(stand(cols, rows, size, bottoms, by_id, s, width, height, gap))
    spread(boxes, on_rows, size)
    contain(boxes, inside, size, rank, width, height)
    return boxes, z_order(items, all_relations, bands, rank)
