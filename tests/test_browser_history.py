"""The "Pakati" sidebar tab in the real front end (Chromium): a run made through the server is
listed with its thumbnail, score and parameters, and its canvas loads into a PakatiCanvas node."""
from __future__ import annotations

import json

import pytest

from store_helpers import REPO, call, put_inputs, queue_as, refine_prompt

SCREENSHOT = REPO / "docs" / "history.png"  # the README's picture of the tab, made by this test

pytestmark = [pytest.mark.host, pytest.mark.browser]

CANVAS_REGIONS = "() => { const n = app.graph._nodes.find((n) => n.type === 'PakatiCanvas'); return n ? [n.id, n.widgets.find((w) => w.name === 'regions').value, n.pakatiEditor.doc.regions.length] : null; }"


def test_sidebar_lists_the_run_and_loads_its_canvas(comfy_server, fe):
    put_inputs(comfy_server.base)
    pid = queue_as(comfy_server, refine_prompt(400), None)
    comfy_server.wait(pid, timeout=600)
    run = call(comfy_server, "GET", "/pakati/history?limit=1")[1]["runs"][0]
    assert run["prompt_id"] == pid

    fe.watch()
    page = fe.page
    page.locator(".pakati-history-tab-button").click()
    item = page.locator(f'.pakati-history-item[data-run-id="{run["id"]}"]')
    item.wait_for()
    assert page.locator(".pakati-history-item").first.get_attribute("data-run-id") == str(run["id"])  # newest first
    page.wait_for_function(f"() => document.querySelector('.pakati-history-item[data-run-id=\"{run['id']}\"] img')?.naturalWidth > 0")
    page.locator(".pakati-history").screenshot(path=str(SCREENSHOT))
    text = item.inner_text()
    assert f"score {run['scores']['overall']:.3f}" in text and "euler/normal" in text and "1 steps" in text and "1 regions" in text

    # an empty graph: the button creates a PakatiCanvas holding the run's canvas
    fe.js("() => app.graph.clear()")
    item.locator(".pakati-history-load").click()
    node_id, regions, shown = fe.js(CANVAS_REGIONS)
    assert json.loads(regions) == run["canvas"] and shown == len(run["canvas"]["regions"]) == 1
    assert f"into PakatiCanvas #{node_id}" in page.locator(".pakati-history-status").inner_text()

    # a graph with a PakatiCanvas already: that node receives the canvas (no second node)
    fe.js("""() => { const n = app.graph._nodes.find((n) => n.type === 'PakatiCanvas');
                     n.widgets.find((w) => w.name === 'regions').value = JSON.stringify({version: 1, width: 1024, height: 1024, regions: []});
                     n.pakatiEditor.load(); }""")
    item.locator(".pakati-history-load").click()
    assert fe.js("() => app.graph._nodes.filter((n) => n.type === 'PakatiCanvas').length") == 1
    assert json.loads(fe.js(CANVAS_REGIONS)[1]) == run["canvas"]
    assert fe.errors == [], fe.errors
