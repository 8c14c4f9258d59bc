"""Draw the offline planner's layouts of 12 ordinary goals side by side (the picture in docs/planning.md).

    python tools/scene_layouts.py [OUT.png]        # default: docs/scene_layouts.png

Each panel is ``pakati_core.preview.draw_overlay`` (what the Pakati Canvas Preview node draws) of the plan's
canvas on a grey board, with the goal written under it.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from pakati_core.canvas import Canvas  # noqa: E402
from pakati_core.orchestration import plan  # noqa: E402
from pakati_core.preview import draw_overlay  # noqa: E402

GOALS = [
    "portrait of an old sailor with a white beard and a wool cap",
    "a woman in a yellow raincoat walking her dog in the rain",
    "a cat sleeping on a sofa under a window",
    "a man riding a horse on a beach at sunset",
    "a bowl of ramen with two eggs",
    "a sailboat on the sea under a cloudy sky",
    "a cup of coffee next to a croissant on a wooden table",
    "a horse grazing in a field with mountains in the background",
    "a child sleeping in a hammock between two palm trees",
    "a red vintage car parked in front of a house",
    "a lighthouse on a cliff above the sea at night",
    "a dog in the foreground and a house in the background",
]
PANEL, CAPTION, COLS = 384, 58, 4


def render(goals: list[str] = GOALS, panel: int = PANEL) -> np.ndarray:
    """The picture as a uint8 H x W x 3 array."""
    rows = (len(goals) + COLS - 1) // COLS
    sheet = Image.new("RGB", (COLS * panel, rows * (panel + CAPTION)), (24, 24, 24))
    font = ImageFont.load_default(size=15)
    for k, goal in enumerate(goals):
        p = plan(goal, 1024, 1024)
        board = draw_overlay(np.full((panel, panel, 3), 0.18, np.float32), Canvas.from_dict(p.canvas))
        x, y = (k % COLS) * panel, (k // COLS) * (panel + CAPTION)
        sheet.paste(Image.fromarray((board * 255).round().astype(np.uint8)), (x, y))
        draw = ImageDraw.Draw(sheet)
        for n, line in enumerate(textwrap.wrap(goal, 44)[:3]):
            draw.text((x + 8, y + panel + 4 + 17 * n), line, fill=(235, 235, 235), font=font)
    return np.asarray(sheet)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "scene_layouts.png"
    Image.fromarray(render()).save(out, optimize=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
