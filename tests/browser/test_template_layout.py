"""Every template opens tidy in the real front end, and its template-browser thumbnail is its screenshot.

Each UI-format template in workflows/ (whatever is there when the test runs) is fetched the way
the template browser fetches it and loaded with ``app.loadGraphData`` in a fresh browser context
at the ``FrontEnd`` viewport (1400×1000). After load, with the view the file stores
(``extra.ds``), every node's bounding box (title included) must lie inside the canvas element
below the workflow tabs and above the zoom controls, and no two nodes may overlap. The flagship
(regional_sdxl) must open at a scale where the front end still draws the nodes' text rather than
its low-quality boxes (8 px font by default: scale ≥ 0.57 on a screen of device pixel ratio 1);
larger templates may open below it (docs/templates.md lists each one's scale). A failing template is laid out again with
``python tests/save_templates.py --tidy NAME``.

The same load is the template's thumbnail for the template browser (``workflows/NAME.jpg``,
served at /api/workflow_templates/pakati/NAME.jpg): a screenshot of the canvas as the template
opens, written into workflows/ with PAKATI_UPDATE_DOCS=1 (like the README's pictures), else into a
temporary folder. tests/browser/test_template_cards.py checks that every template has one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from save_templates import BOTTOM_INSET, TOP_INSET

pytestmark = [pytest.mark.host, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((REPO / "workflows").glob("*.json"))
FLAGSHIP = "regional_sdxl"
THUMBNAIL_SETTINGS = {"LiteGraph.Canvas.MinFontSizeForLOD": 0, "Comfy.Minimap.Visible": False, "Comfy.Graph.CanvasInfo": False}
THUMBNAIL_SIZE = (512, 319)  # the visible canvas area's aspect (1360×848), about twice the card's 16rem width

BOXES_JS = """() => {
  app.canvas.draw(true, true);  // getBounding() is cached until a draw
  const r = app.canvas.canvas.getBoundingClientRect(), ds = app.canvas.ds;
  const nodes = app.graph._nodes.map(n => {
    const [x, y, w, h] = n.getBounding();
    return {id: n.id, type: n.type, title: n.title,
            box: [(x + ds.offset[0]) * ds.scale, (y + ds.offset[1]) * ds.scale, w * ds.scale, h * ds.scale]};
  });
  return {view: [r.width, r.height], scale: ds.scale, lowQuality: app.canvas.low_quality, nodes};
}"""


def thumbnail_path(name: str) -> Path:
    """workflows/NAME.jpg when PAKATI_UPDATE_DOCS=1 (to refresh the thumbnails), else a temporary folder."""
    folder = REPO / "workflows" if os.environ.get("PAKATI_UPDATE_DOCS") == "1" else Path(tempfile.gettempdir()) / "pakati-thumbnails"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.jpg"


def overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.stem for p in TEMPLATES])
def test_template_opens_with_every_node_in_view_and_none_overlapping(fe, comfy_server, path, tmp_path):
    fe.fresh()
    fe.close_toasts()
    wf = json.loads(comfy_server.get_bytes(f"/api/workflow_templates/pakati/{path.name}"))
    fe.watch()
    fe.load_workflow(wf)
    fe.page.wait_for_timeout(500)
    assert not fe.errors and not fe.toasts(), f"{path.name}: {fe.errors} {fe.toasts()}"
    got = fe.js(BOXES_JS)
    width, height = got["view"]
    top, bottom = TOP_INSET, height - BOTTOM_INSET
    outside = [
        f"node {n['id']} {n['type']} at {[round(v) for v in n['box']]}"
        for n in got["nodes"]
        if n["box"][0] < 0 or n["box"][1] < top or n["box"][0] + n["box"][2] > width or n["box"][1] + n["box"][3] > bottom
    ]
    nodes = got["nodes"]
    overlapping = [
        f"node {a['id']} {a['type']} and node {b['id']} {b['type']}"
        for i, a in enumerate(nodes)
        for b in nodes[i + 1 :]
        if overlap(a["box"], b["box"])
    ]
    fix = f" (python tests/save_templates.py --tidy {path.stem})"
    assert not outside, f"{path.name}: outside the canvas view (x 0-{width}, y {top}-{bottom}) at scale {got['scale']:.2f}: {outside}{fix}"
    assert not overlapping, f"{path.name}: overlapping: {overlapping}{fix}"
    if path.stem == FLAGSHIP:
        assert not got["lowQuality"], f"{path.name}: opens at scale {got['scale']:.2f}, where the front end draws nodes without text"
    shot = tmp_path / "canvas.png"
    # The thumbnail: the nodes drawn with their text at any scale, no minimap and no canvas info.
    # Settings are stored on the server, so the previous values are put back for the other tests.
    before = fe.js(f"() => Object.fromEntries({json.dumps(list(THUMBNAIL_SETTINGS))}.map(k => [k, app.extensionManager.setting.get(k)]))")
    try:
        fe.js("async (s) => { for (const [k, v] of Object.entries(s)) await app.extensionManager.setting.set(k, v); }", THUMBNAIL_SETTINGS)
        fe.js("() => app.canvas.draw(true, true)")
        fe.page.wait_for_timeout(300)
        fe.page.locator("#graph-canvas").screenshot(path=str(shot))
    finally:
        fe.js("async (s) => { for (const [k, v] of Object.entries(s)) await app.extensionManager.setting.set(k, v); }", before)
    thumb = Image.open(shot).convert("RGB").crop((0, top, width, bottom)).resize(THUMBNAIL_SIZE, Image.LANCZOS)
    thumb.save(thumbnail_path(path.stem), quality=85, optimize=True)
