// Pakati region editor: an interactive polygon/rect editor drawn on every PakatiCanvas node.
//
// The regions live as Region JSON v1 in the node's `regions` STRING widget (so they travel in the
// workflow, the API prompt and the cache key); the editor is a non-serialised DOM widget that
// reads that JSON and writes it back after every edit (the KJNodes Spline Editor pattern).
// Every editor is an instance owned by its node: no state is shared between two canvas nodes.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPE = "PakatiCanvas";
const OVERLAY_TYPE = "PakatiCanvasPreview";
const GRID_CHOICES = [0, 8, 16, 32, 64];
const HANDLE_PX = 6; // vertex handle radius on screen
const CLOSE_PX = 10; // clicking this close to the first point closes a polygon
const MAX_REGIONS = 32;
const TOOLBAR_PX = 30;
const ROW_PX = 30;

/** Call `callback` after the original `object[property]`, keeping its return value. */
function chainCallback(object, property, callback) {
  const original = object[property];
  object[property] = function (...args) {
    const result = original?.apply(this, args);
    callback.apply(this, args);
    return result;
  };
}

/** The region colour the server-side preview uses (golden-ratio hue walk over z-index). */
function regionColour(index, alpha = 1) {
  const h = (0.07 + index * 0.618033988749895) % 1;
  const s = 0.75, v = 1;
  const i = Math.floor(h * 6), f = h * 6 - i;
  const p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return `rgba(${Math.round(r * 255)},${Math.round(g * 255)},${Math.round(b * 255)},${alpha})`;
}

/** Region vertices as [[x, y], ...]; a rect becomes its four corners. */
function outline(region) {
  if (region.shape === "rect") {
    const [[x0, y0], [x1, y1]] = region.points;
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  }
  return region.points;
}

function pointInPolygon(x, y, pts) {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i], [xj, yj] = pts[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function segmentsCross(a, b, c, d) {
  const orient = (p, q, r) => Math.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]));
  return orient(a, b, c) !== orient(a, b, d) && orient(c, d, a) !== orient(c, d, b);
}

/** True when two non-adjacent edges of a closed polygon cross (the server refuses those). */
function selfIntersects(pts) {
  const n = pts.length;
  for (let i = 0; i < n; i++) {
    for (let j = i + 2; j < n; j++) {
      if (i === 0 && j === n - 1) continue;
      if (segmentsCross(pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n])) return true;
    }
  }
  return false;
}

/** Parse Region JSON v1 leniently for display; the server does the strict validation. */
function parseDocument(text, width, height) {
  try {
    const doc = JSON.parse(text || "{}");
    if (doc && Array.isArray(doc.regions)) {
      return { version: 1, width: doc.width || width, height: doc.height || height, regions: doc.regions };
    }
  } catch (e) {
    console.warn("Pakati: the regions widget does not hold valid JSON; the editor starts empty", e);
  }
  return { version: 1, width, height, regions: [] };
}

function rescaleDocument(doc, width, height) {
  const sx = width / doc.width, sy = height / doc.height;
  const k = Math.sqrt(sx * sy);
  for (const r of doc.regions) {
    r.points = r.points.map(([x, y]) => [Math.round(x * sx * 100) / 100, Math.round(y * sy * 100) / 100]);
    if (typeof r.feather === "number") r.feather = Math.round(r.feather * k * 100) / 100;
  }
  doc.width = width;
  doc.height = height;
}

function newRegionId(doc) {
  const used = new Set(doc.regions.map((r) => r.id));
  let n = doc.regions.length + 1;
  while (used.has(`r${n}`)) n++;
  return `r${n}`;
}

function el(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") Object.assign(e.style, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

/** The editor of one PakatiCanvas node. */
class RegionEditor {
  constructor(node) {
    this.node = node;
    this.regionsWidget = node.widgets.find((w) => w.name === "regions");
    this.widthWidget = node.widgets.find((w) => w.name === "width");
    this.heightWidget = node.widgets.find((w) => w.name === "height");
    this.doc = parseDocument(this.regionsWidget.value, this.widthWidget.value, this.heightWidget.value);
    this.selected = -1; // region index
    this.selectedVertex = -1;
    this.mode = "select"; // select | polygon | rect
    this.draft = null; // points of the polygon being drawn, or the rect being dragged
    this.drag = null;
    this.view = null; // {scale, ox, oy} when zoomed or panned; null = fit
    this.background = null; // HTMLImageElement
    this.outputImage = null; // last image output of the graph (fallback background)
    this.writing = false;
    node.properties ??= {};
    node.properties.pakati_grid ??= 0;
    node.properties.pakati_background ??= "auto";
    this.buildDom();
    this.onApiExecuted = (e) => this.takeOutputImage(e.detail);
    api.addEventListener("executed", this.onApiExecuted);
    this.resizeObserver = new ResizeObserver(() => this.redraw());
    this.resizeObserver.observe(this.canvas);
    this.refreshList();
  }

  // ---------------------------------------------------------------- DOM
  buildDom() {
    const button = (label, title, onclick) =>
      el("button", { textContent: label, title, onclick, className: "pakati-btn", style: btnStyle });
    const btnStyle = { padding: "2px 6px", fontSize: "11px", cursor: "pointer", background: "#333", color: "#ddd", border: "1px solid #555", borderRadius: "3px" };
    this.modeButtons = {
      select: button("Select", "Select, move regions and vertices (Esc)", () => this.setMode("select")),
      polygon: button("Polygon", "Click to add points; click the first point or press Enter to close", () => this.setMode("polygon")),
      rect: button("Rect", "Drag to draw a rectangle", () => this.setMode("rect")),
    };
    this.gridSelect = el("select", { title: "Snap to grid (canvas pixels)", style: { fontSize: "11px", background: "#333", color: "#ddd" }, onchange: () => {
      this.node.properties.pakati_grid = Number(this.gridSelect.value);
      this.redraw();
    } }, GRID_CHOICES.map((g) => el("option", { value: String(g), textContent: g ? `grid ${g}` : "no grid" })));
    this.gridSelect.value = String(this.node.properties.pakati_grid);
    this.bgSelect = el("select", { title: "Background: the image on the background input after a run, else the last output image", style: { fontSize: "11px", background: "#333", color: "#ddd" }, onchange: () => {
      this.node.properties.pakati_background = this.bgSelect.value;
      this.redraw();
    } }, [el("option", { value: "auto", textContent: "bg: auto" }), el("option", { value: "off", textContent: "bg: off" })]);
    this.bgSelect.value = this.node.properties.pakati_background;
    const toolbar = el("div", { style: { display: "flex", gap: "3px", flexWrap: "wrap", alignItems: "center", height: `${TOOLBAR_PX - 4}px` } }, [
      ...Object.values(this.modeButtons),
      button("Dup", "Duplicate the selected region", () => this.duplicate()),
      button("Del", "Delete the selected vertex, else the selected region (Delete)", () => this.deleteSelection()),
      button("Up", "Bring the selected region forward (later regions win where they overlap)", () => this.reorder(1)),
      button("Down", "Send the selected region backward", () => this.reorder(-1)),
      button("Fit", "Zoom to fit", () => { this.view = null; this.redraw(); }),
      this.gridSelect,
      this.bgSelect,
    ]);
    this.canvas = el("canvas", { tabIndex: 0, className: "pakati-canvas", style: { width: "100%", flex: "1 1 auto", minHeight: "80px", outline: "none", background: "#222", display: "block" } });
    this.status = el("div", { style: { fontSize: "11px", color: "#aaa", height: "14px", overflow: "hidden", whiteSpace: "nowrap" } });
    this.list = el("div", { className: "pakati-region-list", style: { display: "flex", flexDirection: "column", gap: "2px" } });
    this.root = el("div", { className: "pakati-editor", style: { display: "flex", flexDirection: "column", gap: "2px", width: "100%", height: "100%", fontFamily: "sans-serif" } }, [toolbar, this.canvas, this.status, this.list]);
    for (const type of ["pointerdown", "pointermove", "pointerup", "dblclick", "contextmenu"]) {
      this.canvas.addEventListener(type, (e) => this.onPointer(type, e));
    }
    this.canvas.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    this.canvas.addEventListener("keydown", (e) => this.onKey(e));
    this.setMode("select");
  }

  /** Height the DOM widget asks for: a canvas at the layout's aspect ratio, plus the list. */
  preferredHeight() {
    const width = Math.max(200, (this.node.size?.[0] ?? 400) - 20);
    const canvasHeight = Math.min(640, Math.max(160, (width * this.doc.height) / this.doc.width));
    return TOOLBAR_PX + canvasHeight + 18 + Math.max(1, this.doc.regions.length) * ROW_PX + 8;
  }

  refreshList() {
    this.list.replaceChildren();
    const input = (value, attrs, onchange) => {
      const e = el("input", { value: value ?? "", ...attrs, style: { fontSize: "11px", background: "#1b1b1b", color: "#ddd", border: "1px solid #444", minWidth: "0", ...(attrs.style || {}) } });
      e.addEventListener("change", () => onchange(e));
      e.addEventListener("input", () => onchange(e));
      return e;
    };
    if (!this.doc.regions.length) {
      this.list.append(el("div", { textContent: "No regions: pick Polygon or Rect and draw on the canvas.", style: { fontSize: "11px", color: "#888" } }));
    }
    this.doc.regions.forEach((region, index) => {
      const set = (key, value) => { region[key] = value; this.commit({ list: false }); };
      const row = el("div", { className: "pakati-region-row", style: { display: "flex", gap: "3px", alignItems: "center", height: `${ROW_PX - 2}px`, padding: "0 2px", borderLeft: `4px solid ${regionColour(index)}`, background: index === this.selected ? "#3a3a50" : "transparent" } }, [
        input(region.name, { placeholder: "name", title: "name", style: { width: "60px" }, className: "pakati-name" }, (e) => set("name", e.value)),
        input(region.prompt, { placeholder: "prompt", title: "prompt", className: "pakati-prompt", style: { flex: "2 1 80px" } }, (e) => set("prompt", e.value)),
        input(region.negative, { placeholder: "negative", title: "negative prompt", className: "pakati-negative", style: { flex: "1 1 50px" } }, (e) => set("negative", e.value)),
        input(region.strength ?? 1, { type: "number", step: "0.05", min: "0", title: "strength", className: "pakati-strength", style: { width: "44px" } }, (e) => { if (e.value !== "" && Number(e.value) >= 0) set("strength", Number(e.value)); }),
        input(region.feather ?? 0, { type: "number", step: "1", min: "0", title: "feather (canvas px)", className: "pakati-feather", style: { width: "40px" } }, (e) => { if (e.value !== "" && Number(e.value) >= 0) set("feather", Number(e.value)); }),
        input(region.seed ?? "", { type: "number", step: "1", placeholder: "seed", title: "seed (empty = the sampler's)", className: "pakati-seed", style: { width: "52px" } }, (e) => set("seed", e.value === "" ? null : Math.trunc(Number(e.value)))),
        input(region.cfg ?? "", { type: "number", step: "0.5", min: "0", max: "100", placeholder: "cfg", title: "CFG in this region (empty = the sampler's); applied by Pakati Apply Regions", className: "pakati-cfg", style: { width: "40px" } }, (e) => { if (e.value === "") set("cfg", null); else if (Number(e.value) >= 0 && Number(e.value) <= 100) set("cfg", Number(e.value)); }),
        input(region.denoise ?? "", { type: "number", step: "0.05", min: "0", max: "1", placeholder: "dn", title: "img2img denoise in this region, 0 to 1 (empty = 1.0); applied through Pakati Region Denoise", className: "pakati-denoise", style: { width: "40px" } }, (e) => { if (e.value === "") set("denoise", null); else if (Number(e.value) >= 0 && Number(e.value) <= 1) set("denoise", Number(e.value)); }),
        el("label", { title: "locked: cannot be moved or edited on the canvas", style: { fontSize: "11px", color: "#aaa" } }, [
          el("input", { type: "checkbox", checked: !!region.locked, className: "pakati-locked", onchange: (e) => set("locked", e.target.checked) }),
          "lock",
        ]),
      ]);
      row.addEventListener("pointerdown", () => { if (this.selected !== index) { this.select(index); } });
      this.list.append(row);
    });
  }

  // ---------------------------------------------------------------- state <-> widget
  /** Reload from the widget (workflow load, paste, undo/redo, value set from outside). */
  load() {
    if (this.writing) return;
    this.doc = parseDocument(this.regionsWidget.value, this.widthWidget.value, this.heightWidget.value);
    // a layout drawn at another size is shown (and written back on the next edit) rescaled,
    // as the server's parse_canvas rescales it
    if (this.doc.width !== this.widthWidget.value || this.doc.height !== this.heightWidget.value) {
      rescaleDocument(this.doc, this.widthWidget.value, this.heightWidget.value);
    }
    this.selected = Math.min(this.selected, this.doc.regions.length - 1);
    this.selectedVertex = -1;
    this.draft = null;
    this.gridSelect.value = String(this.node.properties.pakati_grid ?? 0);
    this.bgSelect.value = this.node.properties.pakati_background ?? "auto";
    this.refreshList();
    this.validate();
    this.fitNode();
    this.redraw();
  }

  /** Write the document into the `regions` widget after an edit. */
  commit({ list = true } = {}) {
    const w = this.widthWidget.value, h = this.heightWidget.value;
    if (this.doc.width !== w || this.doc.height !== h) rescaleDocument(this.doc, w, h);
    this.writing = true;
    try {
      this.regionsWidget.value = JSON.stringify(this.doc);
    } finally {
      this.writing = false;
    }
    if (list) this.refreshList();
    this.validate();
    this.fitNode();
    this.redraw();
    this.node.setDirtyCanvas?.(true, true);
    app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
  }

  /** Width or height changed: rescale the drawn regions to the new canvas. */
  resizeCanvas() {
    if (this.doc.width === this.widthWidget.value && this.doc.height === this.heightWidget.value) return;
    this.view = null;
    this.commit();
  }

  /** Grow or shrink the node when the editor's preferred height changed (aspect, region count). */
  fitNode() {
    const want = this.preferredHeight();
    if (want === this.fittedHeight || !this.node.size) return;
    this.fittedHeight = want;
    this.node.setSize([this.node.size[0], this.node.computeSize()[1]]);
  }

  validate() {
    const bad = this.doc.regions.findIndex((r) => r.shape === "polygon" && selfIntersects(r.points));
    this.status.textContent = bad >= 0
      ? `region '${this.doc.regions[bad].name || this.doc.regions[bad].id}' crosses itself: the server will refuse it`
      : `${this.doc.regions.length} region(s) on ${this.doc.width}x${this.doc.height}`;
    this.status.style.color = bad >= 0 ? "#f77" : "#aaa";
  }

  // ---------------------------------------------------------------- geometry
  transform() {
    const cw = this.canvas.clientWidth || 1, ch = this.canvas.clientHeight || 1;
    if (this.view) return this.view;
    const scale = Math.min(cw / this.doc.width, ch / this.doc.height) * 0.96;
    return { scale, ox: (cw - this.doc.width * scale) / 2, oy: (ch - this.doc.height * scale) / 2 };
  }

  toCanvas(e) {
    const rect = this.canvas.getBoundingClientRect();
    const { scale, ox, oy } = this.transform();
    // the element may be CSS-scaled with the graph zoom: map client px to layout px first
    const kx = this.canvas.clientWidth / (rect.width || 1), ky = this.canvas.clientHeight / (rect.height || 1);
    return [((e.clientX - rect.left) * kx - ox) / scale, ((e.clientY - rect.top) * ky - oy) / scale];
  }

  /** Client (page) coordinates of a canvas point: what a user or a test clicks. */
  clientPoint(x, y) {
    const rect = this.canvas.getBoundingClientRect();
    const { scale, ox, oy } = this.transform();
    const kx = (rect.width || 1) / this.canvas.clientWidth, ky = (rect.height || 1) / this.canvas.clientHeight;
    return [rect.left + (x * scale + ox) * kx, rect.top + (y * scale + oy) * ky];
  }

  snap([x, y]) {
    const g = this.node.properties.pakati_grid || 0;
    const clampX = (v) => Math.min(this.doc.width, Math.max(0, v));
    const clampY = (v) => Math.min(this.doc.height, Math.max(0, v));
    if (g) return [clampX(Math.round(x / g) * g), clampY(Math.round(y / g) * g)];
    return [clampX(Math.round(x)), clampY(Math.round(y))];
  }

  screenDistance(a, b) {
    return (Math.hypot(a[0] - b[0], a[1] - b[1]) * this.transform().scale);
  }

  hitVertex(p) {
    const r = this.doc.regions[this.selected];
    if (!r) return -1;
    return r.points.findIndex((q) => this.screenDistance(p, q) <= HANDLE_PX + 2);
  }

  hitRegion(p) {
    for (let i = this.doc.regions.length - 1; i >= 0; i--) {
      if (pointInPolygon(p[0], p[1], outline(this.doc.regions[i]))) return i;
    }
    return -1;
  }

  // ---------------------------------------------------------------- editing
  setMode(mode) {
    this.mode = mode;
    this.draft = null;
    for (const [name, b] of Object.entries(this.modeButtons)) b.style.background = name === mode ? "#556" : "#333";
    this.canvas.style.cursor = mode === "select" ? "default" : "crosshair";
    this.redraw();
  }

  select(index, vertex = -1) {
    this.selected = index;
    this.selectedVertex = vertex;
    this.refreshList();
    this.redraw();
  }

  addRegion(shape, points) {
    if (this.doc.regions.length >= MAX_REGIONS) {
      this.status.textContent = `at most ${MAX_REGIONS} regions`;
      return;
    }
    const id = newRegionId(this.doc);
    this.doc.regions.push({ id, name: `region ${this.doc.regions.length + 1}`, shape, points, prompt: "", negative: "", strength: 1, feather: 0, seed: null, locked: false });
    this.selected = this.doc.regions.length - 1;
    this.selectedVertex = -1;
    this.setMode("select");
    this.commit();
  }

  closePolygon() {
    if (!this.draft || this.draft.length < 3) return;
    this.addRegion("polygon", this.draft);
  }

  deleteSelection() {
    const r = this.doc.regions[this.selected];
    if (!r) return;
    if (r.shape === "polygon" && this.selectedVertex >= 0 && r.points.length > 3) {
      if (r.locked) return;
      r.points.splice(this.selectedVertex, 1);
      this.selectedVertex = -1;
    } else {
      this.doc.regions.splice(this.selected, 1);
      this.selected = Math.min(this.selected, this.doc.regions.length - 1);
      this.selectedVertex = -1;
    }
    this.commit();
  }

  duplicate() {
    const r = this.doc.regions[this.selected];
    if (!r || this.doc.regions.length >= MAX_REGIONS) return;
    const copy = JSON.parse(JSON.stringify(r));
    copy.id = newRegionId(this.doc);
    copy.name = r.name ? `${r.name} copy` : "";
    copy.locked = false;
    const d = Math.max(8, this.node.properties.pakati_grid || 0);
    copy.points = copy.points.map(([x, y]) => [Math.min(this.doc.width, x + d), Math.min(this.doc.height, y + d)]);
    this.doc.regions.push(copy);
    this.selected = this.doc.regions.length - 1;
    this.commit();
  }

  /** Move the selected region one step up (+1) or down (-1) in z-order. */
  reorder(step) {
    const i = this.selected, j = i + step;
    if (i < 0 || j < 0 || j >= this.doc.regions.length) return;
    const regions = this.doc.regions;
    [regions[i], regions[j]] = [regions[j], regions[i]];
    this.selected = j;
    this.commit();
  }

  onPointer(type, e) {
    e.stopPropagation();
    if (type === "contextmenu") { e.preventDefault(); return; }
    const p = this.toCanvas(e);
    if (type === "pointerdown") {
      this.canvas.focus();
      if (e.button === 1 || (e.button === 0 && e.altKey)) {
        const t = this.transform();
        this.drag = { kind: "pan", start: [e.clientX, e.clientY], view: { ...t } };
      } else if (e.button !== 0) {
        return;
      } else if (this.mode === "polygon") {
        const q = this.snap(p);
        if (this.draft && this.draft.length >= 3 && this.screenDistance(q, this.draft[0]) <= CLOSE_PX) this.closePolygon();
        else (this.draft ??= []).push(q);
      } else if (this.mode === "rect") {
        const q = this.snap(p);
        this.draft = [q, q];
        this.drag = { kind: "rect" };
      } else {
        const v = this.hitVertex(p);
        if (v >= 0) {
          this.select(this.selected, v);
          if (!this.doc.regions[this.selected].locked) this.drag = { kind: "vertex", moved: false };
        } else if (this.hitEdge(p) >= 0) {
          this.select(this.selected); // on the selected polygon's edge: keep it (double-click inserts)
        } else {
          const i = this.hitRegion(p);
          this.select(i);
          if (i >= 0 && !this.doc.regions[i].locked) {
            this.drag = { kind: "region", start: this.snap(p), points: this.doc.regions[i].points.map((q) => [...q]), moved: false };
          }
        }
      }
      if (this.drag) this.canvas.setPointerCapture?.(e.pointerId);
      this.redraw();
    } else if (type === "pointermove") {
      this.hover = p;
      const d = this.drag;
      if (d?.kind === "pan") {
        this.view = { scale: d.view.scale, ox: d.view.ox + e.clientX - d.start[0], oy: d.view.oy + e.clientY - d.start[1] };
      } else if (d?.kind === "rect") {
        this.draft[1] = this.snap(p);
      } else if (d?.kind === "vertex") {
        this.doc.regions[this.selected].points[this.selectedVertex] = this.snap(p);
        d.moved = true;
      } else if (d?.kind === "region") {
        const q = this.snap(p);
        const dx = q[0] - d.start[0], dy = q[1] - d.start[1];
        this.doc.regions[this.selected].points = d.points.map(([x, y]) => this.snap([x + dx, y + dy]));
        d.moved = d.moved || dx !== 0 || dy !== 0;
      }
      this.redraw();
    } else if (type === "pointerup") {
      const d = this.drag;
      this.drag = null;
      if (d?.kind === "rect") {
        const [[x0, y0], [x1, y1]] = this.draft;
        this.draft = null;
        if (Math.abs(x1 - x0) >= 1 && Math.abs(y1 - y0) >= 1) {
          this.addRegion("rect", [[Math.min(x0, x1), Math.min(y0, y1)], [Math.max(x0, x1), Math.max(y0, y1)]]);
        }
      } else if ((d?.kind === "vertex" || d?.kind === "region") && d.moved) {
        this.commit({ list: false });
      }
      this.redraw();
    } else if (type === "dblclick" && this.mode === "select") {
      this.insertVertex(p);
    }
  }

  /** Index of the selected region's edge near `p` (within a few screen pixels), else -1. */
  hitEdge(p) {
    const r = this.doc.regions[this.selected];
    if (!r) return -1;
    const pts = outline(r);
    let best = -1, bestDist = HANDLE_PX * 2;
    pts.forEach((a, i) => {
      const b = pts[(i + 1) % pts.length];
      const dx = b[0] - a[0], dy = b[1] - a[1];
      const t = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy || 1)));
      const dist = this.screenDistance(p, [a[0] + t * dx, a[1] + t * dy]);
      if (dist <= bestDist) { bestDist = dist; best = i; }
    });
    return best;
  }

  /** Double-click on an edge of the selected polygon inserts a vertex there. */
  insertVertex(p) {
    const r = this.doc.regions[this.selected];
    if (!r || r.shape !== "polygon" || r.locked) return;
    const edge = this.hitEdge(p);
    if (edge < 0) return;
    r.points.splice(edge + 1, 0, this.snap(p));
    this.selectedVertex = edge + 1;
    this.commit({ list: false });
  }

  onWheel(e) {
    e.preventDefault();
    e.stopPropagation();
    const t = this.transform();
    const rect = this.canvas.getBoundingClientRect();
    const mx = (e.clientX - rect.left) * (this.canvas.clientWidth / (rect.width || 1));
    const my = (e.clientY - rect.top) * (this.canvas.clientHeight / (rect.height || 1));
    const k = Math.exp(-e.deltaY * 0.0015);
    const scale = Math.min(64, Math.max(0.01, t.scale * k));
    this.view = { scale, ox: mx - ((mx - t.ox) * scale) / t.scale, oy: my - ((my - t.oy) * scale) / t.scale };
    this.redraw();
  }

  onKey(e) {
    const handled = () => { e.preventDefault(); e.stopPropagation(); };
    if (e.key === "Enter" && this.mode === "polygon") { this.closePolygon(); handled(); }
    else if (e.key === "Escape") { this.setMode("select"); handled(); }
    else if (e.key === "Backspace" && this.mode === "polygon" && this.draft?.length) { this.draft.pop(); this.redraw(); handled(); }
    else if ((e.key === "Delete" || e.key === "Backspace") && this.mode === "select") { this.deleteSelection(); handled(); }
    else if (e.key === "d" && (e.ctrlKey || e.metaKey) && this.mode === "select") { this.duplicate(); handled(); }
    else if (e.key === "f" && !e.ctrlKey && !e.metaKey) { this.view = null; this.redraw(); handled(); }
    else if (e.key === "p" && !e.ctrlKey && !e.metaKey) { this.setMode("polygon"); handled(); }
    else if (e.key === "r" && !e.ctrlKey && !e.metaKey) { this.setMode("rect"); handled(); }
    else if (e.key === "PageUp") { this.reorder(1); handled(); }
    else if (e.key === "PageDown") { this.reorder(-1); handled(); }
  }

  // ---------------------------------------------------------------- background
  setBackgroundFrom(images) {
    const img = images?.[0];
    if (!img) return;
    const params = new URLSearchParams({ filename: img.filename, subfolder: img.subfolder ?? "", type: img.type ?? "temp" });
    const image = new Image();
    image.onload = () => { this.background = image; this.redraw(); };
    image.src = api.apiURL(`/view?${params}`);
  }

  /** Any image output of the graph: the fallback background when no background is linked. */
  takeOutputImage(detail) {
    const images = detail?.output?.images;
    if (!images?.length || !this.node.graph) return;
    const source = this.node.graph.getNodeById?.(detail.display_node ?? detail.node);
    if (!source || source === this.node || source.type === OVERLAY_TYPE) return;
    const img = images[0];
    const params = new URLSearchParams({ filename: img.filename, subfolder: img.subfolder ?? "", type: img.type ?? "output" });
    const image = new Image();
    image.onload = () => { this.outputImage = image; this.redraw(); };
    image.src = api.apiURL(`/view?${params}`);
  }

  // ---------------------------------------------------------------- drawing
  redraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.draw();
    });
  }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const cw = c.clientWidth, ch = c.clientHeight;
    if (!cw || !ch) return;
    if (c.width !== Math.round(cw * dpr) || c.height !== Math.round(ch * dpr)) {
      c.width = Math.round(cw * dpr);
      c.height = Math.round(ch * dpr);
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cw, ch);
    const { scale, ox, oy } = this.transform();
    const W = this.doc.width, H = this.doc.height;
    const X = (x) => ox + x * scale, Y = (y) => oy + y * scale;
    ctx.fillStyle = "#2e2e2e";
    ctx.fillRect(X(0), Y(0), W * scale, H * scale);
    const bg = this.node.properties.pakati_background === "off" ? null : this.background ?? (this.hasBackgroundLink() ? null : this.outputImage);
    if (bg) ctx.drawImage(bg, X(0), Y(0), W * scale, H * scale);
    const g = this.node.properties.pakati_grid || 0;
    if (g && g * scale >= 4) {
      ctx.strokeStyle = "rgba(255,255,255,0.12)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let x = 0; x <= W; x += g) { ctx.moveTo(X(x), Y(0)); ctx.lineTo(X(x), Y(H)); }
      for (let y = 0; y <= H; y += g) { ctx.moveTo(X(0), Y(y)); ctx.lineTo(X(W), Y(y)); }
      ctx.stroke();
    }
    ctx.strokeStyle = "#888";
    ctx.strokeRect(X(0), Y(0), W * scale, H * scale);
    this.doc.regions.forEach((r, i) => {
      const pts = outline(r);
      if (pts.length < 2) return;
      ctx.beginPath();
      pts.forEach(([x, y], k) => (k ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
      ctx.closePath();
      ctx.fillStyle = regionColour(i, 0.3);
      ctx.fill();
      const bad = r.shape === "polygon" && selfIntersects(r.points);
      ctx.strokeStyle = bad ? "#ff3030" : regionColour(i, 1);
      ctx.lineWidth = i === this.selected ? 2.5 : 1.5;
      ctx.setLineDash(r.locked ? [4, 3] : []);
      ctx.stroke();
      ctx.setLineDash([]);
      const [lx, ly] = pts.reduce(([a, b], [x, y]) => [a + x / pts.length, b + y / pts.length], [0, 0]);
      ctx.fillStyle = "#fff";
      ctx.font = "11px sans-serif";
      ctx.textAlign = "center";
      ctx.fillText(r.name || r.id, X(lx), Y(ly));
      if (i === this.selected) {
        r.points.forEach(([x, y], k) => {
          ctx.beginPath();
          ctx.arc(X(x), Y(y), k === this.selectedVertex ? HANDLE_PX : HANDLE_PX - 2, 0, Math.PI * 2);
          ctx.fillStyle = k === this.selectedVertex ? "#fff" : regionColour(i, 1);
          ctx.fill();
          ctx.strokeStyle = "#000";
          ctx.lineWidth = 1;
          ctx.stroke();
        });
      }
    });
    if (this.draft?.length) {
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 1.5;
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      if (this.mode === "rect") {
        const [[x0, y0], [x1, y1]] = this.draft;
        ctx.rect(X(x0), Y(y0), (x1 - x0) * scale, (y1 - y0) * scale);
      } else {
        this.draft.forEach(([x, y], k) => (k ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
        if (this.hover) ctx.lineTo(X(this.snap(this.hover)[0]), Y(this.snap(this.hover)[1]));
      }
      ctx.stroke();
      ctx.setLineDash([]);
      if (this.mode === "polygon") {
        ctx.beginPath();
        ctx.arc(X(this.draft[0][0]), Y(this.draft[0][1]), CLOSE_PX / 2, 0, Math.PI * 2);
        ctx.stroke();
      }
    }
  }

  hasBackgroundLink() {
    const input = this.node.inputs?.find((i) => i.name === "background");
    return input?.link != null;
  }

  dispose() {
    api.removeEventListener("executed", this.onApiExecuted);
    this.resizeObserver.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}

app.registerExtension({
  name: "pakati.canvas",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_TYPE) return;

    chainCallback(nodeType.prototype, "onNodeCreated", function () {
      const editor = new RegionEditor(this);
      this.pakatiEditor = editor;
      const regions = editor.regionsWidget;
      regions.type = "hidden"; // the editor is the view of this widget; the JSON still serialises
      if (regions.element) regions.element.style.display = "none";
      chainCallback(regions, "callback", () => editor.load());
      for (const w of [editor.widthWidget, editor.heightWidget]) {
        chainCallback(w, "callback", () => editor.resizeCanvas());
      }
      const widget = this.addDOMWidget("pakati_editor", "pakati_editor", editor.root, {
        serialize: false,
        hideOnZoom: false,
        getValue: () => undefined,
        setValue: () => {},
        getMinHeight: () => editor.preferredHeight(),
        getMaxHeight: () => editor.preferredHeight(),
      });
      widget.serialize = false;
      this.setSize([Math.max(this.size[0], 520), this.size[1]]);
      editor.fitNode();
      editor.validate();
      editor.redraw();
    });

    chainCallback(nodeType.prototype, "onConfigure", function () {
      this.pakatiEditor?.load();
    });

    chainCallback(nodeType.prototype, "onExecuted", function (message) {
      if (message?.pakati_background) this.pakatiEditor?.setBackgroundFrom(message.pakati_background);
    });

    chainCallback(nodeType.prototype, "onRemoved", function () {
      this.pakatiEditor?.dispose();
    });
  },
});

/**
 * Pakati Region From Mask: after a run, "Add to the Pakati Canvas" copies the region it outlined
 * into the Pakati Canvas that feeds its `canvas` input, where the editor shows it and it can be
 * edited like a drawn one; the node is then bypassed, so the next run uses the edited region
 * instead of outlining the mask again.
 */
function addMaskRegionToCanvas(node) {
  const found = node.pakatiRegion;
  if (!found) return "Run the workflow first: the region is outlined when this node executes.";
  const slot = node.findInputSlot("canvas");
  const origin = slot >= 0 ? node.getInputNode(slot) : null;
  if (!origin || origin.type !== NODE_TYPE) return "The canvas input does not come straight from a Pakati Canvas node.";
  const widget = origin.widgets?.find((w) => w.name === "regions");
  let doc;
  try {
    doc = JSON.parse(widget.value);
  } catch (e) {
    return `The Pakati Canvas holds Region JSON that does not parse: ${e.message}`;
  }
  const sx = doc.width / found.width, sy = doc.height / found.height;
  const taken = new Set((doc.regions ?? []).map((r) => r.id));
  let id = found.region.id;
  for (let n = 2; taken.has(id); n++) id = `${found.region.id}-${n}`;
  const region = { ...found.region, id, points: found.region.points.map(([x, y]) => [x * sx, y * sy]) };
  doc.regions = [...(doc.regions ?? []), region];
  widget.value = JSON.stringify(doc);
  widget.callback?.(widget.value);
  origin.pakatiEditor?.load();
  node.mode = 4; // bypass: the canvas passes through unchanged from now on
  node.graph?.setDirtyCanvas(true, true);
  return null;
}

app.registerExtension({
  name: "pakati.regionFromMask",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== "PakatiRegionFromMask") return;

    chainCallback(nodeType.prototype, "onNodeCreated", function () {
      const button = this.addWidget("button", "Add to the Pakati Canvas", null, () => {
        const problem = addMaskRegionToCanvas(this);
        this.pakatiStatus = problem ?? `Added region '${this.pakatiRegion.region.name}' to the Pakati Canvas; this node is now bypassed.`;
        if (problem) app.extensionManager?.toast?.add({ severity: "warn", summary: "Pakati Region From Mask", detail: problem, life: 6000 });
      }, { serialize: false });
      button.serialize = false;
    });

    chainCallback(nodeType.prototype, "onExecuted", function (message) {
      this.pakatiRegion = message?.pakati_region?.[0] ?? null;
    });
  },
});
