// Pakati Plan / Check Alignment: show the plan JSON (or the check report) that the node sends back
// under `text` in a read-only box on the node. The box is a DOM widget that is never serialised,
// so it adds nothing to the workflow or the API prompt. After a run, a Pakati Plan node's context
// menu offers "Edit this layout in a new Pakati Canvas": the region editor starts from the plan.
import { app } from "../../scripts/app.js";

const NODE_TYPES = new Set(["PakatiPlan", "PakatiCheckAlignment"]);
const PLACEHOLDER = {
  PakatiPlan: "The plan JSON appears here after a run.",
  PakatiCheckAlignment: "The check's verdicts appear here after a run.",
};

/** A new PakatiCanvas node beside `node` whose regions are the plan's canvas (Region JSON v1). */
function openInCanvas(node, plan) {
  if (!plan?.canvas) return null;
  const canvasNode = LiteGraph.createNode("PakatiCanvas");
  canvasNode.pos = [node.pos[0] + node.size[0] + 40, node.pos[1]];
  app.graph.add(canvasNode);
  const set = (name, value) => {
    const w = canvasNode.widgets.find((w) => w.name === name);
    if (w) w.value = value;
  };
  set("width", plan.canvas.width);
  set("height", plan.canvas.height);
  set("regions", JSON.stringify(plan.canvas));
  canvasNode.pakatiEditor?.load();
  app.graph.setDirtyCanvas(true, true);
  return canvasNode;
}

app.registerExtension({
  name: "pakati.plan",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_TYPES.has(nodeData.name)) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function (...args) {
      const result = onNodeCreated?.apply(this, args);
      const box = document.createElement("textarea");
      box.readOnly = true;
      box.placeholder = PLACEHOLDER[nodeData.name];
      box.style.cssText = "width:100%;height:100%;font:11px monospace;resize:none;white-space:pre;box-sizing:border-box";
      const widget = this.addDOMWidget("pakati_text", "pakati_text", box, {
        serialize: false,
        hideOnZoom: false,
        getValue: () => undefined,
        setValue: () => {},
        getMinHeight: () => 120,
      });
      widget.serialize = false;
      this.pakatiText = box;
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const result = onExecuted?.apply(this, [message]);
      const text = message?.text;
      if (this.pakatiText && text) this.pakatiText.value = Array.isArray(text) ? text.join("\n") : String(text);
      if (nodeData.name === "PakatiPlan" && text) {
        try {
          this.pakatiPlan = JSON.parse(Array.isArray(text) ? text[0] : String(text));
        } catch {
          this.pakatiPlan = null;
        }
      }
      return result;
    };
    if (nodeData.name !== "PakatiPlan") return;
    const getExtraMenuOptions = nodeType.prototype.getExtraMenuOptions;
    nodeType.prototype.getExtraMenuOptions = function (canvas, options) {
      const result = getExtraMenuOptions?.apply(this, [canvas, options]);
      const plan = this.pakatiPlan;
      options.push({
        content: "Edit this layout in a new Pakati Canvas",
        disabled: !plan?.canvas,
        callback: () => openInCanvas(this, plan),
      });
      return result;
    };
  },
});
