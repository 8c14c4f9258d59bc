"""Scale-out through the client: N tasks over one ComfyUI server, then over two (same run).

Starts real ComfyUI servers (main.py --cpu, the test-only tiny SDXL-class model node), each
limited to one CPU thread (OMP_NUM_THREADS=1), warms each with one prompt (model build), then
renders the regional template with the user's loader swapped for the tiny model:

    python bench/bench_client_scaleout.py [--tasks 8] [--size 256] [--steps 8] [--servers 2] [--backend threads|ray]

Prints the wall time over 1 server and over K servers and their ratio (target for 2: >= 1.7x).
Needs at least K free cores to mean anything: on a machine where other jobs hold the cores,
the servers share them and the ratio says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from comfy_client import ComfyServer  # noqa: E402  (tests/ helper: starts main.py on a free port)
from conftest import HOST, HOST_NODES  # noqa: E402
from pakati_core import Canvas  # noqa: E402
from pakati_core.client import Workflow, generate  # noqa: E402


def workflow(steps: int, channels: int) -> Workflow:
    wf = Workflow.load(REPO / "workflows" / "api" / "regional_sdxl.json")
    wf.prompt["1"] = {"class_type": "PakatiTestTinySDXL", "inputs": {"seed": 0, "model_channels": channels}}
    wf.prompt["6"]["inputs"].update(steps=steps, sampler_name="euler", scheduler="normal")
    return wf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--channels", type=int, default=64, help="tiny UNet width (32..320)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per server")
    ap.add_argument("--backend", choices=("threads", "ray"), default="threads")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each configuration, alternated; the median is shown")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if HOST is None:
        sys.exit("no ComfyUI host (set COMFYUI_PATH)")

    wf = workflow(args.steps, args.channels)
    canvas = Canvas.from_dict(wf.canvas()).scaled(args.size, args.size)
    env = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    servers = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for k in range(args.servers):
                s = ComfyServer(
                    HOST, Path(tmp) / f"s{k}", packs={"pakati": REPO, "pakati_test_nodes": HOST_NODES / "pakati_test_nodes"}, env=env
                )
                s.start()
                servers.append(s)
            urls = [s.url for s in servers]
            # Warm-up: build the tiny model and encode the prompts once on every server.
            warm = generate(wf, servers=urls, seeds=range(1000, 1000 + args.servers), canvas=canvas, backend="threads")
            assert warm.ok, warm.to_dict()["failures"]
            times: dict[int, list[float]] = {1: [], args.servers: []}
            per: dict[int, dict] = {}
            for rep in range(args.repeats):  # alternate 1 and K servers so load drift hits both
                for n in (1, args.servers):
                    seeds = range(10_000 * rep + n * 100, 10_000 * rep + n * 100 + args.tasks)
                    t0 = time.perf_counter()
                    summary = generate(wf, servers=urls[:n], seeds=seeds, canvas=canvas, backend=args.backend)
                    times[n].append(time.perf_counter() - t0)
                    assert summary.ok, summary.to_dict()["failures"]
                    per[n] = {s.url: s.done for s in summary.servers}
            rows = [
                {
                    "servers": n,
                    "seconds": round(statistics.median(times[n]), 2),
                    "runs": [round(t, 2) for t in times[n]],
                    "per_server": per[n],
                }
                for n in (1, args.servers)
            ]
            base = rows[0]["seconds"]
            print(
                f"{args.tasks} tasks, {args.size}x{args.size}, {args.steps} euler steps, tiny UNet {args.channels} ch, "
                f"{args.threads} thread(s)/server, backend {args.backend}, median of {args.repeats}, "
                f"os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
            )
            print("| servers | seconds | speed-up | tasks per server |")
            print("| ---: | ---: | ---: | --- |")
            for r in rows:
                print(f"| {r['servers']} | {r['seconds']:.2f} | {base / r['seconds']:.2f}x | {sorted(r['per_server'].values())} |")
            if args.json:
                args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
        finally:
            for s in servers:
                s.stop()


if __name__ == "__main__":
    main()
