"""PakatiPlan in the real front end: queued from the page, its plan JSON shows on the node, and the
plan's layout opens in a new Pakati Canvas whose region editor starts from it."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.host, pytest.mark.browser]

GOAL = "a red apple on the left of a blue cup on a wooden table"


def test_plan_text_on_the_node_and_layout_opens_in_the_region_editor(fe, comfy_server):
    fe.open()
    fe.watch()
    plan_id = fe.js(
        """(goal) => {
        app.graph.clear();
        const plan = LiteGraph.createNode('PakatiPlan');
        plan.pos = [60, 60];
        app.graph.add(plan);
        const set = (n, name, v) => { n.widgets.find(w => w.name === name).value = v; };
        set(plan, 'goal', goal); set(plan, 'width', 512); set(plan, 'height', 384); set(plan, 'remember', false);
        const prev = LiteGraph.createNode('PakatiCanvasPreview');
        prev.pos = [560, 60];
        app.graph.add(prev);
        plan.connect(plan.outputs.findIndex(o => o.name === 'canvas'), prev, 0);
        return plan.id;
    }""",
        GOAL,
    )
    fe.js("async () => { await app.queuePrompt(0, 1); }")
    fe.page.wait_for_function("(id) => (app.graph.getNodeById(id).pakatiText?.value || '').length > 0", arg=plan_id, timeout=120_000)
    shown = json.loads(fe.js("(id) => app.graph.getNodeById(id).pakatiText.value", plan_id))
    assert shown["goal"] == GOAL and shown["canvas"]["width"] == 512
    want = [r["id"] for r in shown["canvas"]["regions"]]
    assert {"apple", "cup", "table"} <= set(want)
    # the context-menu entry makes a PakatiCanvas whose editor holds the planned regions
    canvas_id = fe.js(
        """(id) => {
        const node = app.graph.getNodeById(id);
        const options = [];
        node.getExtraMenuOptions(app.canvas, options);
        const entry = options.find(o => o && o.content === 'Edit this layout in a new Pakati Canvas');
        const before = new Set(app.graph._nodes.map(n => n.id));
        entry.callback();
        return app.graph._nodes.find(n => !before.has(n.id)).id;
    }""",
        plan_id,
    )
    got = fe.js("(id) => app.graph.getNodeById(id).pakatiEditor.doc.regions.map(r => r.id)", canvas_id)
    assert got == want
    widgets = fe.js(
        "(id) => Object.fromEntries(app.graph.getNodeById(id).widgets.filter(w => ['width', "
        "'height'].includes(w.name)).map(w => [w.name, w.value]))",
        canvas_id,
    )
    assert widgets == {"width": 512, "height": 384}
    # the text box is not serialised: the saved workflow carries the node's real widgets only
    saved = fe.js("(id) => JSON.stringify(app.graph.serialize().nodes.find(n => n.id === id).widgets_values)", plan_id)
    assert "pakati_text" not in saved and len(json.loads(saved)) == 8  # goal, width, height, planner, model, seed, control, remember
    assert not fe.errors, "\n".join(fe.errors)
