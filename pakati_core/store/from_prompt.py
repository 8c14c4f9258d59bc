"""What a history row says about a generation, read from ComfyUI's API-format prompt.

A save node gets the whole prompt (ComfyUI's hidden ``PROMPT``) and its own node id; only the
nodes its image depends on count (``upstream``), nearest first, so a graph with two sampling
branches records the branch that made this image. Only constant inputs are read (a linked
value is followed one hop, to a sampler-select, scheduler, noise or guider node); nothing that
looks like a key is kept. Plain data in, plain data out: no ComfyUI import.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..canvas import Canvas
from ..errors import PakatiError
from ..redaction import looks_secret

SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
SAMPLER_FIELDS = {  # history name -> input names that carry it, on the sampler or one link away
    "seed": ("seed", "noise_seed"),
    "steps": ("steps",),
    "cfg": ("cfg",),
    "sampler_name": ("sampler_name",),
    "scheduler": ("scheduler",),
    "denoise": ("denoise",),
    "start_at_step": ("start_at_step",),
    "end_at_step": ("end_at_step",),
}
FOLLOWED = ("sampler", "sigmas", "noise", "guider")  # linked sampler inputs whose source node holds settings
LOADERS = (
    ("CheckpointLoaderSimple", "ckpt_name"),
    ("CheckpointLoader", "ckpt_name"),
    ("unCLIPCheckpointLoader", "ckpt_name"),
    ("UNETLoader", "unet_name"),
    ("ImageOnlyCheckpointLoader", "ckpt_name"),
)
TEXT_ENCODERS = {"CLIPTextEncode": ("text",), "CLIPTextEncodeSDXL": ("text_g", "text_l"), "CLIPTextEncodeSDXLRefiner": ("text",)}
RUN_PROPERTY = "pakati_run"  # set on a PakatiCanvas node by the history sidebar's "Load canvas"


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) and isinstance(value[1], int)


def _nodes(prompt: dict | None) -> dict[str, dict]:
    return {str(k): v for k, v in (prompt or {}).items() if isinstance(v, dict) and isinstance(v.get("inputs", {}), dict)}


def upstream(prompt: dict | None, node_id: str | None) -> dict[str, int]:
    """Every node ``node_id`` depends on, with its distance in links (the node itself at 0).
    Without a node id (or one the prompt lacks), every node of the prompt at distance 0."""
    nodes = _nodes(prompt)
    if node_id is None or str(node_id) not in nodes:
        return {k: 0 for k in nodes}
    dist = {str(node_id): 0}
    todo = deque([str(node_id)])
    while todo:
        cur = todo.popleft()
        for value in (nodes[cur].get("inputs") or {}).values():
            if is_link(value) and str(value[0]) in nodes and str(value[0]) not in dist:
                dist[str(value[0])] = dist[cur] + 1
                todo.append(str(value[0]))
    return dist


def _ordered(prompt: dict | None, among: dict[str, int] | None, class_types: tuple[str, ...]) -> list[tuple[str, dict]]:
    nodes = _nodes(prompt)
    ids = among if among is not None else {k: 0 for k in nodes}
    found = [(k, nodes[k]) for k in ids if k in nodes and nodes[k].get("class_type") in class_types]
    return sorted(found, key=lambda kv: (ids[kv[0]], kv[0]))


def constant_inputs(prompt: dict | None, class_types: tuple[str, ...], name: str, among: dict[str, int] | None = None) -> list:
    """Constant values of input ``name`` on nodes of these types (nearest first when ``among`` is given)."""
    out = []
    for _, node in _ordered(prompt, among, class_types):
        value = (node.get("inputs") or {}).get(name)
        if value is not None and not is_link(value) and not isinstance(value, (list, dict)):
            out.append(value)
    return out


def model_name(prompt: dict | None, among: dict[str, int] | None = None) -> str | None:
    """The checkpoint (or UNet) named in the prompt; None when it is linked or absent."""
    for cls, field in LOADERS:
        names = constant_inputs(prompt, (cls,), field, among)
        if names:
            return str(names[0])
    return None


def canvas_from_prompt(prompt: dict | None, among: dict[str, int] | None = None) -> dict | None:
    """The first valid constant PakatiCanvas of the prompt (nearest first), as Region JSON v1."""
    for _, node in _ordered(prompt, among, ("PakatiCanvas",)):
        inputs = node.get("inputs") or {}
        text = inputs.get("regions")
        if not isinstance(text, str):
            continue
        try:
            canvas = Canvas.from_json(text)
            w, h = inputs.get("width"), inputs.get("height")
            if isinstance(w, int) and isinstance(h, int) and (w, h) != (canvas.width, canvas.height):
                canvas = canvas.scaled(w, h)  # as the node does
            return canvas.to_dict()
        except (PakatiError, ValueError):
            continue
    return None


def _setting(nodes: dict[str, dict], node: dict, names: tuple[str, ...]) -> Any:
    inputs = node.get("inputs") or {}
    for n in names:
        v = inputs.get(n)
        if v is not None and not is_link(v) and not isinstance(v, (list, dict)):
            return v
    for via in FOLLOWED:
        link = inputs.get(via)
        if is_link(link) and str(link[0]) in nodes:
            src = nodes[str(link[0])].get("inputs") or {}
            for n in names:
                v = src.get(n)
                if v is not None and not is_link(v) and not isinstance(v, (list, dict)):
                    return v
    return None


def sampler_settings(prompt: dict | None, among: dict[str, int] | None = None) -> tuple[list[int], dict]:
    """(seeds, params): the nearest sampler's settings as params, every sampler's constant seed (nearest first);
    with several samplers, ``params["samplers"]`` lists each one's settings."""
    nodes = _nodes(prompt)
    passes = []
    for node_id, node in _ordered(prompt, among, SAMPLERS):
        one = {"node": node_id, "class_type": node["class_type"]}
        for field, names in SAMPLER_FIELDS.items():
            v = _setting(nodes, node, names)
            if v is not None and not looks_secret(v):
                one[field] = v
        passes.append(one)
    seeds: list[int] = []
    for p in passes:
        s = p.get("seed")
        if isinstance(s, int) and not isinstance(s, bool) and s not in seeds:
            seeds.append(s)
    if not passes:
        return seeds, {}
    params = {k: v for k, v in passes[0].items() if k not in ("node", "seed")}
    if len(passes) > 1:
        params["samplers"] = passes
    return seeds, params


def _text_of(nodes: dict[str, dict], link: Any) -> str | None:
    if not is_link(link) or str(link[0]) not in nodes:
        return None
    node = nodes[str(link[0])]
    fields = TEXT_ENCODERS.get(node.get("class_type"))
    if not fields:
        return None
    parts = [node["inputs"].get(f) for f in fields]
    texts = [p for p in parts if isinstance(p, str) and p.strip()]
    if not texts or any(looks_secret(t) for t in texts):
        return None
    return " | ".join(dict.fromkeys(texts))


def text_prompts(prompt: dict | None, among: dict[str, int] | None = None, canvas: dict | None = None) -> dict:
    """The prompts that made the image: base prompts of regional conditioning, the nearest sampler's
    positive/negative text (when a text encoder feeds it directly), and each region's prompt."""
    nodes = _nodes(prompt)
    out: dict[str, Any] = {}
    for field, key in (("base_prompt", "base"), ("base_negative", "base_negative")):
        values = [
            v for v in constant_inputs(prompt, ("PakatiRegionalConditioning",), field, among) if isinstance(v, str) and not looks_secret(v)
        ]
        if values:
            out[key] = values[0]
    samplers = _ordered(prompt, among, SAMPLERS)
    if samplers:
        inputs = samplers[0][1].get("inputs") or {}
        for key in ("positive", "negative"):
            text = _text_of(nodes, inputs.get(key))
            if text is not None:
                out[key] = text
    regions = [
        {"id": r.get("id"), "name": r.get("name"), "prompt": r.get("prompt", ""), "negative": r.get("negative", "")}
        for r in (canvas or {}).get("regions", [])
        if isinstance(r, dict)
    ]
    if regions:
        out["regions"] = [r for r in regions if not looks_secret(r["prompt"]) and not looks_secret(r["negative"])]
    return out


def parent_run_hint(workflow: Any, among: dict[str, int] | None) -> int | None:
    """The history run whose canvas the image's PakatiCanvas was loaded from (the sidebar marks the node
    with the ``pakati_run`` property in the UI workflow, which ComfyUI passes as EXTRA_PNGINFO)."""
    if not isinstance(workflow, dict):
        return None
    for node in workflow.get("nodes") or []:
        if not isinstance(node, dict) or node.get("type") != "PakatiCanvas":
            continue
        if among is not None and str(node.get("id")) not in among:
            continue
        run = (node.get("properties") or {}).get(RUN_PROPERTY)
        if isinstance(run, int) and not isinstance(run, bool) and run > 0:
            return run
    return None


def generation_fields(prompt: dict | None, node_id: str | None = None, workflow: Any = None, canvas: dict | None = None) -> dict:
    """Everything the history keeps about the image saved by ``node_id``: canvas, prompts, seeds,
    sampler params, model name, and a parent run hint (None when the graph does not say)."""
    among = upstream(prompt, node_id)
    canvas = canvas if canvas is not None else canvas_from_prompt(prompt, among)
    seeds, params = sampler_settings(prompt, among)
    return {
        "canvas": canvas,
        "prompts": text_prompts(prompt, among, canvas),
        "seeds": seeds,
        "params": params,
        "model_name": model_name(prompt, among),
        "parent_hint": parent_run_hint(workflow, among),
    }
