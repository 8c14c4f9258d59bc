// Pakati's cards in ComfyUI's template browser: order, titles and descriptions.
//
// ComfyUI 0.3.64 lists a custom node's templates by file name only (/api/workflow_templates, in the
// server's directory order), and front end 1.27 shows that file name as the card's title and again
// as its description; thumbnails are NAME.jpg beside NAME.json. There is no index file for custom
// nodes, so this extension (1) sorts Pakati's list in the order of template_cards.json, wrapping
// api.getWorkflowTemplates, and (2) writes each card's title and description from that file into
// the cards the front end renders (as text, never markup). A template missing from the file keeps
// the front end's own card. See docs/templates.md.
import { api } from "../../scripts/api.js";

const MODULE = decodeURIComponent(new URL(import.meta.url).pathname.split("/").slice(-2)[0]);
const CARDS = fetch(new URL("template_cards.json", import.meta.url))
  .then((r) => (r.ok ? r.json() : { templates: [] }))
  .then((data) => (Array.isArray(data?.templates) ? data.templates.filter((t) => t && typeof t.name === "string") : []))
  .catch(() => []);

const listTemplates = api.getWorkflowTemplates.bind(api);
api.getWorkflowTemplates = async function () {
  const all = await listTemplates();
  const ours = all?.[MODULE];
  if (Array.isArray(ours)) {
    const rank = new Map((await CARDS).map((t, i) => [t.name, i]));
    const key = (name) => (rank.has(name) ? rank.get(name) : Number.MAX_SAFE_INTEGER);
    all[MODULE] = [...ours].sort((a, b) => key(a) - key(b) || String(a).localeCompare(String(b)));
  }
  return all;
};

function isOurs(card) {
  // The Pakati category's own view, or a card whose thumbnail comes from Pakati's folder (the "All" view).
  const heading = card.closest(".p-dataview")?.querySelector("h2");
  if (heading && heading.textContent.trim() === MODULE) return true;
  const prefix = `/workflow_templates/${encodeURIComponent(MODULE)}/`;
  return [...card.querySelectorAll("img")].some((img) => (img.getAttribute("src") || "").includes(prefix));
}

function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
  if (el && el.getAttribute("title") !== text) el.setAttribute("title", text);
}

async function labelCards() {
  if (!document.querySelector('[data-testid^="template-workflow-"]')) return;
  const cards = await CARDS;
  const byName = new Map(cards.map((t) => [t.name, t]));
  for (const card of document.querySelectorAll('[data-testid^="template-workflow-"]')) {
    const meta = byName.get(card.dataset.testid.slice("template-workflow-".length));
    if (!meta || !isOurs(card)) continue;
    if (typeof meta.title === "string") setText(card.querySelector("h3"), meta.title);
    if (typeof meta.description === "string") setText(card.querySelector("h3 + p, p"), meta.description);
  }
}

let pending = false;
new MutationObserver(() => {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    labelCards();
  });
}).observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["src"] });
