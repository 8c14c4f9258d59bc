"""Plan helpers shared by the checker and solver tests."""

from __future__ import annotations

from pakati_core.orchestration import Plan


def equal_boxes(p: Plan, y0: float = 200.0, side: float = 174.0, gap: float = 18.0) -> Plan:
    """The plan with its object boxes made equal squares in a row, in the planned left-to-right order: these tests
    paste photos at one size into the boxes, so they judge the checker, not the planner's sizes."""
    fg = sorted((o for o in p.objects if not o.background), key=lambda o: sum(p.box(o.id)[::2]))
    left = (p.width - side * len(fg) - gap * (len(fg) - 1)) / 2
    data = p.to_dict()
    for k, o in enumerate(fg):
        x0 = left + k * (side + gap)
        next(r for r in data["canvas"]["regions"] if r["id"] == o.region_id)["points"] = [[x0, y0], [x0 + side, y0 + side]]
    return Plan.from_dict(data)
