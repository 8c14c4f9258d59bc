"""Re-save the UI-format templates (workflows/*.json) through the real ComfyUI front end.

    python tests/save_templates.py            # load each template, save app.graph.serialize() back
    python tests/save_templates.py --check    # only print the toasts each template raises
    python tests/save_templates.py --from-api NAME --note "text"   # build workflows/NAME.json from its API twin

``--from-api`` lets the front end itself lay out the API twin (``app.loadApiJson``), adds the
explaining Note at the top left, and saves the front end's serialisation as the UI template.

    python tests/save_templates.py --tidy NAME  # lay NAME out again (columns by link depth), then save

``--tidy`` places the nodes in columns by their depth along the links (a node with no inputs
goes just left of its first consumer), stacks each column in the order of its inputs, puts the
notes on top of one of the first columns, wraps long chains into bands (whichever gives the
largest view), and stores a view (``extra.ds``) that shows every node inside the ``FrontEnd``
viewport (1400×1000), below the workflow tabs and above the zoom controls: what
tests/browser/test_template_layout.py checks (it also wants a scale at which the front end still
draws the nodes' text).

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
from ipadapter_pack import server_packs  # noqa: E402  (tests/ must be on sys.path first, see above)


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


TIDY_JS = """
([margin, top, bottom]) => {
  const g = app.graph, TH = LiteGraph.NODE_TITLE_HEIGHT, GAP_X = 40, GAP_Y = 24;
  const isNote = n => ['Note', 'MarkdownNote'].includes(n.type);
  const link = id => (g.links instanceof Map ? g.links.get(id) : g.links[id]);
  const sources = n => (n.inputs || []).filter(i => i.link != null).map(i => link(i.link)).filter(Boolean)
                                       .map(l => g.getNodeById(l.origin_id)).filter(Boolean);
  const consumers = n => (n.outputs || []).flatMap(o => (o.links || []).map(link)).filter(Boolean)
                                          .map(l => g.getNodeById(l.target_id)).filter(Boolean);
  const nodes = g._nodes.filter(n => !isNote(n)), notes = g._nodes.filter(isNote);
  const depth = new Map();
  const d = n => {
    if (depth.has(n.id)) return depth.get(n.id);
    depth.set(n.id, 0);
    const v = Math.max(-1, ...sources(n).map(d)) + 1;
    depth.set(n.id, v);
    return v;
  };
  nodes.forEach(d);
  for (const n of nodes) {  // a node without inputs sits just left of its first consumer
    const c = consumers(n);
    if (!sources(n).length && c.length) depth.set(n.id, Math.max(0, Math.min(...c.map(x => depth.get(x.id))) - 1));
  }
  const cols = [];
  for (const n of nodes) (cols[depth.get(n.id)] ??= []).push(n);
  const columns = cols.filter(Boolean);
  // [x, y - title, w, h + title], what getBounding() gives once the canvas has drawn (it is cached until then)
  const box = n => [n.pos[0], n.pos[1] - TH, n.size[0], n.size[1] + TH];
  const placed = new Map();  // node id -> y within its column, for the order of the next column
  for (const col of columns) {
    const key = n => {
      const ys = sources(n).filter(s => placed.has(s.id)).map(s => placed.get(s.id));
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : n.pos[1];
    };
    col.sort((a, b) => key(a) - key(b));
    let y = 0;
    for (const n of col) { placed.set(n.id, y); y += box(n)[3] + GAP_Y; }
  }
  const r = app.canvas.canvas.getBoundingClientRect();
  const vw = r.width - 2 * margin, vh = r.height - top - bottom - 2 * margin;
  // The notes go on top of one of the first columns; long chains wrap into bands (rows of columns,
  // read left to right, then the next band): whichever gives the largest view scale.
  let best = null;
  for (let noteCol = 0; noteCol < Math.min(3, columns.length); noteCol++) {
    const stacks = columns.map((col, ci) => {
      const stack = ci === noteCol ? [...notes, ...col] : col;
      return {stack, width: Math.max(...stack.map(n => box(n)[2])),
              height: stack.reduce((a, n) => a + box(n)[3] + GAP_Y, -GAP_Y)};
    });
    const total = stacks.reduce((a, s) => a + s.width + GAP_X, 0);
    for (let nb = 1; nb <= Math.min(3, stacks.length); nb++) {
      const bands = [[]];
      let acc = 0;
      for (const s of stacks) {
        if (acc >= total / nb * bands.length && bands.length < nb) bands.push([]);
        bands[bands.length - 1].push(s);
        acc += s.width + GAP_X;
      }
      const w = Math.max(...bands.map(b => b.reduce((a, s) => a + s.width + GAP_X, -GAP_X)));
      const h = bands.reduce((a, b) => a + Math.max(...b.map(s => s.height)) + 2 * GAP_Y, -2 * GAP_Y);
      const scale = Math.min(vw / w, vh / h);
      if (!best || scale > best.scale + 1e-9) best = {scale, bands};
    }
  }
  let by = 0;
  for (const band of best.bands) {
    let x = 0;
    for (const s of band) {
      let y = by;
      for (const n of s.stack) { n.pos = [x, y + TH]; y += box(n)[3] + GAP_Y; }
      x += s.width + GAP_X;
    }
    by += Math.max(...band.map(s => s.height)) + 2 * GAP_Y;
  }
  const bs = g._nodes.map(box);
  const x0 = Math.min(...bs.map(b => b[0])), y0 = Math.min(...bs.map(b => b[1]));
  const x1 = Math.max(...bs.map(b => b[0] + b[2])), y1 = Math.max(...bs.map(b => b[1] + b[3]));
  const scale = Math.min(1, vw / (x1 - x0), vh / (y1 - y0));
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [margin / scale - x0, (top + margin) / scale - y0];
  g.extra = {...(g.extra || {}), ds: {scale, offset: [...app.canvas.ds.offset]}};
  app.canvas.setDirty(true, true);
  return {scale, width: x1 - x0, height: y1 - y0};
}
"""

# What the front end lays over the canvas: the workflow tabs at the top, the zoom controls at the bottom.
TOP_INSET, BOTTOM_INSET = 48, 64


def tidy(fe, margin: int = 24) -> dict:
    """Lay the loaded workflow out again in the page (see the module docstring); returns the view's scale and extent."""
    return fe.js(TIDY_JS, [margin, TOP_INSET, BOTTOM_INSET])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the toasts only; write nothing")
    parser.add_argument("--from-api", metavar="NAME", help="build workflows/NAME.json from workflows/api/NAME.json")
    parser.add_argument("--note", default="", help="with --from-api: the Note's text (what to change before running)")
    parser.add_argument("--tidy", action="store_true", help="lay the nodes out again and store a view that shows them all")
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
                fe.js(
                    """async ([api, note]) => {
                    await app.loadApiJson(api, 'template');
                    const n = LiteGraph.createNode('Note');
                    n.widgets[0].value = note;
                    n.pos = [20, -280];
                    n.size = [560, 240];
                    app.graph.add(n);
                }""",
                    [api, args.note],
                )
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
                if args.tidy and not args.check:
                    print(f"  tidied: {tidy(fe)}")
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
