"""Region-only regeneration: what a crop costs against the whole image, and the seam's colour error.

Run from the repository root:  python3 bench/bench_region_regen.py [--steps 2] [--repeats 1]

1. Speed: a 512x512 region of a 2048x2048 photograph regenerated (VAE encode -> noise mask ->
   KSampler -> VAE decode -> stitch) at the region's own size (crop 'keep') and at SDXL native
   area (crop 'sdxl native', ~1024²), against regenerating the whole 2048² image with the same
   steps, all in this run. Uses ComfyUI's real sampler on the tiny random-weight SDXL-class
   test model (CPU unless a GPU is there), so the ratios, not the seconds, are the result.
2. Colour: mean CIEDE2000 in the 8-px ring just outside the mask after stitching a crop whose
   context went through a simulated VAE-like round trip (0.5 px softening, Lab cast (+3, -2.5, +4),
   L contrast x1.06) and whose inside holds new content, with and without Lab colour matching,
   on four skimage.data photographs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from harness import find_host  # noqa: E402  (the test harness's host search: COMFYUI_PATH, the ComfyUI holding the checkout, ~/comfy)
from pakati_core.lab import lab_to_rgb as from_lab  # noqa: E402
from pakati_core.lab import rgb_to_lab as to_lab  # noqa: E402  (after the sys.path line above, like its neighbours)
from pakati_core.regenerate import crop_region, mean_ciede2000, ring, stitch_region  # noqa: E402


def photo(name: str) -> np.ndarray:
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img.astype(np.float32) / 255.0


def drift(img: np.ndarray) -> np.ndarray:
    lab = to_lab(cv2.GaussianBlur(img, (0, 0), 0.5))
    lab[..., 0] = (lab[..., 0] - 50.0) * 1.06 + 50.0
    lab += np.array([3.0, -2.5, 4.0], np.float32)
    return from_lab(lab)


def colour_ring_figures() -> None:
    print("colour: mean CIEDE2000 in the 8-px ring just outside the mask (lower is better; target <= 1.0)")
    print(f"{'photo':<10} {'no matching':>12} {'Lab matching':>13}")
    worst = 0.0
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = photo(name)
        h, w = img.shape[:2]
        mask = np.zeros((h, w), np.float32)
        cv2.ellipse(mask, (w // 2, h // 2), (w // 6, h // 6), 0, 0, 360, 1.0, -1)
        crop = crop_region(img, mask, context=48, mode="keep", grow=8, feather=16)
        new_content = cv2.resize(photo("coffee" if name != "coffee" else "chelsea"), crop.stitch.target)
        regenerated = np.where((crop.masks[0] >= 1.0)[..., None], new_content, drift(crop.images[0]))
        r8 = ring(mask, 0, 8)
        plain = mean_ciede2000(stitch_region(crop.stitch, regenerated, colour_match=False)[0], img, r8)
        matched = mean_ciede2000(stitch_region(crop.stitch, regenerated, colour_match=True)[0], img, r8)
        worst = max(worst, matched)
        print(f"{name:<10} {plain:>12.3f} {matched:>13.3f}")
    print(f"worst with matching: {worst:.3f}")


def speed_figures(steps: int, repeats: int) -> None:
    host = find_host()
    if host is None:
        print("speed: skipped, no ComfyUI host (set COMFYUI_PATH)")
        return
    sys.path.insert(0, str(host))
    sys.path.insert(0, str(REPO / "tests" / "host_nodes"))
    import torch
    from comfy.cli_args import args

    if not torch.cuda.is_available():
        args.cpu = True
    import nodes  # ComfyUI's
    from pakati_test_nodes.tiny_sdxl import tiny_sdxl

    model, clip, vae = tiny_sdxl()
    pos = clip.encode_from_tokens_scheduled(clip.tokenize("an astronaut, detailed"))
    neg = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    big = cv2.resize(photo("astronaut"), (2048, 2048), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    mask = np.zeros((2048, 2048), np.float32)
    mask[768:1280, 768:1280] = 1.0

    @torch.inference_mode()
    def regenerate(image: np.ndarray, noise_mask: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(image)[None]
        latent = nodes.VAEEncode().encode(vae, pixels)[0]
        latent = nodes.SetLatentNoiseMask().set_mask(latent, torch.from_numpy(noise_mask)[None])[0]
        out = nodes.common_ksampler(model, 7, steps, 5.0, "euler", "normal", pos, neg, latent, denoise=1.0)[0]
        return nodes.VAEDecode().decode(vae, out)[0][0].numpy()

    def crop_job(mode: str):
        def job():
            crop = crop_region(big, mask, context=0, mode=mode, grow=0, feather=0)
            regen = regenerate(crop.images[0], crop.masks[0])
            return stitch_region(crop.stitch, regen, colour_match=True), crop.stitch.target

        return job

    def whole_job():
        return regenerate(big, mask), (2048, 2048)

    jobs = [("whole image", whole_job), ("crop, own size", crop_job("keep")), ("crop, SDXL native", crop_job("sdxl native"))]
    crop_job("keep")()  # load the model and warm the caches once before timing
    times = {}
    for name, job in jobs:
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            _, size = job()
            best = min(best, time.perf_counter() - t)
        times[name] = (best, size)
    base = times["whole image"][0]
    print(
        f"speed: regenerate a 512x512 region of a 2048x2048 image, {steps} euler steps, tiny SDXL-class UNet, "
        f"{'GPU' if torch.cuda.is_available() else 'CPU'}, best of {repeats}"
    )
    print(f"{'job':<20} {'sampled':>10} {'area ratio':>11} {'seconds':>9} {'time ratio':>11}")
    for name, (secs, (w, h)) in times.items():
        print(f"{name:<20} {f'{w}x{h}':>10} {w * h / 2048**2:>11.4f} {secs:>9.2f} {secs / base:>11.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--skip-speed", action="store_true")
    a = p.parse_args()
    colour_ring_figures()
    if not a.skip_speed:
        speed_figures(a.steps, a.repeats)


if __name__ == "__main__":
    main()
