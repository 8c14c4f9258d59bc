"""Attention-capture cost: sampling with PakatiCaptureAttention vs the same sampling without it.

One process, one model, one resolution: plain sampling (the baseline), the same with the
capture watching two words at every cross-attention layer for the whole schedule, and
PakatiApplyRegions (2 regions) without and with the capture. Runs alternate (every
configuration once per round, order rotated, a warm-up round first); each ratio is the median
of its per-round ratios to the run without the capture in the same round. Target: capture
<= 1.05x the run without it.

    python bench/bench_attention_capture.py                                   # 16.7 M-param SDXL-class UNet, CPU
    python bench/bench_attention_capture.py --markdown                        # the README table
    python bench/bench_attention_capture.py --unet sdxl --size 1024 --steps 20 --dtype fp16   # full-size SDXL UNet (GPU)

Needs the ComfyUI host ($COMFYUI_PATH or ~/comfy/ComfyUI). Weights are random: timings only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_regional import build_model, load_host  # noqa: E402  (one builder of the bench models)

PROMPT = "a woman in a red shirt and a straw hat standing in a park, golden hour"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unet", choices=["16m", "tiny", "sdxl"], default="16m", help="as in bench_regional.py")
    ap.add_argument("--channels", type=int, default=64, help="width of --unet tiny")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: this process's CPU seconds (use with --threads 1)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    ap.add_argument("--markdown", action="store_true", help="print the README table (with command and conditions)")
    args = ap.parse_args()

    torch, nodes = load_host(args.threads)
    import comfy.model_management

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    N = nodes.NODE_CLASS_MAPPINGS
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    model, clip, params = build_model(args.unet, args.channels, dtype)
    device = comfy.model_management.get_torch_device()
    size = args.size
    encode = lambda text: clip.encode_from_tokens_scheduled(clip.tokenize(text))  # noqa: E731
    positive, negative = encode(PROMPT), encode("blurry")
    latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}

    def timed(m) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = clock()
        nodes.common_ksampler(m, 42, args.steps, 5.0, "euler", "normal", positive, negative, latent)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clock() - t

    def capture(m):
        return (
            N["PakatiCaptureAttention"]
            .execute(model=m, clip=clip, text=PROMPT, words="shirt, straw hat", blocks="all", start_percent=0.0, end_percent=1.0)
            .result[0]
        )

    half = size // 2
    layout = json.dumps(
        {
            "version": 1,
            "width": size,
            "height": size,
            "regions": [
                {"id": "a", "shape": "rect", "points": [[0, 0], [half, size]], "prompt": "a red shirt"},
                {"id": "b", "shape": "rect", "points": [[half, 0], [size, size]], "prompt": "a straw hat"},
            ],
        }
    )
    canvas = N["PakatiCanvas"].execute(width=size, height=size, regions=layout).result[0]
    regions = N["PakatiRegionalConditioning"].execute(clip=clip, canvas=canvas, base_prompt=PROMPT, base_negative="blurry").result[0]
    regional = (
        N["PakatiApplyRegions"]
        .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )

    configs = [
        ("plain", model, "plain"),
        ("plain + capture (2 words, every layer)", capture(model), "plain"),
        ("Pakati, 2 regions", regional, "Pakati, 2 regions"),
        ("Pakati, 2 regions + capture", capture(regional), "Pakati, 2 regions"),
    ]
    seconds: dict[str, list[float]] = {name: [] for name, *_ in configs}
    ratios: dict[str, list[float]] = {name: [] for name, *_ in configs}
    for r in range(args.repeats + 1):
        shift = r % len(configs)
        this = {name: timed(m) for name, m, _ in configs[shift:] + configs[:shift]}
        if r:  # round 0 warms up
            for name, _, base in configs:
                seconds[name].append(this[name])
                ratios[name].append(this[name] / this[base])
    what = (
        f"{args.unet} SDXL-class UNet ({params:.1f} M parameters, {args.dtype}, random weights), {size}x{size}, "
        f"{args.steps} euler steps, CFG 5, {args.clock} seconds, {torch.get_num_threads()} torch thread(s), device {device}"
    )
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python bench/bench_attention_capture.py " + " ".join(sys.argv[1:])
    rows = [(name, statistics.median(seconds[name]), statistics.median(ratios[name])) for name, *_ in configs]
    if args.markdown:
        print(f"\n`{command.strip()}` — measured {when}: {what}; rounds alternate, median of {args.repeats}.\n")
        print("| configuration | seconds | ratio to the same run without capture |")
        print("| --- | ---: | ---: |")
        for name, sec, ratio in rows:
            print(f"| {name} | {sec:.2f} | {ratio:.2f}× |")
        return
    print(f"\nAttention capture benchmark: {what}; median of {args.repeats} alternating rounds")
    print(f"{'configuration':44s} {'seconds':>9s} {'ratio':>7s}")
    for name, sec, ratio in rows:
        print(f"{name:44s} {sec:9.3f} {ratio:6.2f}x")


if __name__ == "__main__":
    main()
