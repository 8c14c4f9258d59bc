"""Regional prompting cost: Pakati's one-pass attention vs ComfyUI's ConditioningSetMask.

Runs in one process on one model, at one resolution and step count: plain single-prompt
sampling (the baseline), Pakati with 1, 2, 4 and 8 regions, and ComfyUI's own
ConditioningSetMask with the same prompts and masks. Prints seconds and ratios to the plain
run (median of --repeats runs after a warm-up).

    python bench/bench_regional.py                       # tiny SDXL-class UNet, CPU
    python bench/bench_regional.py --unet sdxl --size 1024 --steps 25 --dtype fp16   # full-size SDXL UNet (GPU)

Needs the ComfyUI host ($COMFYUI_PATH or ~/comfy/ComfyUI). Weights are random: timings only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = Path(os.environ.get("COMFYUI_PATH", Path.home() / "comfy" / "ComfyUI")).expanduser()

SDXL_FULL = {
    "model_channels": 320, "channel_mult": [1, 2, 4], "transformer_depth": [0, 2, 10],
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10], "transformer_depth_middle": 10,
    "num_res_blocks": [2, 2, 2], "num_head_channels": 64,
}
PROMPTS = ["a red brick house", "a green forest", "a blue lake", "snowy mountains", "a yellow sunflower field",
           "a white sailboat", "a flock of birds", "an old stone bridge"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unet", choices=["tiny", "sdxl"], default="tiny")
    ap.add_argument("--channels", type=int, default=64, help="tiny UNet width")
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    ap.add_argument("--regions", default="1,2,4,8")
    ap.add_argument("--no-comfy-masks", action="store_true", help="skip the ConditioningSetMask baseline")
    args = ap.parse_args()

    sys.path[:0] = [str(HOST), str(REPO / "tests" / "host_nodes")]
    import torch
    from comfy.cli_args import args as comfy_args

    if not torch.cuda.is_available():
        comfy_args.cpu = True
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models
    import nodes
    from pakati_test_nodes.tiny_sdxl import UNET_CONFIG, _init_, build_clip

    asyncio.run(nodes.load_custom_node(str(REPO)))
    N = nodes.NODE_CLASS_MAPPINGS
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    config = dict(UNET_CONFIG, model_channels=args.channels) if args.unet == "tiny" else dict(UNET_CONFIG, **SDXL_FULL)
    sdxl = comfy.supported_models.SDXL(config)
    sdxl.set_inference_dtype(dtype, None)
    base_model = sdxl.get_model({})
    _init_(base_model.diffusion_model, 0)
    device = comfy.model_management.get_torch_device()
    model = comfy.model_patcher.ModelPatcher(base_model, load_device=device, offload_device=comfy.model_management.unet_offload_device())
    clip = build_clip(1)
    params = sum(p.numel() for p in base_model.diffusion_model.parameters()) / 1e6

    size = args.size
    encode = lambda text: clip.encode_from_tokens_scheduled(clip.tokenize(text))  # noqa: E731
    positive, negative = encode("a landscape, golden hour"), encode("blurry")
    latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}

    def run(m, pos) -> float:
        times = []
        for i in range(args.repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            nodes.common_ksampler(m, 42, args.steps, 5.0, "euler", "normal", pos, negative, latent)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # the first run warms up
                times.append(time.perf_counter() - t)
        return statistics.median(times)

    def stripes(n: int) -> str:
        w = size / n
        regions = [{"id": f"r{i}", "shape": "rect", "points": [[round(i * w), 0], [round((i + 1) * w), size]], "prompt": PROMPTS[i]} for i in range(n)]
        return json.dumps({"version": 1, "width": size, "height": size, "regions": regions})

    rows = [("plain, single prompt", run(model, positive))]
    plain = rows[0][1]
    for n in [int(x) for x in args.regions.split(",")]:
        canvas = N["PakatiCanvas"].execute(width=size, height=size, regions=stripes(n)).result[0]
        regions, pos, _ = N["PakatiRegionalConditioning"].execute(clip=clip, canvas=canvas, base_prompt="a landscape, golden hour", base_negative="blurry").result
        patched = N["PakatiApplyRegions"].execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0).result[0]
        rows.append((f"Pakati, {n} region{'s' * (n > 1)}", run(patched, pos)))
        if not args.no_comfy_masks:
            cond = list(positive)
            for i in range(n):
                mask = N["PakatiRegionMask"].execute(canvas=canvas, region=i, feather=-1.0, exclusive=True).result[0]
                cond += nodes.ConditioningSetMask().append(encode(PROMPTS[i]), mask, "default", 1.0)[0]
            rows.append((f"ComfyUI ConditioningSetMask, {n} region{'s' * (n > 1)}", run(model, cond)))

    print(f"\nRegional prompting benchmark: {args.unet} SDXL-class UNet ({params:.1f} M params, {args.dtype}), "
          f"{size}x{size}, {args.steps} euler steps, CFG 5, device {device}, median of {args.repeats}")
    print(f"{'configuration':42s} {'seconds':>9s} {'ratio':>7s}")
    for name, sec in rows:
        print(f"{name:42s} {sec:9.3f} {sec / plain:6.2f}x")


if __name__ == "__main__":
    main()
