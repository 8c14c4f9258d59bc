"""The docs picture of 12 planned scenes (tools/scene_layouts.py): drawn by the preview the Canvas Preview node
uses; written to docs/ with PAKATI_UPDATE_DOCS=1, else to a temporary folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from browser import doc_picture
from pakati_core.canvas import Canvas
from pakati_core.orchestration import plan
from pakati_core.orchestration.planning import plan_to_check, with_canvas

TOOL = Path(__file__).resolve().parents[2] / "tools" / "scene_layouts.py"


def test_scene_layouts_picture_shows_twelve_layouts():
    spec = importlib.util.spec_from_file_location("scene_layouts", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sheet = mod.render()
    assert sheet.shape == (3 * (mod.PANEL + mod.CAPTION), 4 * mod.PANEL, 3) and sheet.dtype == np.uint8
    panels = [
        sheet[r * (mod.PANEL + mod.CAPTION) : r * (mod.PANEL + mod.CAPTION) + mod.PANEL, c * mod.PANEL : (c + 1) * mod.PANEL]
        for r in range(3)
        for c in range(4)
    ]
    assert all(p.std() > 10 for p in panels)  # every panel has regions drawn on it
    assert len({p.tobytes() for p in panels}) == 12
    out = doc_picture("scene_layouts.png")
    Image.fromarray(sheet).save(out)
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), sheet)


def test_an_edited_canvas_moves_the_planned_boxes_and_a_goal_is_planned_at_the_image_size():
    p = plan("a red ball next to a blue cube", 512, 512)
    edited = p.to_dict()["canvas"]
    edited["regions"][0]["points"] = [[10, 20], [110, 220]]
    moved = with_canvas(p, Canvas.from_dict(edited))
    assert moved.canvas["regions"][0]["points"] == [[10, 20], [110, 220]] and moved.objects == p.objects
    assert plan_to_check(p, "", None) is p
    other = plan_to_check(p, "a green cup", None, (300, 411))
    assert (other.width, other.height) == (408, 296) and other.objects[0].noun == "cup"
