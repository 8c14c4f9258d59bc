"""Delta-report speed: a full report for an 896x896 region of a 1024x1024 image, as a ratio to one SSIM call.

Run: python bench/bench_delta.py  (pins the process to one core where the OS allows, and sets
single-threaded BLAS/OpenCV). The baseline is ``skimage.metrics.structural_similarity`` on the
same two whole 1024x1024 images (L* channel, gaussian weights), measured in the same run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from scipy.ndimage import gaussian_filter
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pakati_core.delta import analyse  # noqa: E402
from pakati_core.delta.report import ReferenceCache  # noqa: E402
from pakati_core.fuzzy import MamdaniEngine, load_rulebase  # noqa: E402
from pakati_core.references import Reference  # noqa: E402


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    ref = cv2.resize(skimage.data.astronaut().astype(np.float32) / 255.0, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    img = np.clip(gaussian_filter(ref, (1.0, 1.0, 0)) * np.array([1.05, 1.0, 0.92], np.float32), 0, 1)
    mask = np.zeros((1024, 1024), np.float32)
    mask[64:960, 64:960] = 1.0
    reference = Reference(ref, "astronaut", "general")
    l_img, l_ref = rgb2lab(img)[..., 0], rgb2lab(ref)[..., 0]

    ssim = best_of(
        lambda: structural_similarity(l_img, l_ref, data_range=100.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    )
    cold = best_of(lambda: analyse(img, [reference], mask))  # reference measured every call
    cache = ReferenceCache()
    analyse(img, [reference], mask, cache)
    warm = best_of(lambda: analyse(img, [reference], mask, cache))  # as in the refine loop
    engine = MamdaniEngine(load_rulebase())
    deltas = analyse(img, [reference], mask).weighted_deltas()
    fuzzy = best_of(lambda: engine.infer(deltas), repeats=50)

    print("896x896 region of a 1024x1024 image, one core; best of 5 (fuzzy: best of 50)")
    print(f"  baseline: one SSIM call (skimage, L*, gaussian)   {ssim * 1000:8.1f} ms   1.00x")
    print(f"  full report, reference measured too             {cold * 1000:8.1f} ms   {cold / ssim:5.2f}x")
    print(f"  full report, reference features cached          {warm * 1000:8.1f} ms   {warm / ssim:5.2f}x")
    print(f"  fuzzy inference (one call, default rules)       {fuzzy * 1000:8.2f} ms   {fuzzy / ssim:5.3f}x")
    print(f"  target: full report under 500 ms -> {'met' if cold < 0.5 else 'NOT met'} ({cold * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
