"""The "Pakati" sidebar tab in the real front end (Chromium): runs made through the server (a
refinement, and the regional template saved by Pakati Save Image) are listed with thumbnail, score and
parameters; a run's canvas loads into a PakatiCanvas node, and an image generated from that canvas
by the front end's own queue is kept with the run as its parent."""

from __future__ import annotations

import json
import time

import pytest

from browser import doc_picture
from store_helpers import call, node_of, put_inputs, queue_as, refine_prompt, regional_prompt

SCREENSHOT = doc_picture("history.png")  # the README's picture of the tab, made by this test

pytestmark = [pytest.mark.host, pytest.mark.browser]

CANVAS_REGIONS = (
    "() => { const n = app.graph._nodes.find((n) => n.type === 'PakatiCanvas'); return n ? "
    "[n.id, n.widgets.find((w) => w.name === 'regions').value, "
    "n.pakatiEditor.doc.regions.length] : null; }"
)


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
    fe.js(
        """() => { const n = app.graph._nodes.find((n) => n.type === 'PakatiCanvas');
                     n.widgets.find((w) => w.name === 'regions').value = """
        """JSON.stringify({version: 1, width: 1024, height: 1024, regions: []});
                     n.pakatiEditor.load(); }"""
    )
    item.locator(".pakati-history-load").click()
    assert fe.js("() => app.graph._nodes.filter((n) => n.type === 'PakatiCanvas').length") == 1
    assert json.loads(fe.js(CANVAS_REGIONS)[1]) == run["canvas"]
    assert fe.errors == [], fe.errors


def test_sidebar_lists_a_regional_run_and_a_run_made_from_its_canvas(comfy_server, fe):
    prompt = regional_prompt(31337)
    pid = queue_as(comfy_server, prompt, None)  # the regional template through the server's /prompt
    comfy_server.wait(pid, timeout=600)
    (run,) = [r for r in call(comfy_server, "GET", "/pakati/history?limit=20")[1]["runs"] if r["prompt_id"] == pid]
    assert run["node"] == "PakatiSaveImage"

    fe.fresh()
    fe.watch()
    page = fe.page
    page.locator(".pakati-history-tab-button").click()
    item = page.locator(f'.pakati-history-item[data-run-id="{run["id"]}"]')
    item.wait_for()
    page.wait_for_function(f"() => document.querySelector('.pakati-history-item[data-run-id=\"{run['id']}\"] img')?.naturalWidth > 0")
    text = item.inner_text()
    assert "PakatiSaveImage" in text and "seed 31337" in text and "dpmpp_2m/karras" in text and "2 steps" in text
    assert "cfg 6" in text and "3 regions" in text and "no score" in text

    # the regional graph in the front end (its API twin, loaded by the front end), the run's canvas loaded into
    # its PakatiCanvas, then queued by the front end itself: the new run's parent is the loaded run
    graph = json.loads(json.dumps(prompt))
    graph[node_of(graph, "PakatiCanvas")]["inputs"]["regions"] = json.dumps({"version": 1, "width": 128, "height": 128, "regions": []})
    fe.js("(p) => app.loadApiJson(p, 'regional.json')", graph)
    item.locator(".pakati-history-load").click()
    canvas_id = int(node_of(graph, "PakatiCanvas"))
    assert fe.js("(id) => app.graph.getNodeById(id).properties.pakati_run", canvas_id) == run["id"]
    fe.js("async () => { await app.queuePrompt(0, 1); }")
    deadline, child = time.time() + 600, None
    while child is None and time.time() < deadline:
        child = next((r for r in call(comfy_server, "GET", "/pakati/history?limit=20")[1]["runs"] if r["parent_id"] == run["id"]), None)
        time.sleep(0.5)
    assert child is not None, "the front end's run was not kept with its parent"
    assert child["canvas"] == run["canvas"] and child["node"] == "PakatiSaveImage"
    listed = page.locator(f'.pakati-history-item[data-run-id="{child["id"]}"]')
    listed.wait_for()  # the tab reloads when the prompt finishes
    assert f"from #{run['id']}" in listed.inner_text()
    assert fe.errors == [], fe.errors
