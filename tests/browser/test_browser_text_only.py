"""Issue 20 in the real front end (headless Chromium): no script runs from a string Pakati stores or shows.

1. A template named like markup is refused at import with a clear 400, and a row an earlier build
   stored under such a name reaches Pakati Load Template's dropdown only under a safe display name:
   opening the dropdown (built by the front end with innerHTML) runs nothing.
2. Pakati's own front-end extension stays text-only for every string it shows: a payload in a region
   name and prompt (canvas editor), a history entry (sidebar), an error message (sidebar) and a plan
   text box is shown as text; no element is made from it and no handler runs."""

from __future__ import annotations

import json

import pytest

from pakati_core.store import open_store
from store_helpers import call

pytestmark = [pytest.mark.host, pytest.mark.browser]

MARK = "window.__pakati_xss = (window.__pakati_xss || 0) + 1"
PAYLOAD = f'<img src=x onerror="{MARK}"><script>{MARK}</script>'
XSS_NAME = "<img src=x onerror=window.__pakati_xss=1>"
INJECTED = "() => [document.querySelectorAll('img[src=\"x\"], script:not([src]):not([type])').length, window.__pakati_xss ?? 0]"


def database(comfy_server):
    call(comfy_server, "GET", "/pakati/templates")  # the server made and migrated it
    return open_store(f"sqlite:///{comfy_server.base / 'user' / 'pakati' / 'pakati.db'}")


def injected(fe) -> tuple[int, int]:
    fe.page.wait_for_timeout(400)  # an <img src=x> would have failed to load and run its onerror by now
    baseline = fe.js("() => window.__pakati_scripts_at_start ?? 0")
    count, ran = fe.js(INJECTED)
    return count - baseline, ran


def test_a_markup_name_is_refused_at_import_and_an_old_one_reaches_the_dropdown_only_as_safe_text(comfy_server, fe):
    fe.fresh()
    fe.js("() => { window.__pakati_scripts_at_start = document.querySelectorAll('img[src=\"x\"], script:not([src]):not([type])').length; }")
    fe.watch()
    doc = {
        "format": "pakati.template",
        "version": 1,
        "name": XSS_NAME,
        "description": "",
        "canvas": {"version": 1, "width": 64, "height": 64, "regions": []},
        "settings": {},
    }
    status, body = fe.js(
        """async (doc) => {
        const r = await fetch('/pakati/templates/import',
                              {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: JSON.stringify(doc)});
        return [r.status, await r.json()];
    }""",
        doc,
    )
    assert status == 400 and body["field"] == "name" and "letters, digits, spaces" in body["error"], body
    assert XSS_NAME not in call(comfy_server, "GET", "/pakati/templates")[1]["templates"]

    store = database(comfy_server)  # a row an earlier build wrote under that name (no validation then)
    from sqlalchemy import text

    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM templates WHERE owner = 'default' AND name = :n"), {"n": XSS_NAME})
        conn.execute(
            text(
                "INSERT INTO templates (owner, name, description, canvas, settings, created_at, updated_at) "
                "VALUES ('default', :n, '', :c, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"n": XSS_NAME, "c": json.dumps(doc["canvas"])},
        )
    shown = "_img src_x onerror_window.__pakati_xss_1_"
    assert shown in call(comfy_server, "GET", "/pakati/templates")[1]["templates"]

    fe.js("async () => { await app.refreshComboInNodes(); }")
    node = fe.js("""() => {
        app.graph.clear();
        const n = LiteGraph.createNode('PakatiLoadTemplate');
        n.pos = [200, 200];
        app.graph.add(n);
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [0, 0];
        app.canvas.setDirty(true, true);
        return n.id;
    }""")
    options = fe.js("(id) => app.graph.getNodeById(id).widgets.find(w => w.name === 'name').options.values", node)
    assert shown in options and XSS_NAME not in options
    fe.page.wait_for_timeout(300)
    x, y = fe.js(
        """(id) => {
        const n = app.graph.getNodeById(id);
        const w = n.widgets.find(w => w.name === 'name');
        const rect = app.canvas.canvas.getBoundingClientRect();
        const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] / 2, n.pos[1] + (w.last_y ?? w.y) + 10]);
        return [rect.left + cx, rect.top + cy];
    }""",
        node,
    )
    fe.page.mouse.click(x, y)
    menu = fe.page.locator(".litecontextmenu")
    menu.wait_for()
    entries = menu.locator(".litemenu-entry").all_inner_texts()
    assert shown in entries, entries
    assert menu.locator("img, script").count() == 0
    assert injected(fe) == (0, 0), "a script ran from a template name"
    fe.page.keyboard.press("Escape")
    assert fe.errors == [], fe.errors


def test_the_extension_shows_every_string_as_text(comfy_server, fe):
    store = database(comfy_server)
    canvas = {
        "version": 1,
        "width": 256,
        "height": 256,
        "regions": [
            {"id": "r1", "name": PAYLOAD, "shape": "rect", "points": [[16, 16], [200, 200]], "prompt": PAYLOAD, "negative": PAYLOAD}
        ],
    }
    run_id = store.runs.add(
        PAYLOAD,
        canvas=canvas,
        prompts={"base": PAYLOAD},
        params={"sampler": PAYLOAD, "scheduler": PAYLOAD, "steps": 3},
        model_name=PAYLOAD,
        scores={"overall": 0.5, "stop_reason": PAYLOAD},
    )
    fe.fresh()
    fe.js("() => { window.__pakati_scripts_at_start = document.querySelectorAll('img[src=\"x\"], script:not([src]):not([type])').length; }")
    fe.watch()
    page = fe.page

    # a history entry, in the sidebar
    page.locator(".pakati-history-tab-button").click()
    item = page.locator(f'.pakati-history-item[data-run-id="{run_id}"]')
    item.wait_for()
    text = item.inner_text()
    assert text.count(PAYLOAD) >= 3, text  # node, stop reason, model name (and the sampler) as the characters they are
    assert item.locator("script, img[src='x']").count() == 0
    assert injected(fe) == (0, 0)

    # its region name and prompt, in the canvas editor
    fe.js("() => app.graph.clear()")
    item.locator(".pakati-history-load").click()
    values = fe.js("""() => { const n = app.graph._nodes.find((n) => n.type === 'PakatiCanvas');
                              const boxes = document.querySelectorAll('.pakati-name, .pakati-prompt, .pakati-negative');
                              return [...boxes].map((e) => e.value); }""")
    assert values.count(PAYLOAD) == 3, values
    fe.page.wait_for_timeout(300)  # the editor has drawn the region (its name goes to the canvas with fillText)
    assert injected(fe) == (0, 0)

    # an error message from the server, in the sidebar
    page.route(
        "**/pakati/history**", lambda route: route.fulfill(status=503, content_type="application/json", body=json.dumps({"error": PAYLOAD}))
    )
    page.locator(".pakati-history-tab-button").click()  # close
    page.locator(".pakati-history-tab-button").click()  # open again: a new request, answered with the error
    status = page.locator(".pakati-history-status")
    page.wait_for_function("() => document.querySelector('.pakati-history-status')?.textContent.startsWith('Could not load')")
    assert status.inner_text() == f"Could not load the history: {PAYLOAD}"
    page.unroute("**/pakati/history**")
    assert injected(fe) == (0, 0)

    # a plan node's text box (what PakatiPlan / PakatiAlignmentCheck show after a run)
    shown = fe.js(
        """(payload) => {
        const n = LiteGraph.createNode('PakatiPlan');
        app.graph.add(n);
        n.onExecuted({text: [payload]});
        return n.pakatiText.value;
    }""",
        PAYLOAD,
    )
    assert shown == PAYLOAD
    assert injected(fe) == (0, 0)
    assert fe.errors == [], fe.errors
