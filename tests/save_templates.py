"""Re-save the UI-format templates (workflows/*.json) through the real ComfyUI front end.

    python tests/save_templates.py            # load each template, save app.graph.serialize() back
    python tests/save_templates.py --check    # only print the toasts each template raises
    python tests/save_templates.py --from-api NAME --note "text"   # build workflows/NAME.json from its API twin

``--from-api`` lets the front end itself lay out the API twin (``app.loadApiJson``), adds the
explaining Note at the top left, and saves the front end's serialisation as the UI template.

Each template is loaded in a fresh browser context (the front end restores the last workflow
from local storage) with ``app.loadGraphData``, and the front end's own serialisation is written
back, so the files hold exactly what the front end's zod schema accepts (arrays, objects and
numbers where it wants them, never null). Needs the ComfyUI host and Chromium, like the browser tests.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from browser import FrontEnd, browser_missing_reason  # noqa: E402
from comfy_client import ComfyServer  # noqa: E402
from conftest import HOST, HOST_NODES, NO_HOST_REASON, REPO  # noqa: E402
from ipadapter_pack import server_packs


def drop_nulls(value):
    """The workflow without object fields that are null: files saved through Playwright's object
    transfer carry ``undefined`` as null, which the front end keeps and its schema refuses; left
    out, the front end fills in its own defaults (including the nulls it does want, such as an
    unconnected input's ``link``)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the toasts only; write nothing")
    parser.add_argument("--from-api", metavar="NAME", help="build workflows/NAME.json from workflows/api/NAME.json")
    parser.add_argument("--note", default="", help="with --from-api: the Note's text (what to change before running)")
    parser.add_argument("names", nargs="*", help="template names (default: every workflows/*.json)")
    args = parser.parse_args()
    if HOST is None or browser_missing_reason():
        print(NO_HOST_REASON if HOST is None else browser_missing_reason())
        return 2
    paths = [REPO / "workflows" / f"{n}.json" for n in args.names] or sorted((REPO / "workflows").glob("*.json"))
    if args.from_api:
        paths = [REPO / "workflows" / f"{args.from_api}.json"]
    with tempfile.TemporaryDirectory() as base:
        packs = {"pakati": REPO, "pakati_test_nodes": HOST_NODES / "pakati_test_nodes", **server_packs(HOST, Path(base))}
        server = ComfyServer(HOST, Path(base), packs=packs)
        server.start()
        fe = FrontEnd(server.url)
        try:
            if args.from_api:
                if not args.note.strip():
                    parser.error("--from-api needs a --note explaining what to change")
                api = json.loads((REPO / "workflows" / "api" / f"{args.from_api}.json").read_text())
                fe.fresh()
                fe.close_toasts()
                fe.js("""async ([api, note]) => {
                    await app.loadApiJson(api, 'template');
                    const n = LiteGraph.createNode('Note');
                    n.widgets[0].value = note;
                    n.pos = [20, -280];
                    n.size = [560, 240];
                    app.graph.add(n);
                }""", [api, args.note])
                fe.page.wait_for_timeout(500)
                graph = json.loads(fe.js("() => JSON.stringify(app.graph.serialize())"))
                paths[0].write_text(json.dumps(drop_nulls(graph), indent=2, allow_nan=False) + "\n")
            for path in paths:
                fe.fresh()
                fe.close_toasts()
                wf = json.loads(path.read_text())
                fe.load_workflow(wf if args.check else drop_nulls(wf))
                fe.page.wait_for_timeout(500)
                toasts = fe.toasts()
                print(f"{path.name}: {len(toasts)} toast(s)" + "".join(f"\n  - {t[:400]}" for t in toasts))
                if not args.check:
                    # JSON.stringify in the page: Playwright would turn undefined fields into null
                    graph = json.loads(fe.js("() => JSON.stringify(app.graph.serialize())"))
                    path.write_text(json.dumps(graph, indent=2, allow_nan=False) + "\n")
        finally:
            fe.close()
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
