// Pakati sidebar tab: the caller's recent runs (GET /pakati/history) with thumbnails, scores and
// parameters, and a button that loads a run's canvas into a PakatiCanvas node.
// Requests go through api.fetchApi, so under --multi-user the front end's comfy-user header is
// sent and the server answers with this user's runs only.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const TAB_ID = "pakati-history";
const PAGE = 20;

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "className") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of [].concat(children)) {
    if (c == null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function fmtScore(scores) {
  const s = scores?.overall;
  return typeof s === "number" ? `score ${s.toFixed(3)}` : "no score";
}

function fmtParams(run) {
  const p = run.params || {};
  const parts = [];
  if (run.seeds?.length) parts.push(`seed ${run.seeds.length > 3 ? run.seeds.slice(0, 3).join(", ") + "…" : run.seeds.join(", ")}`);
  if (p.sampler_name) parts.push(p.sampler_name + (p.scheduler ? `/${p.scheduler}` : ""));
  if (p.steps != null) parts.push(`${p.steps} steps`);
  if (p.cfg != null) parts.push(`cfg ${p.cfg}`);
  if (p.strategy) parts.push(p.strategy);
  if (p.max_passes != null) parts.push(`${p.max_passes} passes max`);
  return parts.join(" · ");
}

/** Put a run's canvas into a PakatiCanvas node: the selected one, else the first, else a new one. */
export function loadRunCanvas(run) {
  if (!run?.canvas) throw new Error(`run #${run?.id} has no canvas`);
  const graph = app.graph;
  const selected = Object.values(app.canvas?.selected_nodes || {}).find((n) => n.type === "PakatiCanvas");
  let node = selected || graph._nodes.find((n) => n.type === "PakatiCanvas");
  if (!node) {
    node = LiteGraph.createNode("PakatiCanvas");
    const ds = app.canvas?.ds;
    node.pos = ds ? [-ds.offset[0] + 80, -ds.offset[1] + 80] : [80, 80];
    graph.add(node);
  }
  const widget = (name) => node.widgets.find((w) => w.name === name);
  widget("width").value = run.canvas.width;
  widget("height").value = run.canvas.height;
  widget("regions").value = JSON.stringify(run.canvas);
  // Pakati Save Image reads this from the saved workflow: the next run's parent is this run
  node.properties = { ...(node.properties || {}), pakati_run: run.id };
  node.pakatiEditor?.load();
  node.setDirtyCanvas?.(true, true);
  graph.setDirtyCanvas?.(true, true);
  app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
  return node;
}

class HistoryPanel {
  constructor(root) {
    this.root = root;
    this.runs = [];
    this.total = 0;
    this.status = el("div", { className: "pakati-history-status", style: { fontSize: "12px", opacity: "0.8", margin: "4px 0" } });
    this.list = el("div", { className: "pakati-history-list", style: { display: "flex", flexDirection: "column", gap: "8px" } });
    this.more = el("button", { className: "pakati-history-more p-button p-button-sm p-button-text", onclick: () => this.load(true) }, "More");
    const refresh = el("button", { className: "pakati-history-refresh p-button p-button-sm p-button-text", title: "Reload the list", onclick: () => this.load(false) }, "Refresh");
    root.replaceChildren(
      el("div", { className: "pakati-history", style: { padding: "8px", overflowY: "auto", height: "100%", boxSizing: "border-box" } }, [
        el("div", { style: { display: "flex", alignItems: "center", justifyContent: "space-between" } }, [
          el("h3", { style: { margin: "4px 0" } }, "Pakati runs"),
          refresh,
        ]),
        this.status,
        this.list,
        this.more,
      ]),
    );
    this.onExecuted = () => this.load(false);
    api.addEventListener("execution_success", this.onExecuted);
    this.load(false);
  }

  dispose() {
    api.removeEventListener("execution_success", this.onExecuted);
  }

  async load(append) {
    const offset = append ? this.runs.length : 0;
    let body;
    try {
      const res = await api.fetchApi(`/pakati/history?limit=${PAGE}&offset=${offset}`);
      body = await res.json();
      if (!res.ok) throw new Error(body?.error || `HTTP ${res.status}`);
    } catch (e) {
      this.status.textContent = `Could not load the history: ${e.message}`;
      return;
    }
    this.runs = append ? this.runs.concat(body.runs) : body.runs;
    this.total = body.total;
    this.render();
  }

  render() {
    this.status.textContent = this.total ? `${this.runs.length} of ${this.total} runs` : "No runs yet: images saved by Pakati Save Image and runs of Pakati Refine appear here.";
    this.list.replaceChildren(...this.runs.map((run) => this.item(run)));
    this.more.style.display = this.runs.length < this.total ? "" : "none";
  }

  item(run) {
    const load = el("button", {
      className: "pakati-history-load p-button p-button-sm",
      title: run.canvas ? "Load this run's canvas into a PakatiCanvas node" : "This run has no canvas",
      onclick: () => {
        try {
          const node = loadRunCanvas(run);
          this.status.textContent = `Loaded the canvas of run #${run.id} into PakatiCanvas #${node.id}`;
        } catch (e) {
          this.status.textContent = e.message;
        }
      },
    }, "Load canvas");
    if (!run.canvas) load.setAttribute("disabled", "");
    const thumb = run.thumbnail
      ? el("img", { className: "pakati-history-thumb", src: run.thumbnail, alt: `run ${run.id}`, style: { width: "72px", height: "72px", objectFit: "cover", borderRadius: "4px" } })
      : el("div", { className: "pakati-history-thumb", style: { width: "72px", height: "72px", background: "#333", borderRadius: "4px" } });
    const when = run.created_at ? new Date(run.created_at).toLocaleString() : "";
    const regions = run.canvas?.regions?.length;
    return el("div", { className: "pakati-history-item", "data-run-id": String(run.id), style: { display: "flex", gap: "8px", alignItems: "flex-start" } }, [
      thumb,
      el("div", { style: { flex: "1", minWidth: "0", fontSize: "12px" } }, [
        el("div", { style: { fontWeight: "bold" } }, `#${run.id} ${run.node}`),
        el("div", { className: "pakati-history-score" }, fmtScore(run.scores) + (run.scores?.stop_reason ? ` (${run.scores.stop_reason})` : "")),
        el("div", { className: "pakati-history-params", style: { opacity: "0.85", wordBreak: "break-word" } }, fmtParams(run)),
        el("div", { style: { opacity: "0.7" } }, [run.model_name || "", regions != null ? ` · ${regions} regions` : "", when ? ` · ${when}` : "",
                                                  run.parent_id != null ? ` · from #${run.parent_id}` : ""].join("")),
        load,
      ]),
    ]);
  }
}

app.registerExtension({
  name: "pakati.history",
  async setup() {
    if (!app.extensionManager?.registerSidebarTab) return; // an older front end: no sidebar API
    let panel = null;
    app.extensionManager.registerSidebarTab({
      id: TAB_ID,
      icon: "pi pi-images",
      title: "Pakati",
      tooltip: "Pakati: recent runs, their scores and canvases",
      type: "custom",
      render: (root) => {
        panel?.dispose();
        panel = new HistoryPanel(root);
      },
      destroy: () => {
        panel?.dispose();
        panel = null;
      },
    });
  },
});
