"""The region editor (web/js/pakati_canvas.js) in the real ComfyUI front end, in headless Chromium.

Regions are drawn with real mouse events; every check reads the `regions` widget (the Region
JSON v1 the workflow and the API prompt carry) and, at the end, the real server's run.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from browser import FrontEnd, doc_picture

pytestmark = [pytest.mark.host, pytest.mark.browser]

SCREENSHOT = doc_picture("editor.png")  # the README's picture of the editor, made by this test
POLYGON = [(60, 60), (220, 40), (260, 200), (80, 230)]
RECT = ((300, 96), (480, 320))


def add_canvas(fe: FrontEnd, width: int = 512, height: int = 384, pos=(120, 140), clear: bool = True) -> int:
    """Add a PakatiCanvas node the way the UI does, set its size through the widget callbacks."""
    return fe.js(
        """([w, h, pos, clear]) => {
            if (clear) app.graph.clear();
            const n = LiteGraph.createNode('PakatiCanvas');
            n.pos = pos;
            app.graph.add(n);
            for (const [name, v] of [['width', w], ['height', h]]) {
                const widget = n.widgets.find(x => x.name === name);
                widget.value = v;
                widget.callback?.(v);
            }
            app.canvas.ds.scale = 1;
            app.canvas.ds.offset = [0, 0];
            app.canvas.setDirty(true, true);
            return n.id;
        }""",
        [width, height, list(pos), clear],
    )


def regions(fe: FrontEnd, node_id: int) -> dict:
    return json.loads(fe.js("(id) => app.graph.getNodeById(id).widgets.find(w => w.name === 'regions').value", node_id))


def screen(fe: FrontEnd, node_id: int, x: float, y: float) -> tuple[float, float]:
    return tuple(fe.js("([id, x, y]) => app.graph.getNodeById(id).pakatiEditor.clientPoint(x, y)", [node_id, x, y]))


def editor_button(fe: FrontEnd, node_id: int, label: str):
    index = fe.js("(id) => app.graph._nodes.filter(n => n.type === 'PakatiCanvas').indexOf(app.graph.getNodeById(id))", node_id)
    return fe.page.locator(".pakati-editor").nth(index).get_by_role("button", name=label, exact=True)


def draw_polygon(fe: FrontEnd, node_id: int, points, close_with_enter: bool = False) -> None:
    editor_button(fe, node_id, "Polygon").click()
    for x, y in points:
        fe.page.mouse.click(*screen(fe, node_id, x, y))
    if close_with_enter:
        fe.page.keyboard.press("Enter")
    else:
        fe.page.mouse.click(*screen(fe, node_id, *points[0]))


def drag(fe: FrontEnd, node_id: int, a, b) -> None:
    x0, y0 = screen(fe, node_id, *a)
    x1, y1 = screen(fe, node_id, *b)
    fe.page.mouse.move(x0, y0)
    fe.page.mouse.down()
    for t in (0.25, 0.5, 0.75, 1.0):
        fe.page.mouse.move(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
    fe.page.mouse.up()


def assert_points(got, want, tol: float = 1.0) -> None:
    assert np.abs(np.asarray(got, float) - np.asarray(want, float)).max() <= tol, (got, want)


def draw_layout(fe: FrontEnd, node_id: int) -> None:
    draw_polygon(fe, node_id, POLYGON)
    editor_button(fe, node_id, "Rect").click()
    drag(fe, node_id, *RECT)
    rows = fe.page.locator(".pakati-editor .pakati-region-row")
    rows.nth(0).locator(".pakati-name").fill("boat")
    rows.nth(0).locator(".pakati-prompt").fill("a red boat")
    rows.nth(1).locator(".pakati-name").fill("sky")
    rows.nth(1).locator(".pakati-prompt").fill("a stormy sky")
    rows.nth(1).locator(".pakati-feather").fill("12")


def test_draw_polygon_and_rect_with_the_mouse_writes_region_json(fe):
    fe.watch()
    node = add_canvas(fe)
    draw_layout(fe, node)
    doc = regions(fe, node)
    assert (doc["version"], doc["width"], doc["height"]) == (1, 512, 384)
    boat, sky = doc["regions"]
    assert boat["shape"] == "polygon" and boat["name"] == "boat" and boat["prompt"] == "a red boat"
    assert_points(boat["points"], POLYGON)
    assert sky["shape"] == "rect" and sky["prompt"] == "a stormy sky" and sky["feather"] == 12
    assert_points(sky["points"], RECT)
    assert boat["id"] != sky["id"]
    assert not fe.errors, fe.errors


def test_cfg_and_denoise_per_region_are_shown_and_edited(fe):
    fe.watch()
    node = add_canvas(fe)
    draw_layout(fe, node)
    rows = fe.page.locator(".pakati-editor .pakati-region-row")
    rows.nth(0).locator(".pakati-cfg").fill("3.5")
    rows.nth(1).locator(".pakati-denoise").fill("0.25")
    boat, sky = regions(fe, node)["regions"]
    assert boat["cfg"] == 3.5 and boat.get("denoise") is None
    assert sky["denoise"] == 0.25 and sky.get("cfg") is None
    rows.nth(0).locator(".pakati-cfg").fill("")
    rows.nth(1).locator(".pakati-denoise").fill("7")  # out of range: not written
    boat, sky = regions(fe, node)["regions"]
    assert boat["cfg"] is None and sky["denoise"] == 0.25
    doc = regions(fe, node)
    doc["regions"][1]["cfg"] = 9
    fe.js(
        "([id, text]) => { const w = app.graph.getNodeById(id).widgets.find(w => w.name === 'regions'); "
        "w.value = text; w.callback?.(text); }",
        [node, json.dumps(doc)],
    )
    fe.page.wait_for_function("() => document.querySelectorAll('.pakati-editor .pakati-cfg')[1]?.value === '9'")
    assert rows.nth(1).locator(".pakati-denoise").input_value() == "0.25"
    assert not fe.errors, fe.errors


def test_enter_closes_a_polygon_and_vertex_edits_snap_to_the_grid(fe):
    fe.watch()
    node = add_canvas(fe)
    draw_polygon(fe, node, [(100, 100), (300, 100), (300, 300), (100, 300)], close_with_enter=True)
    assert len(regions(fe, node)["regions"]) == 1
    fe.page.locator(".pakati-editor select").first.select_option("32")
    drag(fe, node, (300, 300), (350, 331))  # the selected polygon's third vertex
    pts = regions(fe, node)["regions"][0]["points"]
    assert_points(pts, [(100, 100), (300, 100), (352, 320), (100, 300)], tol=0)
    # select that vertex and delete it with the Delete key: a vertex goes, the node stays
    fe.page.mouse.click(*screen(fe, node, 352, 320))
    fe.page.keyboard.press("Delete")
    assert_points(regions(fe, node)["regions"][0]["points"], [(100, 100), (300, 100), (100, 300)], tol=0)
    assert fe.js("(id) => !!app.graph.getNodeById(id)", node)
    # double-click on an edge inserts a vertex there (snapped)
    fe.page.mouse.dblclick(*screen(fe, node, 200, 100))
    assert len(regions(fe, node)["regions"][0]["points"]) == 4
    assert not fe.errors, fe.errors


def test_move_duplicate_reorder_and_delete_regions(fe):
    fe.watch()
    node = add_canvas(fe)
    editor_button(fe, node, "Rect").click()
    drag(fe, node, (40, 40), (140, 120))
    drag(fe, node, (90, 80), (190, 100))  # move the whole rect by (+100, +20)
    (r1,) = regions(fe, node)["regions"]
    assert_points(r1["points"], [(140, 60), (240, 140)])
    editor_button(fe, node, "Dup").click()
    first, copy = regions(fe, node)["regions"]
    assert copy["id"] != first["id"] and copy["shape"] == "rect"
    assert_points(copy["points"], [(148, 68), (248, 148)])
    editor_button(fe, node, "Down").click()  # the copy (selected) goes below the original
    assert [r["id"] for r in regions(fe, node)["regions"]] == [copy["id"], first["id"]]
    editor_button(fe, node, "Up").click()
    assert [r["id"] for r in regions(fe, node)["regions"]] == [first["id"], copy["id"]]
    # a locked region cannot be dragged
    fe.page.locator(".pakati-editor .pakati-region-row").nth(1).locator(".pakati-locked").check()
    drag(fe, node, (200, 120), (300, 300))
    assert_points(regions(fe, node)["regions"][1]["points"], [(148, 68), (248, 148)])
    editor_button(fe, node, "Del").click()
    assert [r["id"] for r in regions(fe, node)["regions"]] == [first["id"]]
    editor_button(fe, node, "Fit").click()
    assert not fe.errors, fe.errors


def test_keyboard_shortcuts_act_on_the_editor_not_the_graph(fe):
    fe.watch()
    node = add_canvas(fe)
    fe.page.mouse.click(*screen(fe, node, 10, 10))  # focus the editor
    fe.page.keyboard.press("r")
    drag(fe, node, (40, 40), (140, 120))
    fe.page.keyboard.press("Control+d")
    assert [r["shape"] for r in regions(fe, node)["regions"]] == ["rect", "rect"]
    fe.page.keyboard.press("PageDown")
    doc = regions(fe, node)
    assert_points(doc["regions"][0]["points"], [(48, 48), (148, 128)])
    fe.page.keyboard.press("Delete")
    assert len(regions(fe, node)["regions"]) == 1
    fe.page.keyboard.press("p")
    for x, y in [(200, 200), (300, 200), (250, 300)]:
        fe.page.mouse.click(*screen(fe, node, x, y))
    fe.page.keyboard.press("Enter")
    assert [r["shape"] for r in regions(fe, node)["regions"]] == ["rect", "polygon"]
    assert fe.js("() => app.graph._nodes.length") == 1
    assert not fe.errors, fe.errors


def test_changing_width_and_height_rescales_the_regions(fe):
    fe.watch()
    node = add_canvas(fe)
    editor_button(fe, node, "Rect").click()
    drag(fe, node, (64, 48), (256, 192))
    fe.js(
        """(id) => { const n = app.graph.getNodeById(id);
            for (const [name, v] of [['width', 1024], ['height', 768]]) {
                const w = n.widgets.find(x => x.name === name); w.value = v; w.callback?.(v); } }""",
        node,
    )
    doc = regions(fe, node)
    assert (doc["width"], doc["height"]) == (1024, 768)
    assert_points(doc["regions"][0]["points"], [(128, 96), (512, 384)], tol=0)
    assert not fe.errors, fe.errors


def test_two_canvas_nodes_do_not_share_state(fe):
    fe.watch()
    a = add_canvas(fe, pos=(120, 140))
    b = add_canvas(fe, width=256, height=256, pos=(700, 140), clear=False)
    editor_button(fe, b, "Rect").click()
    drag(fe, b, (20, 20), (120, 120))
    assert regions(fe, a)["regions"] == []
    assert len(regions(fe, b)["regions"]) == 1
    assert fe.js("([a, b]) => app.graph.getNodeById(a).pakatiEditor !== app.graph.getNodeById(b).pakatiEditor", [a, b])
    assert not fe.errors, fe.errors


def test_paste_and_undo_restore_exactly_what_was_drawn(fe):
    fe.watch()
    node = add_canvas(fe)
    fe.page.wait_for_timeout(300)
    fe.js("() => app.extensionManager.workflow.activeWorkflow.changeTracker.checkState()")
    draw_layout(fe, node)
    drawn = regions(fe, node)
    # copy/paste the node: the pasted node's widget and editor hold the same layout
    pasted = fe.js(
        """(id) => { const n = app.graph.getNodeById(id);
            app.canvas.selectItems([n]); app.canvas.copyToClipboard();
            const before = new Set(app.graph._nodes.map(x => x.id));
            app.canvas.pasteFromClipboard();
            return app.graph._nodes.find(x => !before.has(x.id)).id; }""",
        node,
    )
    assert regions(fe, pasted) == drawn
    assert fe.js("(id) => JSON.stringify(app.graph.getNodeById(id).pakatiEditor.doc)", pasted) == json.dumps(drawn, separators=(",", ":"))
    # undo the paste, then undo the last edit; redo brings it back
    tracker = "app.extensionManager.workflow.activeWorkflow.changeTracker"
    fe.js(f"async () => {{ {tracker}.checkState(); await {tracker}.undo(); }}")
    assert fe.js("() => app.graph._nodes.length") == 1
    node = fe.js("() => app.graph._nodes[0].id")
    assert regions(fe, node) == drawn
    fe.js(f"async () => {{ await {tracker}.undo(); }}")
    undone = regions(fe, node)
    assert undone != drawn and len(undone["regions"]) == 2
    fe.js(f"async () => {{ await {tracker}.redo(); }}")
    node = fe.js("() => app.graph._nodes[0].id")
    assert regions(fe, node) == drawn
    assert fe.js("(id) => app.graph.getNodeById(id).pakatiEditor.doc.regions.length", node) == 2
    assert not fe.errors, fe.errors


def wait_for_success(comfy_server, known: set[str], timeout: float = 240.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = comfy_server.get_json("/history")
        new = {k: v for k, v in history.items() if k not in known}
        for entry in new.values():
            status = entry.get("status", {})
            if status.get("status_str") == "error":
                raise AssertionError(f"the run failed: {json.dumps(status)[:3000]}")
            if status.get("completed"):
                return entry
        time.sleep(0.5)
    raise AssertionError(f"the queued workflow did not finish in {timeout}s:\n{comfy_server.log()[-3000:]}")


def test_save_reload_queue_and_screenshot(fe, comfy_server):
    from skimage import data

    (comfy_server.base / "input").mkdir(exist_ok=True)
    Image.fromarray(data.astronaut()).resize((512, 384)).save(comfy_server.base / "input" / "pakati_astronaut.png")
    fe.watch()
    node = add_canvas(fe, pos=(420, 120))
    ids = fe.js(
        """(canvasId) => {
            const canvas = app.graph.getNodeById(canvasId);
            const load = LiteGraph.createNode('LoadImage'); load.pos = [60, 140]; app.graph.add(load);
            load.widgets.find(w => w.name === 'image').value = 'pakati_astronaut.png';
            load.connect(0, canvas, canvas.inputs.findIndex(i => i.name === 'background'));
            const preview = LiteGraph.createNode('PakatiCanvasPreview'); preview.pos = [980, 140]; app.graph.add(preview);
            canvas.connect(0, preview, 0);
            load.connect(0, preview, 1);
            return {load: load.id, preview: preview.id};
        }""",
        node,
    )
    draw_layout(fe, node)
    drawn = regions(fe, node)
    assert not fe.errors, fe.errors

    # save through the front end's own Save command (it asks for a name), then reload the page
    fe.js("() => { app.extensionManager.command.execute('Comfy.SaveWorkflow'); }")
    fe.page.locator(".p-dialog input").fill("pakati_editor_test")
    fe.page.keyboard.press("Enter")
    fe.page.wait_for_function(
        "() => app.extensionManager.workflow.activeWorkflow?.path === "
        "'workflows/pakati_editor_test.json' && "
        "!app.extensionManager.workflow.activeWorkflow.isModified"
    )
    saved = json.loads(comfy_server.get_bytes("/api/userdata/workflows%2Fpakati_editor_test.json"))
    (saved_canvas,) = [n for n in saved["nodes"] if n["type"] == "PakatiCanvas"]
    assert json.loads(saved_canvas["widgets_values"][2]) == drawn
    fe.reload()
    fe.watch()
    assert fe.js("() => app.extensionManager.workflow.activeWorkflow.path") == "workflows/pakati_editor_test.json"
    assert regions(fe, node) == drawn
    assert fe.js("(id) => app.graph.getNodeById(id).pakatiEditor.doc.regions.map(r => r.prompt)", node) == ["a red boat", "a stormy sky"]

    # queue it from the front end; the run finishes, the overlay shows on the preview node
    # and the background image appears behind the regions in the editor
    known = set(comfy_server.get_json("/history"))
    fe.js("() => { app.queuePrompt(0, 1); }")
    entry = wait_for_success(comfy_server, known)
    assert entry["outputs"][str(ids["preview"])]["images"]
    assert entry["outputs"][str(node)]["pakati_background"]
    fe.page.wait_for_function(
        "(id) => app.graph.getNodeById(id).imgs?.length > 0 && app.graph.getNodeById(id).imgs[0].complete", arg=ids["preview"]
    )
    fe.page.wait_for_function("(id) => app.graph.getNodeById(id).pakatiEditor.background?.naturalWidth === 512", arg=node)
    fe.js("(id) => app.graph.getNodeById(id).pakatiEditor.select(0)", node)
    fe.page.wait_for_timeout(500)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    box = fe.js(
        "(id) => { const n = app.graph.getNodeById(id); const [x, y] = "
        "app.canvas.ds.convertOffsetToCanvas([n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT]); "
        "return [x, y, n.size[0], n.size[1] + LiteGraph.NODE_TITLE_HEIGHT]; }",
        node,
    )
    rect = fe.js("() => app.canvas.canvas.getBoundingClientRect().toJSON()")
    fe.page.screenshot(
        path=str(SCREENSHOT), clip={"x": rect["x"] + box[0] - 8, "y": rect["y"] + box[1] - 8, "width": box[2] + 16, "height": box[3] + 16}
    )
    shot = np.asarray(Image.open(SCREENSHOT).convert("RGB"), float)
    assert shot.shape[0] > 300 and shot.std() > 10
    assert not fe.errors, fe.errors


def test_a_region_outlined_from_a_mask_is_added_to_the_canvas_editor(fe):
    """Pakati Region From Mask, run by the front end's own queue: its button puts the outlined region into
    the Pakati Canvas that feeds it (the editor shows it, the Region JSON holds it) and bypasses itself."""
    fe.fresh()
    fe.watch()
    target = add_canvas(fe, 512, 384)
    source = add_canvas(fe, 512, 384, pos=(120, 700), clear=False)
    rect = {
        "version": 1,
        "width": 512,
        "height": 384,
        "regions": [{"id": "shirt", "shape": "rect", "points": [[100, 80], [300, 260]], "prompt": "a shirt"}],
    }
    node = fe.js(
        """([target, source, doc]) => {
            const src = app.graph.getNodeById(source);
            const w = src.widgets.find(x => x.name === 'regions');
            w.value = JSON.stringify(doc); w.callback?.(w.value);
            const add = (type, pos) => { const n = LiteGraph.createNode(type); n.pos = pos; app.graph.add(n); return n; };
            const mask = add('PakatiRegionMask', [700, 700]);
            const outline = add('PakatiRegionFromMask', [700, 140]);
            const preview = add('PakatiCanvasPreview', [1050, 140]);
            src.connect(0, mask, 0);
            app.graph.getNodeById(target).connect(0, outline, outline.findInputSlot('canvas'));
            mask.connect(0, outline, outline.findInputSlot('mask'));
            outline.connect(0, preview, 0);
            outline.widgets.find(x => x.name === 'prompt').value = 'a shirt printed with apples';
            outline.widgets.find(x => x.name === 'name').value = 'shirt';
            app.canvas.setDirty(true, true);
            return outline.id;
        }""",
        [target, source, rect],
    )
    fe.js("async () => { await app.queuePrompt(0, 1); }")
    fe.page.wait_for_function(f"() => !!app.graph.getNodeById({node}).pakatiRegion", timeout=120_000)
    assert regions(fe, target)["regions"] == [], "nothing is added before the button is pressed"
    # press the button where the front end draws it on the graph canvas
    x, y = fe.js(
        """(id) => {
            const n = app.graph.getNodeById(id);
            const b = n.widgets.find(w => w.type === 'button');
            const rect = app.canvas.canvas.getBoundingClientRect();
            const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] / 2, n.pos[1] + (b.last_y ?? b.y) + 10]);
            return [rect.left + cx, rect.top + cy];
        }""",
        node,
    )
    fe.page.mouse.click(x, y)
    fe.page.wait_for_function(f"() => app.graph.getNodeById({node}).mode === 4")
    doc = regions(fe, target)
    assert [r["name"] for r in doc["regions"]] == ["shirt"] and doc["regions"][0]["prompt"] == "a shirt printed with apples"
    xs = [p[0] for p in doc["regions"][0]["points"]]
    ys = [p[1] for p in doc["regions"][0]["points"]]
    assert abs(min(xs) - 100) <= 2 and abs(max(xs) - 300) <= 2 and abs(min(ys) - 80) <= 2 and abs(max(ys) - 260) <= 2
    assert fe.js("(id) => app.graph.getNodeById(id).pakatiEditor.doc.regions.length", target) == 1, "the editor shows it"
    assert not fe.errors and not fe.toasts()
