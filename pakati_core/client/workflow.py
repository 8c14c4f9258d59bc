"""Workflows as functions: an API-format workflow with Pakati nodes, with its inputs substituted.

Only what Pakati owns is touched: the Region JSON of ``PakatiCanvas`` nodes (and the size of an
unlinked empty latent, so it matches the canvas), the base prompts of
``PakatiRegionalConditioning``, the seeds of the sampler nodes, and the images of ``LoadImage``
nodes. The user's loaders, LoRAs, ControlNets and every other input stay exactly as they are.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..canvas import Canvas
from ..store.from_prompt import is_link
from .errors import WorkflowError

CANVAS_NODE = "PakatiCanvas"
PROMPT_NODES = ("PakatiRegionalConditioning",)
# Sampler-like nodes and the input that holds their noise seed. Loaders with a "seed" input
# (weight seeds, for instance) are deliberately not listed.
SEED_INPUTS: dict[str, str] = {
    "KSampler": "seed",
    "KSamplerAdvanced": "noise_seed",
    "SamplerCustom": "noise_seed",
    "RandomNoise": "noise_seed",
    "PakatiRefine": "seed",
    "PakatiLearnReference": "seed",
}
LATENT_NODES = ("EmptyLatentImage", "EmptySD3LatentImage")
IMAGE_NODES = {"LoadImage": "image"}
# Inputs of a node a sampler's seed is wired to that hold the seed (primitives, PakatiCropRegion).
_SEED_SOURCE_INPUTS = ("seed", "noise_seed", "value", "int")


def canvas_json(canvas: Canvas | Mapping | str) -> tuple[str, int, int]:
    """Validate a canvas (Canvas, Region JSON dict or string) and return (JSON, width, height)."""
    if isinstance(canvas, Canvas):
        c = canvas
    elif isinstance(canvas, str):
        c = Canvas.from_json(canvas)
    elif isinstance(canvas, Mapping):
        c = Canvas.from_dict(dict(canvas))
    else:
        raise WorkflowError(f"canvas must be Region JSON (str or dict) or a Canvas, got {type(canvas).__name__}", "canvas")
    return c.to_json(), c.width, c.height


@dataclass
class Workflow:
    """An API-format ComfyUI workflow (``{node_id: {"class_type", "inputs"}}``) to fill in and run."""

    prompt: dict
    name: str = "workflow"
    seed_inputs: dict[str, str] = field(default_factory=lambda: dict(SEED_INPUTS))

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, dict) or not self.prompt:
            raise WorkflowError(f"{self.name}: an API-format workflow is a non-empty JSON object of nodes")
        if "nodes" in self.prompt and "links" in self.prompt:
            raise WorkflowError(
                f"{self.name}: this is a UI-format workflow (it has 'nodes' and 'links'); "
                "save it with Workflow → Export (API) and use that file"
            )
        if "prompt" in self.prompt and isinstance(self.prompt["prompt"], dict) and "class_type" not in self.prompt["prompt"]:
            self.prompt = self.prompt["prompt"]  # a /prompt request body
        for node_id, node in self.prompt.items():
            if not isinstance(node, dict) or "class_type" not in node or not isinstance(node.get("inputs", {}), dict):
                raise WorkflowError(f"{self.name}: node {node_id} has no class_type/inputs; is this an API-format workflow?", str(node_id))

    @classmethod
    def load(cls, path: str | Path) -> "Workflow":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise WorkflowError(f"cannot read workflow {path}: {e}") from None
        return cls(data, name=path.name)

    # -- what the workflow holds ----------------------------------------------------------------
    def nodes_of(self, *class_types: str) -> list[str]:
        return [nid for nid, n in self.prompt.items() if n["class_type"] in class_types]

    def find(self, ref: str) -> str:
        """A node id from an id or a ``_meta.title``."""
        if ref in self.prompt:
            return ref
        hits = [nid for nid, n in self.prompt.items() if (n.get("_meta") or {}).get("title") == ref]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise WorkflowError(f"{self.name}: no node with id or title {ref!r}", ref)
        raise WorkflowError(f"{self.name}: several nodes are titled {ref!r} ({', '.join(hits)}); use a node id", ref)

    def find_image_node(self, ref: str) -> str:
        """The image-loader node ``ref`` names (an id or a title); ``"*"`` names the one LoadImage node there must be."""
        if ref != "*":
            return self.find(ref)
        if len(self.image_nodes) != 1:
            raise WorkflowError(
                f"{self.name}: an image without a node name needs exactly one LoadImage node, "
                f"found {len(self.image_nodes)} ({', '.join(self.image_nodes)})",
                "images",
            )
        return self.image_nodes[0]

    @property
    def canvas_nodes(self) -> list[str]:
        return self.nodes_of(CANVAS_NODE)

    @property
    def seed_nodes(self) -> list[str]:
        return [nid for nid, n in self.prompt.items() if n["class_type"] in self.seed_inputs]

    @property
    def image_nodes(self) -> list[str]:
        return self.nodes_of(*IMAGE_NODES)

    def canvas(self, node: str | None = None) -> dict:
        """The Region JSON a canvas node holds now."""
        ids = [self.find(node)] if node else self.canvas_nodes
        if not ids:
            raise WorkflowError(f"{self.name}: no {CANVAS_NODE} node")
        return json.loads(self.prompt[ids[0]]["inputs"]["regions"])

    # -- substitution ---------------------------------------------------------------------------
    def render(
        self,
        *,
        canvas: Canvas | Mapping | str | None = None,
        canvases: Mapping[str, Any] | None = None,
        prompt: str | None = None,
        negative: str | None = None,
        seed: int | None = None,
        images: Mapping[str, str] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        match_latent_size: bool = True,
    ) -> dict:
        """A new API prompt with the given inputs put in; the workflow itself is not changed.

        ``canvas`` goes into every ``PakatiCanvas`` node (``canvases`` maps node ids or titles to
        canvases instead); with ``match_latent_size`` an unlinked empty latent takes the canvas
        size. ``prompt``/``negative`` are the base prompts of ``PakatiRegionalConditioning``.
        ``seed`` sets every sampler's noise seed. ``images`` maps ``LoadImage`` node ids/titles
        (or ``"*"`` when there is exactly one) to names on the server (see
        :meth:`ComfyClient.upload_image`). ``overrides`` sets any other input:
        ``{node id or title: {input: value}}``.
        """
        out = copy.deepcopy(self.prompt)
        sizes: set[tuple[int, int]] = set()
        targets: dict[str, Any] = {}
        if canvas is not None:
            if not self.canvas_nodes:
                raise WorkflowError(f"{self.name}: a canvas was given but the workflow has no {CANVAS_NODE} node", "canvas")
            targets.update({nid: canvas for nid in self.canvas_nodes})
        for ref, c in (canvases or {}).items():
            nid = self.find(ref)
            if out[nid]["class_type"] != CANVAS_NODE:
                raise WorkflowError(f"{self.name}: node {nid} is a {out[nid]['class_type']}, not a {CANVAS_NODE}", ref)
            targets[nid] = c
        for nid, c in targets.items():
            text, w, h = canvas_json(c)
            out[nid]["inputs"].update({"regions": text, "width": w, "height": h})
            sizes.add((w, h))
        if match_latent_size and len(sizes) == 1:
            ((w, h),) = sizes
            for nid in self.nodes_of(*LATENT_NODES):
                inputs = out[nid]["inputs"]
                if not is_link(inputs.get("width")) and not is_link(inputs.get("height")):
                    inputs["width"], inputs["height"] = w, h

        if prompt is not None or negative is not None:
            ids = self.nodes_of(*PROMPT_NODES)
            if not ids:
                raise WorkflowError(f"{self.name}: prompts were given but the workflow has no {PROMPT_NODES[0]} node", "prompt")
            for nid in ids:
                for key, value in (("base_prompt", prompt), ("base_negative", negative)):
                    if value is not None:
                        if is_link(out[nid]["inputs"].get(key)):
                            raise WorkflowError(
                                f"{self.name}: node {nid} takes {key} from a link; set it with overrides on the source node", key
                            )
                        out[nid]["inputs"][key] = value

        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise WorkflowError(f"seed must be a non-negative integer, got {seed!r}", "seed")
            self._set_seeds(out, seed)

        for ref, name in (images or {}).items():
            nid = self.find_image_node(ref)
            key = IMAGE_NODES.get(out[nid]["class_type"])
            if key is None:
                raise WorkflowError(f"{self.name}: node {nid} is a {out[nid]['class_type']}, not an image loader", ref)
            out[nid]["inputs"][key] = name

        for ref, values in (overrides or {}).items():
            nid = self.find(ref)
            out[nid]["inputs"].update(dict(values))
        return out

    def _set_seeds(self, out: dict, seed: int) -> None:
        done = 0
        for nid in self.seed_nodes:
            key = self.seed_inputs[out[nid]["class_type"]]
            value = out[nid]["inputs"].get(key)
            if is_link(value):
                # Wired seed: set the source's own seed (a primitive's value, PakatiCropRegion's seed).
                src = out.get(value[0])
                keys = [
                    k
                    for k in _SEED_SOURCE_INPUTS
                    if src and isinstance(src["inputs"].get(k), int) and not isinstance(src["inputs"].get(k), bool)
                ]
                if not keys:
                    continue  # computed from something else: leave it
                src["inputs"][keys[0]] = seed
            else:
                out[nid]["inputs"][key] = seed
            done += 1
        if not done:
            raise WorkflowError(f"{self.name}: no sampler seed to set (looked for {', '.join(sorted(self.seed_inputs))})", "seed")


def parse_seeds(text: str) -> list[int]:
    """``"0-7"``, ``"1,5,9-11"`` → list of seeds, in order, without repeats."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise WorkflowError(f"bad seed list {text!r}: {part!r} is not N or A-B with A <= B", "seeds") from None
    if any(s < 0 for s in seeds):
        raise WorkflowError(f"bad seed list {text!r}: seeds are non-negative", "seeds")
    out = list(dict.fromkeys(seeds))
    if not out:
        raise WorkflowError(f"bad seed list {text!r}: no seeds", "seeds")
    return out
