// Pakati Plan / Check Alignment: show the plan JSON (or the check report) that the node sends back
// under `text` in a read-only box on the node. The box is a DOM widget that is never serialised,
// so it adds nothing to the workflow or the API prompt.
import { app } from "../../scripts/app.js";

const NODE_TYPES = new Set(["PakatiPlan", "PakatiCheckAlignment"]);
const PLACEHOLDER = {
  PakatiPlan: "The plan JSON appears here after a run.",
  PakatiCheckAlignment: "The check's verdicts appear here after a run.",
};

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
      return result;
    };
  },
});
