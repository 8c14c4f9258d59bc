"""``python -m pakati_core.client``: render a workflow over many seeds and servers from the shell."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from pathlib import Path

from ..errors import PakatiError
from .api import Event
from .dispatch import TaskResult
from .generate import make_dispatcher, make_tasks, save_result, write_summary
from .workflow import Workflow, parse_seeds


def _image_arg(text: str) -> tuple[str, str]:
    ref, sep, path = text.partition("=")
    return (ref, path) if sep else ("*", text)


def _override_arg(text: str) -> tuple[str, str, object]:
    try:
        target, value = text.split("=", 1)
        node, inp = target.rsplit(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NODE.INPUT=VALUE (VALUE as JSON, else a string)") from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return node, inp, parsed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pakati_core.client", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="render an API-format workflow once per seed over one or more ComfyUI servers")
    g.add_argument("--workflow", required=True, type=Path, help="API-format workflow JSON with Pakati nodes (Export (API) in ComfyUI)")
    g.add_argument("--canvas", type=Path, help="Region JSON v1 file put into every PakatiCanvas node")
    g.add_argument("--seeds", default="0", help="seeds: N, A-B or a comma list such as 0-3,10 (default 0)")
    g.add_argument("--server", action="append", required=True, help="ComfyUI base URL; repeat for several servers")
    g.add_argument("--out", required=True, type=Path, help="directory for the images and summary.json")
    g.add_argument("--prompt", help="base prompt of PakatiRegionalConditioning")
    g.add_argument("--negative", help="base negative prompt of PakatiRegionalConditioning")
    g.add_argument(
        "--image",
        action="append",
        default=[],
        type=_image_arg,
        help="NODE=PATH: image uploaded for a LoadImage node (id or title); PATH alone when there is one",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        type=_override_arg,
        dest="overrides",
        help="NODE.INPUT=VALUE: set any other input (node id or title; VALUE parsed as JSON when it can be)",
    )
    g.add_argument("--output-node", action="append", help="only keep images of these node ids (default: every image)")
    g.add_argument("--backend", choices=("threads", "ray"), default="threads", help="threads (default) or ray (pip install 'pakati[ray]')")
    g.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")
    g.add_argument("--max-inflight", type=int, default=1, help="prompts kept queued on each server (default 1)")
    g.add_argument("--timeout", type=float, default=None, help="seconds a prompt may take before its server counts as stuck")
    g.add_argument("--http-timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)")
    g.add_argument("--retries", type=int, default=3, help="retries of a request after a connection error (default 3)")
    g.add_argument("--summary", type=Path, help="summary JSON path (default OUT/summary.json)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")

    r = sub.add_parser("run-goal", help="plan a goal, render it on the servers, check it, replan; at most --rounds rounds")
    r.add_argument("--goal", required=True, help="what the image should show, in words")
    r.add_argument(
        "--workflow",
        required=True,
        type=Path,
        help="API-format workflow with a PakatiCanvas (e.g. workflows/api/regional_sdxl.json with your loader)",
    )
    r.add_argument("--server", action="append", required=True, help="ComfyUI base URL; repeat for several servers")
    r.add_argument("--out", required=True, type=Path, help="directory for each round's images, best.png, plan_final.json and summary.json")
    r.add_argument("--width", type=int, default=1024)
    r.add_argument("--height", type=int, default=1024)
    r.add_argument(
        "--planner",
        default="offline",
        help="offline (default), openai or anthropic (key from the environment), or local (an OpenAI-compatible "
        "server on this machine: PAKATI_LOCAL_LLM_URL and PAKATI_LOCAL_LLM_MODEL; no key)",
    )
    r.add_argument(
        "--checker",
        default="offline",
        choices=("offline", "anthropic", "openai", "local"),
        help="who answers what colours cannot: offline (default), anthropic or openai (a vision model; key from the environment), "
        "or local (a vision model on an OpenAI-compatible server on this machine: PAKATI_LOCAL_LLM_URL; no key)",
    )
    r.add_argument("--checker-model", help="the checker's model name (default: the configured one; local: PAKATI_LOCAL_LLM_MODEL)")
    r.add_argument(
        "--repair",
        default="regions",
        choices=("regions", "whole"),
        help="after a check that failed on some regions only: redraw just those regions of the best image, every other pixel "
        "kept (regions, default), or render the whole image again with the replanned canvas (whole)",
    )
    r.add_argument(
        "--repair-crop",
        default="sdxl native",
        choices=("sdxl native", "keep"),
        help="sampling size of a redrawn region: about 1024x1024 keeping its aspect (sdxl native, default) or its own size (keep)",
    )
    r.add_argument("--rounds", type=int, default=3, help="at most this many plan → generate → check rounds (default 3)")
    r.add_argument("--variants", default="0", help="seed offsets rendered in parallel per round, e.g. 0-3 (default 0)")
    r.add_argument("--seed", type=int, default=0, help="the plan's seed")
    r.add_argument("--target", type=float, help="stop when the check scores at least this (default: the plan's check threshold)")
    r.add_argument("--output-node", help="node id whose image is checked (default: the first saved image)")
    r.add_argument(
        "--database",
        metavar="URL",
        help="SQLAlchemy URL of Pakati's database, where plans, checks and generations are remembered per goal (a later "
        "run starts from the best-scoring plan) and LLM plans are cached (default: PAKATI_DATABASE_URL, else the SQLite "
        "file <PAKATI_USER_DIR or the platform data dir, e.g. ~/.local/share>/pakati/pakati.db)",
    )
    r.add_argument("--no-database", action="store_true", help="remember nothing: no context, no plan cache")
    r.add_argument("--backend", choices=("threads", "ray"), default="threads")
    r.add_argument("--ray-address")
    r.add_argument("--max-inflight", type=int, default=1)
    r.add_argument("--timeout", type=float, default=None)
    r.add_argument("--http-timeout", type=float, default=30.0)
    r.add_argument("--retries", type=int, default=3)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def cmd_run_goal(args: argparse.Namespace) -> int:
    from .goal import run_goal, write_goal_summary

    variants = parse_seeds(args.variants)
    store = None
    planner_options: dict = {}
    if not args.no_database:
        from ..store import default_user_dir, open_store

        store = open_store(args.database, user_dir=default_user_dir())  # its context and cache repositories: ContextStore and plan cache
        if args.planner != "offline":
            planner_options["cache"] = store.cache
    progress = _Progress(args.rounds * len(variants), not args.quiet)

    def on_round(rnd) -> None:
        best = rnd.best or {}
        what = f"redrew {', '.join(rnd.regions)}" if rnd.kind == "regions" else "whole image"
        progress.bar.write(
            f"round {rnd.round} ({what}): best score {best.get('score')} (seed {best.get('seed')} on {best.get('server')}), "
            f"{len(rnd.repairs)} repair task(s)"
        )

    try:
        run = run_goal(
            args.goal,
            Workflow.load(args.workflow),
            servers=args.server,
            width=args.width,
            height=args.height,
            planner=args.planner,
            rounds=args.rounds,
            variants=variants,
            target=args.target,
            seed=args.seed,
            output_node=args.output_node,
            out_dir=args.out,
            context=store.context if store is not None else None,
            backend=args.backend,
            max_inflight=args.max_inflight,
            timeout=args.timeout,
            on_event=progress.event,
            on_result=progress.result,
            on_round=on_round,
            client_options={"timeout": args.http_timeout, "retries": args.retries},
            ray_options={"address": args.ray_address} if args.ray_address else None,
            planner_options=planner_options,
            checker=args.checker,
            checker_model=args.checker_model,
            repair=args.repair,
            repair_options={"crop_mode": args.repair_crop},
        )
    finally:
        progress.close()
    path = args.out / "summary.json"
    write_goal_summary(run, path, {"workflow": str(args.workflow), "servers": args.server})
    errors = _distinct_errors(res.get("error") for rnd in run.rounds for res in rnd.results if res.get("status") != "done")
    print(
        json.dumps(
            {
                "summary": str(path),
                "stop_reason": run.stop_reason,
                "rounds": len(run.rounds),
                "best_score": (run.best or {}).get("score"),
                "seconds": round(run.seconds, 2),
                "database": store.url if store is not None else None,
            }
        )
    )
    if run.stop_reason == "failed":
        _print_errors(errors or ["no image was made (see summary.json)"])
    if run.stop_reason == "interrupted":
        return 130
    return 1 if run.stop_reason == "failed" else 0


def _distinct_errors(errors) -> list[str]:
    """Each failure message once, in first-seen order (eight seeds refused alike make one line)."""
    return list(dict.fromkeys(e for e in errors if e))


def _print_errors(errors: list[str]) -> None:
    """The failures once each on stderr, after the summary; a refused model names its fix (PromptRejectedError)."""
    for e in errors:
        print(f"error: {e}", file=sys.stderr)


class _Progress:
    """A tqdm bar over tasks, with the node and step each server is on."""

    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="task", disable=not enabled, dynamic_ncols=True, file=sys.stderr)
        self.lock = threading.Lock()
        self.where: dict[str, str] = {}
        self.failed = 0

    def event(self, ev: Event) -> None:
        if ev.type == "progress":
            text = f"node {ev.data.get('node')} {ev.data.get('value')}/{ev.data.get('max')}"
        elif ev.type == "executing" and ev.data.get("node") is not None:
            text = f"node {ev.data.get('node')}"
        else:
            return
        with self.lock:
            self.where[ev.server.split("//", 1)[-1]] = text
            self.bar.set_postfix_str(" | ".join(f"{k} {v}" for k, v in sorted(self.where.items())), refresh=True)

    def result(self, r: TaskResult) -> None:
        with self.lock:
            if r.status != "done":
                self.failed += 1
                self.bar.write(f"{r.task_id}: {r.status}: {r.error}")
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def cmd_generate(args: argparse.Namespace) -> int:
    wf = Workflow.load(args.workflow)
    canvas = args.canvas.read_text() if args.canvas else None
    seeds = parse_seeds(args.seeds)
    overrides: dict[str, dict] = {}
    for node, inp, value in args.overrides:
        overrides.setdefault(node, {})[inp] = value
    images = {ref: path for ref, path in args.image}
    tasks = make_tasks(
        wf,
        seeds,
        canvas=canvas,
        prompt=args.prompt,
        negative=args.negative,
        images=images,
        overrides=overrides,
        output_nodes=args.output_node,
    )
    progress = _Progress(len(tasks), not args.quiet)

    def on_result(r: TaskResult) -> None:
        if r.status == "done":
            save_result(r, args.out)
        progress.result(r)

    client_options = {"timeout": args.http_timeout, "retries": args.retries}
    ray_options = {"address": args.ray_address} if args.ray_address else None
    dispatcher = make_dispatcher(
        args.server,
        backend=args.backend,
        max_inflight=args.max_inflight,
        timeout=args.timeout,
        on_event=progress.event,
        on_result=on_result,
        client_options=client_options,
        ray_options=ray_options,
    )
    try:
        summary = dispatcher.run(tasks)
    finally:
        dispatcher.close()
        progress.close()
    path = args.summary or (args.out / "summary.json")
    write_summary(
        summary,
        path,
        {"workflow": str(args.workflow), "canvas": str(args.canvas) if args.canvas else None, "seeds": seeds, "out": str(args.out)},
    )
    counts = summary.to_dict()["tasks"]
    print(
        json.dumps(
            {"summary": str(path), **counts, "seconds": round(summary.seconds, 2), "servers": {s.url: s.done for s in summary.servers}}
        )
    )
    _print_errors(_distinct_errors(r.error for r in summary.results if r.status == "failed"))
    if summary.interrupted:
        return 130
    return 0 if summary.ok else 1


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return cmd_generate(args)
        if args.command == "run-goal":
            return cmd_run_goal(args)
    except PakatiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2
