"""Regional prompting cost: Pakati's one-pass attention vs plain sampling and ComfyUI's ConditioningSetMask.

One process, one model, one resolution and step count: plain single-prompt sampling (the
baseline), Pakati with N side-by-side regions, and ComfyUI's own ConditioningSetMask with the
same prompts and masks. Runs alternate (every configuration once per round, a warm-up round
first, the order rotated each round), so a machine that slows down mid-run slows every
configuration alike; each configuration reports its median seconds and the median of its
per-round ratio to the plain run of the same round. Then the peak extra memory of the regional
cross-attention at 1024x1024 (8 regions) against the plain cross-attention of the same layer.

    python bench/bench_regional.py                          # 16.7 M-param SDXL-class UNet, 768x768, 6 steps, 1/2/4/8/16 regions
    python bench/bench_regional.py --unet sdxl              # full-size SDXL UNet architecture, fp32, 512x512, 2 steps, 1/4/8 regions
    python bench/bench_regional.py --unet sdxl --size 1024 --steps 25 --dtype fp16   # on a GPU
    python bench/bench_regional.py --markdown               # the README table, with the command and conditions
    python bench/bench_regional.py --unet sdxl --cold       # every run projects the region tokens (a first run)
    python bench/bench_regional.py --family flux --threads 1 --clock cpu   # a 12-block Flux-class transformer, 512x512, 1/4/8 regions

Needs the ComfyUI host ($COMFYUI_PATH or ~/comfy/ComfyUI). Weights are random: timings only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU memory profiler's start/stop chatter

REPO = Path(__file__).resolve().parent.parent
HOST = Path(os.environ.get("COMFYUI_PATH", Path.home() / "comfy" / "ComfyUI")).expanduser()

UNETS = {
    # the 16.7 M-parameter SDXL-class UNet of issue 11: 64 channels, mult 1/2/2, transformer depth 0/2/2
    "16m": {
        "model_channels": 64,
        "transformer_depth": [0, 2, 2],
        "transformer_depth_output": [0, 0, 2, 2, 2, 2],
        "transformer_depth_middle": 2,
    },
    # the test suite's 32-channel tiny UNet, widened by --channels
    "tiny": {},
    # the full-size SDXL UNet architecture (2.6 B parameters)
    "sdxl": {
        "model_channels": 320,
        "channel_mult": [1, 2, 4],
        "transformer_depth": [0, 0, 2, 2, 10, 10],
        "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
        "transformer_depth_middle": 10,
        "num_res_blocks": [2, 2, 2],
        "num_head_channels": 64,
    },
}
# Flux-class transformers (comfy.supported_models.Flux with a small config, tests/host_nodes/pakati_test_nodes/tiny_flux.py):
# "bench" takes about a second a step at 512x512 on one CPU thread
FLUXES = {
    "bench": {"hidden_size": 192, "depth": 4, "depth_single_blocks": 8},
    "tiny": {"hidden_size": 64, "depth": 2, "depth_single_blocks": 2},
    "small": {"hidden_size": 64, "depth": 4, "depth_single_blocks": 8},
}
FLUX_DEFAULTS = {"size": 512, "steps": 4, "regions": "1,4,8"}
DEFAULTS = {
    "16m": dict(size=768, steps=6, regions="1,2,4,8,16"),
    "tiny": dict(size=768, steps=6, regions="1,2,4,8"),
    "sdxl": dict(size=512, steps=2, regions="1,4,8"),
}
PROMPTS = [
    "a red brick house",
    "a green forest",
    "a blue lake",
    "snowy mountains",
    "a yellow sunflower field",
    "a white sailboat",
    "a flock of birds",
    "an old stone bridge",
    "a lighthouse",
    "a field of tulips",
    "a desert dune",
    "a waterfall",
    "a village market",
    "a pine cabin",
    "a coral reef",
    "a night sky",
]


def build_model(unet: str, channels: int, dtype):
    """(ModelPatcher, CLIP, UNet parameters in millions): a random-weight SDXL-class model of one of
    ``UNETS`` built from ComfyUI's own classes (the benches share it; call after ComfyUI is importable)."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    from pakati_test_nodes.tiny_sdxl import UNET_CONFIG, _init_, build_clip

    config = dict(UNET_CONFIG, **UNETS[unet])
    if unet == "tiny":
        config["model_channels"] = channels
    sdxl = comfy.supported_models.SDXL(config)
    sdxl.set_inference_dtype(dtype, None)
    base_model = sdxl.get_model({})
    _init_(base_model.diffusion_model, 0)
    device = comfy.model_management.get_torch_device()
    model = comfy.model_patcher.ModelPatcher(base_model, load_device=device, offload_device=comfy.model_management.unet_offload_device())
    return model, build_clip(1), sum(p.numel() for p in base_model.diffusion_model.parameters()) / 1e6


def build_flux(name: str):
    """(ModelPatcher, CLIP, parameters in millions): a random-weight Flux-class model of ``FLUXES``."""
    from pakati_test_nodes.tiny_flux import build_clip, build_model

    model = build_model(0, **FLUXES[name])
    return model, build_clip(1), sum(p.numel() for p in model.model.diffusion_model.parameters()) / 1e6


def load_host(threads: int | None = None):
    """ComfyUI imported from HOST (on the CPU where there is no CUDA), torch's thread count set,
    progress bars off, and the pack loaded through ComfyUI's own loader: ``(torch, nodes)``.
    Shared by the benches."""
    sys.path[:0] = [str(HOST), str(REPO / "tests" / "host_nodes")]
    import torch
    from comfy.cli_args import args as comfy_args

    if not torch.cuda.is_available():
        comfy_args.cpu = True
    if threads:
        torch.set_num_threads(threads)
    import comfy.utils

    import nodes

    comfy.utils.PROGRESS_BAR_ENABLED = False
    asyncio.run(nodes.load_custom_node(str(REPO)))
    return torch, nodes


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--family", choices=["sdxl", "flux"], default="sdxl", help="model family (flux: CFG 1, Flux's guidance, no memory figure)"
    )
    ap.add_argument("--flux", choices=sorted(FLUXES), default="bench", help="Flux-class model size for --family flux")
    ap.add_argument("--unet", choices=sorted(UNETS), default="16m")
    ap.add_argument("--channels", type=int, default=64, help="width of --unet tiny")
    ap.add_argument("--size", type=int, help="image side in pixels (default 768; 512 for --unet sdxl)")
    ap.add_argument("--steps", type=int, help="euler steps (default 6; 2 for --unet sdxl)")
    ap.add_argument("--regions", help="region counts, comma-separated (default 1,2,4,8,16; 1,4,8 for --unet sdxl)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up round")
    ap.add_argument("--warmup-steps", type=int, help="steps of each warm-up run (default: --steps)")
    ap.add_argument("--comfy-repeats", type=int, help="rounds that include ConditioningSetMask (default: all)")
    ap.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    ap.add_argument("--no-comfy-masks", action="store_true", help="skip the ConditioningSetMask comparison")
    ap.add_argument(
        "--cold",
        action="store_true",
        help="drop the region K/V projections before every run, so each pays them as a first run does "
        "(default: kept from the warm-up, as for a re-queue with another seed)",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the attention memory measurement")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed seconds (a quiet machine); cpu: this process's CPU seconds, far less sensitive to other "
        "processes on a shared machine (use with --threads 1: idle worker threads spin)",
    )
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    ap.add_argument("--markdown", action="store_true", help="print the README table (with command and conditions)")
    ap.add_argument(
        "--depth-sweep",
        help="--family flux: instead of timing, measure for these comma-separated depth values how much "
        "changing the right region's prompt changes the latent inside vs outside it",
    )
    args = ap.parse_args()
    if args.family == "flux":
        args.no_memory = True  # the memory figure measures SDXL's cross-attention layer
    for name, value in (FLUX_DEFAULTS if args.family == "flux" else DEFAULTS[args.unet]).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def depth_sweep(args) -> None:
    """Locality and effect of PakatiApplyRegions' ``depth`` on a Flux-class model: two side-by-side
    regions, the right one's prompt changed; mean |delta latent| inside the right half, outside it, their ratio."""
    torch, nodes = load_host(args.threads)
    N = nodes.NODE_CLASS_MAPPINGS
    model, clip, params = build_flux(args.flux)
    size, half = args.size, args.size // 16
    latent = {"samples": torch.zeros(1, 16, size // 8, size // 8)}

    def doc(right: str) -> str:
        return json.dumps(
            {
                "version": 1,
                "width": size,
                "height": size,
                "regions": [
                    {"id": "l", "shape": "rect", "points": [[0, 0], [size // 2, size]], "prompt": "a red brick house"},
                    {"id": "r", "shape": "rect", "points": [[size // 2, 0], [size, size]], "prompt": right},
                ],
            }
        )

    encoded = []
    for right in ("a blue lake", "a burning volcano at night, red lava"):
        canvas = N["PakatiCanvas"].execute(width=size, height=size, regions=doc(right)).result[0]
        encoded.append(
            N["PakatiRegionalConditioning"]
            .execute(clip=clip, canvas=canvas, base_prompt="a landscape, golden hour", base_negative="")
            .result
        )
    pos, neg = encoded[0][1], encoded[0][2]
    plain = nodes.common_ksampler(model, 42, args.steps, 1.0, "euler", "simple", pos, neg, latent)[0]["samples"]
    rows = []
    for depth in [float(x) for x in args.depth_sweep.split(",")]:
        outs = []
        for regions, _, _ in encoded:
            m = (
                N["PakatiApplyRegions"]
                .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0, depth=depth)
                .result[0]
            )
            outs.append(nodes.common_ksampler(m, 42, args.steps, 1.0, "euler", "simple", pos, neg, latent)[0]["samples"])
        d = (outs[1] - outs[0]).abs()
        inside, outside = float(d[..., half:].mean()), float(d[..., :half].mean())
        effect = float((outs[0] - plain).abs().mean())
        rows.append((depth, inside, outside, inside / outside if outside else float("inf"), effect))
    blocks = FLUXES[args.flux]
    print(
        f"\n`python bench/bench_regional.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}` — {args.flux} Flux-class transformer "
        f"({blocks['depth']} double + {blocks['depth_single_blocks']} single blocks, hidden "
        f"{blocks['hidden_size']}, {params:.1f} M parameters, "
        f"random weights), {size}x{size}, {args.steps} euler steps, base_weight 0.3; right region's prompt changed:\n"
    )
    print("| depth | blocks with regions | mean \\|Δ\\| inside | mean \\|Δ\\| outside | inside / outside | mean \\|regional − plain\\| |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    total = blocks["depth"] + blocks["depth_single_blocks"]
    for depth, inside, outside, ratio, effect in rows:
        print(
            f"| {depth:.2f} | {min(total, round(depth * total))} of {total} | {inside:.3g} | {outside:.3g} | {ratio:.1f} | {effect:.3g} |"
        )


def main() -> None:
    args = parse()
    if args.depth_sweep:
        if args.family != "flux":
            raise SystemExit("--depth-sweep needs --family flux")
        depth_sweep(args)
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    torch, nodes = load_host(args.threads)
    import comfy.model_management

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    N = nodes.NODE_CLASS_MAPPINGS
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    flux = args.family == "flux"
    if flux:
        if args.dtype != "fp32":
            raise SystemExit("--family flux builds fp32 weights; cast them with ComfyUI's own options on a GPU instead")
        model, clip, params = build_flux(args.flux)
    else:
        model, clip, params = build_model(args.unet, args.channels, dtype)
    cfg, scheduler, channels = (1.0, "simple", 16) if flux else (5.0, "normal", 4)
    device = comfy.model_management.get_torch_device()

    size = args.size
    encode = lambda text: clip.encode_from_tokens_scheduled(clip.tokenize(text))  # noqa: E731
    positive, negative = encode("a landscape, golden hour"), encode("blurry")
    latent = {"samples": torch.zeros(1, channels, size // 8, size // 8)}

    def stripes(n: int) -> str:
        w = size / n
        regions = [
            {"id": f"r{i}", "shape": "rect", "points": [[round(i * w), 0], [round((i + 1) * w), size]], "prompt": PROMPTS[i % len(PROMPTS)]}
            for i in range(n)
        ]
        return json.dumps({"version": 1, "width": size, "height": size, "regions": regions})

    configs = [("plain, single prompt", model, positive, True)]
    counts = [int(x) for x in args.regions.split(",")]
    for n in counts:
        canvas = N["PakatiCanvas"].execute(width=size, height=size, regions=stripes(n)).result[0]
        regions, pos, _ = (
            N["PakatiRegionalConditioning"]
            .execute(clip=clip, canvas=canvas, base_prompt="a landscape, golden hour", base_negative="blurry")
            .result
        )
        patched = (
            N["PakatiApplyRegions"]
            .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
            .result[0]
        )
        configs.append((f"Pakati, {n} region{'s' * (n > 1)}", patched, pos, True))
    if not args.no_comfy_masks:
        for n in counts:
            canvas = N["PakatiCanvas"].execute(width=size, height=size, regions=stripes(n)).result[0]
            cond = list(positive)
            for i in range(n):
                mask = N["PakatiRegionMask"].execute(canvas=canvas, region=i, feather=-1.0, exclusive=True).result[0]
                cond += nodes.ConditioningSetMask().append(encode(PROMPTS[i % len(PROMPTS)]), mask, "default", 1.0)[0]
            configs.append((f"ComfyUI `ConditioningSetMask`, {n} region{'s' * (n > 1)}", model, cond, False))

    def timed(m, pos, steps: int) -> float:
        if args.cold:
            for wrapper in m.get_wrappers("apply_model", "pakati_regional"):
                if hasattr(wrapper, "projections"):  # Flux's region tokens go through the model itself: nothing is kept
                    wrapper.projections.clear()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = clock()
        nodes.common_ksampler(m, 42, steps, cfg, "euler", scheduler, pos, negative, latent)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clock() - t

    comfy_rounds = args.repeats if args.comfy_repeats is None else args.comfy_repeats
    seconds: dict[str, list[float]] = {name: [] for name, *_ in configs}
    ratios: dict[str, list[float]] = {name: [] for name, *_ in configs}
    for r in range(args.repeats + 1):
        shift = r % len(configs)
        order = configs[shift:] + configs[:shift]
        this: dict[str, float] = {}
        for name, m, pos, always in order:
            if not always and not 1 <= r <= comfy_rounds:  # the slow baseline skips the warm-up round
                continue
            this[name] = timed(m, pos, args.steps if r else (args.warmup_steps or args.steps))
            print(f"  round {r}{' (warm-up)' if r == 0 else ''}: {name}: {this[name]:.3f} s", file=sys.stderr, flush=True)
        if r:  # round 0 warms up
            for name, sec in this.items():
                seconds[name].append(sec)
                ratios[name].append(sec / this["plain, single prompt"])
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    memory = None if args.no_memory else attention_memory(torch, N, model, regions_for(N, clip, 1024, 8), 1024, dtype, device)

    rows = [
        (name, statistics.median(seconds[name]), statistics.median(ratios[name]), len(seconds[name]))
        for name, *_ in configs
        if seconds[name]
    ]
    cpu = cpu_name()
    if flux:
        blocks = FLUXES[args.flux]
        model_what = (
            f"{args.flux} Flux-class transformer ({blocks['depth']} double + {blocks['depth_single_blocks']} single blocks, "
            f"hidden {blocks['hidden_size']}, {params:.1f} M parameters, fp32, random weights), {size}x{size}, "
            f"{args.steps} euler steps, CFG 1 (Flux guidance 3.5), base_weight 0.3, side-by-side regions, "
        )
    else:
        model_what = (
            f"{args.unet} SDXL-class UNet ({params:.1f} M parameters, {args.dtype}, random weights), {size}x{size}, "
            f"{args.steps} euler steps, CFG 5, base_weight 0.3, side-by-side regions, "
            f"{'region K/V projected in every run' if args.cold else 'region K/V kept from the warm-up run'}, "
        )
    what = (
        model_what + f"{args.clock} seconds, "
        f"{torch.get_num_threads()} torch thread{'s' * (torch.get_num_threads() > 1)}, device {device}"
        + (f" ({cpu}, {os.cpu_count()} cores)" if device.type == "cpu" else f" ({torch.cuda.get_device_name()})")
    )
    command = "python bench/bench_regional.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if args.markdown:
        print(
            f"\n`{command}` — measured {when}: {what}; rounds alternate, median of {args.repeats}"
            f"{'' if args.no_comfy_masks else f' (ConditioningSetMask: {min(comfy_rounds, args.repeats)})'}; "
            f"1-min load average {load:.1f} at the start, {load_end:.1f} at the end.\n"
        )
        print("| configuration | seconds | ratio to plain |")
        print("| --- | ---: | ---: |")
        for name, sec, ratio, _ in rows:
            print(f"| {name} | {sec:.2f} | {ratio:.2f}× |")
        if memory:
            print(
                f"\nPeak memory of one cross-attention call at 1024×1024 (the model's largest attn2 layer, {memory['layer']}, "
                f"CFG batch of 2): plain {memory['plain'] / 2**20:.1f} MiB; Pakati with 8 regions {memory['regional'] / 2**20:.1f} MiB, "
                f"{(memory['regional'] - memory['plain']) / 2**10:+.0f} KiB "
                f"({100 * (memory['regional'] - memory['plain']) / memory['plain']:+.1f} %), "
                f"plus {memory['cache'] / 2**20:.1f} MiB of cached region K/V for that layer ({memory['how']})."
            )
    else:
        print(f"\nRegional prompting benchmark: {what}\nmedian of {args.repeats} alternating rounds; load {load:.1f} -> {load_end:.1f}")
        print(f"{'configuration':46s} {'seconds':>9s} {'ratio':>7s}")
        for name, sec, ratio, _ in rows:
            print(f"{name:46s} {sec:9.3f} {ratio:6.2f}x")
        if memory:
            print(
                f"\ncross-attention peak at 1024x1024 ({memory['layer']}): plain {memory['plain'] / 2**20:.1f} MiB, "
                f"8 regions {memory['regional'] / 2**20:.1f} MiB "
                f"({100 * (memory['regional'] - memory['plain']) / memory['plain']:+.1f} %), "
                f"cached region K/V {memory['cache'] / 2**20:.1f} MiB [{memory['how']}]"
            )


def regions_for(N, clip, size: int, n: int):
    w = size / n
    doc = json.dumps(
        {
            "version": 1,
            "width": size,
            "height": size,
            "regions": [
                {"id": f"r{i}", "shape": "rect", "points": [[round(i * w), 0], [round((i + 1) * w), size]], "prompt": PROMPTS[i]}
                for i in range(n)
            ],
        }
    )
    canvas = N["PakatiCanvas"].execute(width=size, height=size, regions=doc).result[0]
    return N["PakatiRegionalConditioning"].execute(clip=clip, canvas=canvas, base_prompt="a landscape", base_negative="").result


def attention_memory(torch, N, model, encoded, size: int, dtype, device) -> dict:
    """Peak bytes allocated by one cross-attention call (projections, attention, output) at ``size``, plain vs 8 regions.

    CPU: the PyTorch profiler's allocation events; CUDA: the allocator's peak statistics.
    """
    regions, pos, _ = encoded
    patched = (
        N["PakatiApplyRegions"]
        .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )
    wrapper = patched.get_wrappers("apply_model", "pakati_regional")[0]
    patch = sys.modules[type(wrapper).__module__]
    unet = model.model.diffusion_model
    key, layer = patch.attn2_blocks(unet)[0]  # the highest-resolution transformer level: the most positions
    latent = size // 8
    level = sum(1 for b in unet.input_blocks[: key[1]] if type(b[0]).__name__ == "Downsample")
    grid = latent
    for _ in range(level):
        grid = (grid + 1) // 2
    channels = layer.to_q.in_features
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, grid * grid, channels, generator=g).to(device=device, dtype=dtype)
    context = pos[0][0].to(device=device, dtype=dtype).expand(2, -1, -1).contiguous()
    replace = patch.RegionalAttn2(wrapper.core, patch.CallState((latent, latent), False), layer, wrapper.projections)
    options = {"n_heads": layer.heads, "cond_or_uncond": [0, 1], "activations_shape": (2, channels, grid, grid)}

    def plain():
        return layer(x, context=context)

    def regional():
        q, k, v = layer.to_q(x), layer.to_k(context), layer.to_v(context)
        return layer.to_out(replace(q, k, v, options))

    with torch.inference_mode():
        regional()  # steady state: plan built, region K/V cached (as from the second step on)
        kx, vx = replace.region_kv(device, dtype)
        cached = kx.numel() * kx.element_size() + vx.numel() * vx.element_size()
        if device.type == "cuda":
            peaks = []
            for fn in (plain, regional):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start = torch.cuda.memory_allocated()
                fn()
                torch.cuda.synchronize()
                peaks.append(torch.cuda.max_memory_allocated() - start)
            how = "CUDA allocator peak"
        else:
            peaks = [cpu_peak(torch, plain), cpu_peak(torch, regional)]
            how = "PyTorch profiler CPU allocations"
    return {
        "layer": f"{key[0]} block {key[1]}, {grid}x{grid} positions, {channels} channels",
        "plain": peaks[0],
        "regional": peaks[1],
        "cache": cached,
        "how": how,
    }


def cpu_peak(torch, fn) -> int:
    """Peak bytes the CPU allocator holds during ``fn()`` above what it held before (profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = [e for e in json.loads(path.read_text())["traceEvents"] if e.get("name") == "[memory]"]
    if not events:
        return 0
    events.sort(key=lambda e: e["ts"])
    before = events[0]["args"]["Total Allocated"] - events[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in events) - before


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


if __name__ == "__main__":
    main()
