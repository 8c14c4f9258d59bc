"""Attend-and-Excite cost: regional sampling with PakatiAttendExcite vs the same sampling without it.

One process, one model, one resolution: Pakati Apply Regions with 2 side-by-side regions (the
baseline), then the same with Pakati Attend and Excite on both regions' subjects for the first
--excite-steps steps, --iterations gradient updates each (threshold 1, so every update runs),
for each --blocks choice. Runs alternate (a warm-up round first, the order rotated each round);
each configuration reports its median seconds. The cost of one excite update (a gradient pass
of the UNet up to the last selected layer, plus the update) is the extra time divided by the
number of updates, printed as a ratio to one plain sampler step (one UNet call on the CFG
batch of 2). Then the peak memory of one whole run of each (CUDA allocator peak; on the CPU,
the PyTorch profiler's allocation events).

    python bench/bench_attend_excite.py                                   # 16.7 M-param SDXL-class UNet, CPU
    python bench/bench_attend_excite.py --unet sdxl --size 1024 --steps 20 --dtype fp16   # full-size SDXL UNet (GPU)

Needs the ComfyUI host ($COMFYUI_PATH or ~/comfy/ComfyUI). Weights are random: timings only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_regional import UNETS, build_model, cpu_name, cpu_peak, load_host  # noqa: E402  (one builder of the bench models)

PROMPT = "a cat and a dog on a sofa, living room, soft daylight"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unet", choices=sorted(UNETS), default="16m")
    ap.add_argument("--channels", type=int, default=64, help="width of --unet tiny")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--excite-steps", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--blocks", default="lowest resolution,all", help="comma-separated PakatiAttendExcite blocks choices")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: process CPU seconds (steadier on a shared machine)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    args = ap.parse_args()

    torch, nodes = load_host(args.threads)
    import comfy.model_management

    N = nodes.NODE_CLASS_MAPPINGS
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    model, clip, params = build_model(args.unet, args.channels, dtype)
    device = comfy.model_management.get_torch_device()
    size, half = args.size, args.size // 2
    layout = json.dumps(
        {
            "version": 1,
            "width": size,
            "height": size,
            "regions": [
                {"id": "cat", "shape": "rect", "points": [[0, 0], [half, size]], "prompt": "a fluffy ginger cat"},
                {"id": "dog", "shape": "rect", "points": [[half, 0], [size, size]], "prompt": "a golden retriever dog"},
            ],
        }
    )
    canvas = N["PakatiCanvas"].execute(width=size, height=size, regions=layout).result[0]
    regions, positive, negative = (
        N["PakatiRegionalConditioning"].execute(clip=clip, canvas=canvas, base_prompt=PROMPT, base_negative="blurry").result
    )
    regional = (
        N["PakatiApplyRegions"]
        .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )
    latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}

    def excited(blocks: str):
        return (
            N["PakatiAttendExcite"]
            .execute(
                model=regional,
                clip=clip,
                text=PROMPT,
                words="",
                subjects="",
                blocks=blocks,
                steps=args.excite_steps,
                iterations=args.iterations,
                scale=20.0,
                threshold=1.0,
                reduce="max",
                regions=regions,
            )
            .result[0]
        )

    configs = [("Pakati 2 regions", regional)] + [(f"+ Attend-and-Excite ({b})", excited(b)) for b in args.blocks.split(",")]

    def run(m) -> None:
        nodes.common_ksampler(m, 42, args.steps, 5.0, "euler", "normal", positive, negative, latent)

    clock = time.perf_counter if args.clock == "wall" else time.process_time

    def timed(m) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = clock()
        run(m)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clock() - t

    seconds: dict[str, list[float]] = {name: [] for name, _ in configs}
    for r in range(args.repeats + 1):
        shift = r % len(configs)
        for name, m in configs[shift:] + configs[:shift]:
            sec = timed(m)
            print(f"  round {r}{' (warm-up)' if r == 0 else ''}: {name}: {sec:.3f} s", file=sys.stderr, flush=True)
            if r:
                seconds[name].append(sec)

    peaks = {}
    if not args.no_memory:
        for name, m in configs:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start = torch.cuda.memory_allocated()
                run(m)
                torch.cuda.synchronize()
                peaks[name] = torch.cuda.max_memory_allocated() - start
            else:
                peaks[name] = cpu_peak(torch, lambda m=m: run(m))

    base = statistics.median(seconds[configs[0][0]])
    step = base / args.steps
    updates = args.excite_steps * args.iterations
    where = f"{cpu_name()}, {os.cpu_count()} cores" if device.type == "cpu" else torch.cuda.get_device_name()
    print(
        f"\nAttend-and-Excite benchmark: {args.unet} SDXL-class UNet ({params:.1f} M parameters, "
        f"{args.dtype}, random weights), {size}x{size}, "
        f"{args.steps} euler steps, CFG 5, 2 regions; excite {args.excite_steps} steps x "
        f"{args.iterations} updates = {updates} gradient passes; "
        f"device {device} ({where}), {torch.get_num_threads()} torch threads, {args.clock} seconds, median of {args.repeats}"
    )
    print("command: python bench/bench_attend_excite.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print(f"{'configuration':44s} {'seconds':>8s} {'ratio':>6s} {'per update':>11s} {'/ plain step':>12s} {'peak memory':>12s}")
    for name, _ in configs:
        sec = statistics.median(seconds[name])
        mem = f"{peaks[name] / 2**20:.1f} MiB" if name in peaks else "-"
        if name == configs[0][0]:
            print(f"{name:44s} {sec:8.3f} {1:5.2f}x {'-':>11s} {'-':>12s} {mem:>12s}")
            continue
        per = (sec - base) / updates
        print(f"{name:44s} {sec:8.3f} {sec / base:5.2f}x {per:10.3f}s {per / step:11.2f}x {mem:>12s}")
    print(
        f"(a plain sampler step: {step:.3f} s; peak memory: "
        f"{'CUDA allocator peak' if device.type == 'cuda' else 'PyTorch profiler CPU allocations'} "
        "over one run)"
    )


if __name__ == "__main__":
    main()
