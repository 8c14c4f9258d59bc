"""Every workflow template in workflows/: it loads in the real front end, and its API twin runs.

UI-format files (workflows/*.json) are fetched the way the template browser fetches them
(/api/workflow_templates/pakati/<name>.json) and loaded with app.loadGraphData in headless
Chromium, each in a fresh browser context (the front end restores the last workflow from local
storage): no node type may be missing, no page error may occur and no toast (the front end's
zod-schema alert, a link-fix notice, any warning) may show. API twins
(workflows/api/*.json) are queued on the real server's /prompt with the tiny SDXL-class model
node swapped in for CheckpointLoaderSimple (the convention every template follows). Twins with
provider nodes (PakatiOpenAI*, PakatiAskVision) run on ``provider_comfy_server``, whose SDKs point
at a local fake endpoint with a sentinel key (no network, no real key).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from comfy_client import for_the_test_host, provide_input_images

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
UI_WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
API_WORKFLOWS = sorted((REPO / "workflows" / "api").glob("*.json"))
NON_NODE_TYPES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
PROVIDER_NODES = {"PakatiOpenAIGenerate", "PakatiOpenAIEditRegion", "PakatiAskVision"}


IPADAPTER_NODES = {"IPAdapterAdvanced", "IPAdapterModelLoader", "IPAdapter", "IPAdapterUnifiedLoader"}


def require_packs_for(path: Path) -> None:
    """Templates with cubiq's IP-Adapter nodes need that pack's source (tests/ipadapter_pack.py): skip loudly, or fail
    under PAKATI_REQUIRE_HOST=1, where it is not found."""
    from harness import HOST
    from ipadapter_pack import require_pack

    text = path.read_text()
    if any(f'"{name}"' in text for name in IPADAPTER_NODES):
        require_pack(HOST)


def ids(paths):
    return [p.stem for p in paths]


def test_every_ui_workflow_has_an_api_twin_and_a_note():
    assert any(p.stem == "canvas_preview" for p in UI_WORKFLOWS)
    for path in UI_WORKFLOWS:
        wf = json.loads(path.read_text())
        assert (REPO / "workflows" / "api" / path.name).is_file(), f"{path.name} has no API twin in workflows/api/"
        assert wf.get("version") == 0.4 and wf.get("nodes") and "links" in wf, f"{path.name} is not a front-end (UI-format) workflow"
        notes = [n for n in wf["nodes"] if n["type"] in ("Note", "MarkdownNote")]
        assert notes and notes[0]["widgets_values"][0].strip(), f"{path.name} has no note explaining what to change"
        for node in wf["nodes"]:
            assert {"id", "type", "pos", "size"} <= set(node), f"{path.name}: node {node.get('id')} lacks id/type/pos/size"


@pytest.mark.browser
def test_templates_are_listed_for_the_template_browser(comfy_server):
    listed = comfy_server.get_json("/api/workflow_templates").get("pakati", [])
    on_disk = sorted((REPO / "workflows").glob("*.json"))  # now, not at collection time
    assert sorted(listed) == sorted(ids(on_disk))


@pytest.mark.browser
@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=ids(UI_WORKFLOWS))
def test_ui_workflow_loads_in_the_front_end(fe, comfy_server, path):
    require_packs_for(path)
    served = json.loads(comfy_server.get_bytes(f"/api/workflow_templates/pakati/{path.name}"))
    assert served == json.loads(path.read_text())
    fe.fresh()
    fe.close_toasts()
    assert fe.toasts() == [], "the page shows toasts before the template is loaded"
    fe.watch()
    fe.load_workflow(served)
    fe.page.wait_for_timeout(300)
    toasts = fe.toasts()
    assert toasts == [], f"{path.name}: the front end shows toasts while loading it:\n" + "\n".join(toasts)
    assert fe.missing_node_types() == [], f"{path.name}: node types the server does not know"
    # every widget holds a value of its own kind (a template whose values are shifted against the
    # node's widgets, e.g. by a seed's control_after_generate, loads without error but wrong)
    misfits = fe.js(
        r"""() => app.graph._nodes.flatMap(n => (n.widgets || []).filter(w => {
        if (w.type === 'number') return typeof w.value !== 'number';
        if (w.type === 'toggle') return typeof w.value !== 'boolean';
        // file combos (checkpoints, input images) list what this test server holds, not what a user has
        if (w.type === 'combo' && Array.isArray(w.options?.values) && !/\.\w+$/.test(String(w.value))) """
        r"""return !w.options.values.includes(w.value);
        return false;
      }).map(w => `${n.type}.${w.name} = ${JSON.stringify(w.value)}`))"""
    )
    assert misfits == [], f"{path.name}: widget values that do not fit their widget: {misfits}"
    loaded = fe.js("() => app.graph._nodes.map(n => n.type)")
    assert sorted(loaded) == sorted(n["type"] for n in served["nodes"])
    # every canvas editor shows exactly the regions the template carries
    for node in served["nodes"]:
        if node["type"] == "PakatiCanvas":
            want = json.loads(node["widgets_values"][2])
            got = fe.js("(id) => app.graph.getNodeById(id).pakatiEditor.doc.regions.map(r => r.id)", node["id"])
            assert got == [r["id"] for r in want["regions"]], path.name
            assert want["regions"], f"{path.name}: the template's canvas has no drawn regions"
    assert not fe.errors, f"{path.name}: page errors while loading:\n" + "\n".join(fe.errors)


def provide_loras(prompt: dict, lora_dir: Path) -> None:
    """A random LoRA in kohya's format, for the tiny model and its CLIP, under every file name a LoRA node asks for."""
    from region_lora_helpers import write_tiny_loras

    names = sorted({n["inputs"]["lora_name"] for n in prompt.values() if isinstance(n["inputs"].get("lora_name"), str)})
    if names:
        write_tiny_loras(lora_dir, names)


@pytest.mark.parametrize("path", API_WORKFLOWS, ids=ids(API_WORKFLOWS))
def test_api_workflow_runs_on_the_server(request, path):
    require_packs_for(path)
    prompt = json.loads(path.read_text())
    uses_provider = any(n["class_type"] in PROVIDER_NODES for n in prompt.values())
    comfy_server = request.getfixturevalue("provider_comfy_server" if uses_provider else "comfy_server")
    assert any(n["class_type"] in ("CheckpointLoaderSimple", "UNETLoader") for n in prompt.values()) or not any(
        n["class_type"] in ("KSampler", "KSamplerAdvanced", "SamplerCustom") for n in prompt.values()
    ), f"{path.name}: a sampling workflow must load its model with CheckpointLoaderSimple (or Flux's UNETLoader)"
    provide_input_images(prompt, comfy_server.base / "input")
    provide_loras(prompt, comfy_server.base / "models" / "loras")
    entry = comfy_server.run(for_the_test_host(prompt), timeout=600)
    assert entry["status"]["status_str"] == "success"
    outputs = entry["outputs"]
    assert outputs, f"{path.name}: the run produced no output"
    for node_id, out in outputs.items():
        for _ in out.get("images", [])[:1]:
            (img, *_) = comfy_server.images(entry, node_id)
            assert img.size and np.isfinite(img).all()


def test_canvas_preview_template_outputs_the_house_mask(comfy_server):
    prompt = json.loads((REPO / "workflows" / "api" / "canvas_preview.json").read_text())
    entry = comfy_server.run(for_the_test_host(prompt))
    saves = [k for k, n in prompt.items() if n["class_type"] == "SaveImage"]
    (mask,) = comfy_server.images(entry, saves[0])
    m = mask[..., 0] if mask.ndim == 3 else mask
    assert m.shape == (1024, 1024)
    assert m[620, 700] >= 254 and m[100, 100] == 0 and m[900, 200] == 0  # inside / outside the house rect
    previews = [k for k, n in prompt.items() if n["class_type"] == "PakatiCanvasPreview"]
    (overlay,) = comfy_server.images(entry, previews[0])
    assert overlay.shape[:2] == (1024, 1024) and overlay[..., :3].std() > 5
