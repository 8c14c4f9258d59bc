"""The Python API: a workflow, a canvas and seeds in; images from one or many servers out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .api import ComfyClient, Event, check_output
from .dispatch import Dispatcher, PromptTask, RunSummary, TaskResult
from .errors import UnsafeOutputError, WorkflowError
from .workflow import Workflow


def make_tasks(
    workflow: Workflow | dict | str | Path,
    seeds: Iterable[int],
    *,
    canvas: Any = None,
    canvases: Mapping[str, Any] | None = None,
    prompt: str | None = None,
    negative: str | None = None,
    images: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    output_nodes: Sequence[str] | None = None,
) -> list[PromptTask]:
    """One task per seed, with the canvas, prompts and overrides substituted.

    ``images`` maps LoadImage node ids or titles (or ``"*"``) to paths, bytes or arrays; they
    are uploaded to whichever server runs the task.
    """
    wf = as_workflow(workflow)
    node_images: dict[str, Any] = {}
    for ref, image in (images or {}).items():
        nid = wf.find_image_node(ref)
        if nid not in wf.image_nodes:
            raise WorkflowError(f"{wf.name}: node {nid} is a {wf.prompt[nid]['class_type']}, not a LoadImage", ref)
        if isinstance(image, (str, Path)) and not Path(image).is_file():
            raise WorkflowError(f"image for node {nid}: no such file {image}", ref)
        node_images[nid] = image
    tasks = []
    for seed in seeds:
        p = wf.render(canvas=canvas, canvases=canvases, prompt=prompt, negative=negative, seed=int(seed), overrides=overrides)
        tasks.append(
            PromptTask(
                id=f"seed-{seed}",
                prompt=p,
                images=dict(node_images),
                meta={"seed": int(seed)},
                output_nodes=list(output_nodes) if output_nodes else None,
            )
        )
    return tasks


def as_workflow(workflow: Workflow | dict | str | Path) -> Workflow:
    if isinstance(workflow, Workflow):
        return workflow
    if isinstance(workflow, dict):
        return Workflow(workflow)
    return Workflow.load(workflow)


def make_dispatcher(
    servers: Sequence[str | ComfyClient],
    *,
    backend: str = "threads",
    max_inflight: int = 1,
    timeout: float | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    client_options: dict | None = None,
    ray_options: dict | None = None,
) -> Dispatcher:
    """A dispatcher over ``servers`` with the thread-pool backend or, with ``backend="ray"``, Ray actors."""
    if backend == "threads":
        return Dispatcher(
            servers, max_inflight=max_inflight, timeout=timeout, on_event=on_event, on_result=on_result, client_options=client_options
        )
    if backend == "ray":
        from .ray_backend import RayBackend

        urls = [s.url if isinstance(s, ComfyClient) else s for s in servers]
        rb = RayBackend(urls, max_inflight=max_inflight, client_options=client_options, **(ray_options or {}))
        return Dispatcher(
            urls,
            max_inflight=max_inflight,
            timeout=timeout,
            backend=rb,
            on_event=on_event,
            on_result=on_result,
            client_options=client_options,
        )
    raise WorkflowError(f"unknown backend {backend!r}; use 'threads' or 'ray'", "backend")


def save_result(result: TaskResult, out_dir: str | Path) -> list[str]:
    """Write a finished task's images as ``<task id>_node<id>_<k><ext>`` inside ``out_dir``; returns the paths.
    A node id, extension or task id that would name a file elsewhere is an UnsafeOutputError naming the server."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    paths = []
    counts: dict[str, int] = {}
    for im in result.images:
        ext = check_output(im.node_id, im.filename, result.server)
        k = counts.get(im.node_id, 0)
        counts[im.node_id] = k + 1
        path = out / f"{result.task_id}_node{im.node_id}_{k}{ext}"
        if path.resolve().parent != root:
            raise UnsafeOutputError(
                f"task {str(result.task_id)[:80]!r} would write {path} outside {out}; nothing was written", result.server, "task_id"
            )
        path.write_bytes(im.data)
        paths.append(str(path))
    result.files = paths
    return paths


def write_summary(summary: RunSummary, path: str | Path, extra: Mapping[str, Any] | None = None) -> dict:
    """The run's JSON summary (strict JSON), with ``extra`` fields such as the workflow path."""
    data = dict(extra or {}) | summary.to_dict()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, allow_nan=False))
    return data


def generate(
    workflow: Workflow | dict | str | Path,
    *,
    servers: Sequence[str | ComfyClient],
    seeds: Iterable[int],
    canvas: Any = None,
    prompt: str | None = None,
    negative: str | None = None,
    images: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    output_nodes: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    backend: str = "threads",
    max_inflight: int = 1,
    timeout: float | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    client_options: dict | None = None,
    ray_options: dict | None = None,
) -> RunSummary:
    """Render ``workflow`` once per seed over ``servers``; images are on each result (and in ``out_dir``).

    >>> summary = generate("workflows/api/regional_sdxl.json", canvas=open("layout.json").read(),
    ...                    seeds=range(8), servers=["http://gpu1:8188", "http://gpu2:8188"])
    >>> [(r.meta["seed"], r.server, len(r.images)) for r in summary.results]
    """
    tasks = make_tasks(
        workflow, seeds, canvas=canvas, prompt=prompt, negative=negative, images=images, overrides=overrides, output_nodes=output_nodes
    )

    def record(result: TaskResult) -> None:
        if out_dir is not None and result.status == "done":
            save_result(result, out_dir)
        if on_result is not None:
            on_result(result)

    with make_dispatcher(
        servers,
        backend=backend,
        max_inflight=max_inflight,
        timeout=timeout,
        on_event=on_event,
        on_result=record,
        client_options=client_options,
        ray_options=ray_options,
    ) as d:
        return d.run(tasks)
