"""Region LoRAs in the one regional pass: Pakati's PakatiRegionLora vs ComfyUI's hooks route.

One process, the 16.7 M-parameter SDXL-class UNet of bench_regional.py, two side-by-side regions:

* Pakati, 2 regions (the baseline: the same regional run without LoRAs);
* Pakati, 2 regions + 2 region LoRAs (``PakatiRegionLora``, rank 16 on every attention and
  feed-forward linear of the transformer blocks, one per region);
* ComfyUI's hooks route doing the same two masked LoRAs: the base prompt plus each region's
  prompt through ``ConditioningSetProperties`` with the region's mask and a ``CreateHookLora``
  hook (ComfyUI evaluates each hook group in its own pass with its LoRA patched in).

Rounds alternate as in bench_regional.py (every configuration once per round, order rotated, a
warm-up round first); each ratio is the median of its per-round ratios (their range is printed:
on a loaded machine it is wide). Beside the timings, the floating-point work of one sampling step
of each configuration is counted (``torch.utils.flop_counter``, with CPU SDPA counted too): a
figure no machine load changes, and the floor of the LoRA ratio.

    python bench/bench_region_adapters.py --threads 1 --markdown

Needs the ComfyUI host ($COMFYUI_PATH or ~/comfy/ComfyUI). Weights are random: timings only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_regional import build_model, cpu_name, load_host

PROMPTS = ("a knight in silver armour", "a wizard in a blue robe")


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=768, help="image side in pixels")
    ap.add_argument("--steps", type=int, default=6, help="euler steps")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up round")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="wall seconds, or this process's CPU seconds")
    ap.add_argument("--markdown", action="store_true", help="print the docs table (with command and conditions)")
    return ap.parse_args()


def count_cpu_sdpa(torch) -> None:
    """torch's flop counter counts the CUDA SDPA kernels only: count the CPU one the same way."""
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None and op not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(op)
        def _sdpa_cpu(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def main() -> None:
    args = parse()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    torch, nodes = load_host(args.threads)
    count_cpu_sdpa(torch)
    import comfy.model_management
    import folder_paths

    from region_lora_helpers import kohya_lora, write_lora

    N = nodes.NODE_CLASS_MAPPINGS
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    model, clip, params = build_model("16m", 64, torch.float32)
    device = comfy.model_management.get_torch_device()
    size = args.size
    lora_dir = Path(tempfile.mkdtemp(prefix="pakati_bench_loras_"))
    names = []
    for i in range(2):
        sd = kohya_lora(model, None, rank=args.rank, seed=10 + i, scale=0.05, convs=False, only=("attn1.", "attn2.", "ff."))
        names.append(write_lora(sd, lora_dir, f"bench_region_{i}.safetensors").name)
    layers = sum(1 for k in sd if k.endswith(".lora_down.weight"))
    folder_paths.add_model_folder_path("loras", str(lora_dir))

    def encode(text):
        return clip.encode_from_tokens_scheduled(clip.tokenize(text))

    negative = encode("blurry")
    latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}
    half = size // 2
    doc = json.dumps(
        {
            "version": 1,
            "width": size,
            "height": size,
            "regions": [
                {"id": f"r{i}", "shape": "rect", "points": [[i * half, 0], [(i + 1) * half, size]], "prompt": PROMPTS[i]} for i in range(2)
            ],
        }
    )
    canvas = N["PakatiCanvas"].execute(width=size, height=size, regions=doc).result[0]

    regions, pos, _ = (
        N["PakatiRegionalConditioning"]
        .execute(clip=clip, canvas=canvas, base_prompt="a meadow, golden hour", base_negative="blurry")
        .result
    )
    apply = {"base_weight": 0.3, "auto_negative": 0.0, "start_percent": 0.0, "end_percent": 1.0}
    pakati = N["PakatiApplyRegions"].execute(model=model, regions=regions, **apply).result[0]
    with_loras = model
    for i in range(2):
        with_loras = (
            N["PakatiRegionLora"].execute(model=with_loras, canvas=canvas, region=f"r{i}", lora_name=names[i], strength_model=1.0).result[0]
        )
    with_loras = N["PakatiApplyRegions"].execute(model=with_loras, regions=regions, **apply).result[0]

    hooks_cond = list(encode("a meadow, golden hour"))
    from comfy_extras.nodes_hooks import ConditioningSetProperties, CreateHookLora  # ComfyUI's own hook nodes

    create_hook, set_props = CreateHookLora(), ConditioningSetProperties()
    for i in range(2):
        mask = N["PakatiRegionMask"].execute(canvas=canvas, region=i, feather=-1.0, exclusive=True).result[0]
        hook = create_hook.create_hook(names[i], 1.0, 0.0)[0]
        hooks_cond += set_props.set_properties(encode(PROMPTS[i]), 1.0, "default", mask=mask, hooks=hook)[0]

    configs = [
        ("Pakati, 2 regions, no LoRA", pakati, pos),
        (f"Pakati, 2 regions + 2 region LoRAs (rank {args.rank})", with_loras, pos),
        (f"ComfyUI hooks (`CreateHookLora` + `ConditioningSetProperties`), 2 masked LoRAs (rank {args.rank})", model, hooks_cond),
    ]
    baseline, ours, hooks = (c[0] for c in configs)

    def step_flops(m, p) -> float:
        """GFLOP of one sampling step (one euler step: every model evaluation it makes)."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            nodes.common_ksampler(m, 42, 1, 5.0, "euler", "normal", p, negative, latent)
        return counter.get_total_flops() / 1e9

    gflop = {name: step_flops(m, p) for name, m, p in configs}

    def timed(m, p) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = clock()
        nodes.common_ksampler(m, 42, args.steps, 5.0, "euler", "normal", p, negative, latent)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clock() - t

    seconds: dict[str, list[float]] = {name: [] for name, *_ in configs}
    vs_plain: list[float] = []
    vs_hooks: list[float] = []
    for r in range(args.repeats + 1):
        shift = r % len(configs)
        this = {}
        for name, m, p in configs[shift:] + configs[:shift]:
            this[name] = timed(m, p)
            print(f"  round {r}{' (warm-up)' if r == 0 else ''}: {name}: {this[name]:.3f} s", file=sys.stderr, flush=True)
        if r:
            for name, sec in this.items():
                seconds[name].append(sec)
            vs_plain.append(this[ours] / this[baseline])
            vs_hooks.append(this[hooks] / this[ours])
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = torch.get_num_threads()
    what = (
        f"16m SDXL-class UNet ({params:.1f} M parameters, fp32, random weights), {size}x{size}, {args.steps} euler steps, CFG 5, "
        f"2 side-by-side regions, LoRAs of rank {args.rank} on {layers} linears (every attention and feed-forward linear), "
        f"{args.clock} seconds, {threads} torch thread{'s' * (threads > 1)}, device {device}"
        + (f" ({cpu_name()}, {os.cpu_count()} cores)" if device.type == "cpu" else f" ({torch.cuda.get_device_name()})")
    )
    command = "python bench/bench_region_adapters.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [(name, statistics.median(seconds[name])) for name, *_ in configs]
    ratio_plain, ratio_hooks = statistics.median(vs_plain), statistics.median(vs_hooks)
    spread_plain, spread_hooks = f"{min(vs_plain):.2f}–{max(vs_plain):.2f}", f"{min(vs_hooks):.2f}–{max(vs_hooks):.2f}"
    work = gflop[ours] / gflop[baseline]
    if args.markdown:
        print(
            f"\n`{command}` — measured {when}: {what}; rounds alternate, median of {args.repeats}; "
            f"1-min load average {load:.1f} at the start, {load_end:.1f} at the end.\n"
        )
        print("| configuration | seconds | GFLOP per step (counted) |")
        print("| --- | ---: | ---: |")
        for name, sec in rows:
            print(f"| {name} | {sec:.2f} | {gflop[name]:.1f} |")
        print("\n| ratio | measured (range over rounds) | counted work | target |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| region LoRAs / the same run without them | {ratio_plain:.2f}× ({spread_plain}) | {work:.3f}× | ≤ 1.15× |")
        print(
            f"| ComfyUI hooks route / Pakati region LoRAs | {ratio_hooks:.2f}× ({spread_hooks}) | "
            f"{gflop[hooks] / gflop[ours]:.2f}× | ≥ 1.8× |"
        )
    else:
        print(f"\nRegion LoRA benchmark: {what}\nmedian of {args.repeats} alternating rounds; load {load:.1f} -> {load_end:.1f}")
        for name, sec in rows:
            print(f"{name:100s} {sec:9.3f} s {gflop[name]:8.1f} GFLOP/step")
        print(
            f"region LoRAs / without: {ratio_plain:.2f}x ({spread_plain}; counted work {work:.3f}x)   "
            f"hooks / region LoRAs: {ratio_hooks:.2f}x ({spread_hooks}; counted work {gflop[hooks] / gflop[ours]:.2f}x)"
        )


if __name__ == "__main__":
    main()
