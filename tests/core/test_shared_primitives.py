"""The shared core concepts (one home each): box, Lab, SSIM, LBP, exclusive masks, tone deltas, aspect."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity

from pakati_core.geometry import Box, mask_box
from pakati_core.lab import lab_to_rgb, mean_ciede2000, rgb_to_lab
from pakati_core.ssim import masked_ssim, ssim_map
from pakati_core.texture import LBP_CODES, chi_squared, lbp_histogram, uniform_lbp


def photo() -> np.ndarray:
    return data.astronaut()[:160, :192].astype(np.float32) / 255.0


def test_mask_box_is_half_open_x0_y0_x1_y1():
    m = np.zeros((40, 60), np.float32)
    m[5:9, 10:30] = 0.5
    box = mask_box(m)
    assert box == Box(10, 5, 30, 9) and (box.width, box.height) == (20, 4)
    assert m[box.slices].shape == (4, 20) and m[box.slices].min() == 0.5
    assert mask_box(np.zeros((4, 4))) is None


def test_lab_is_close_to_skimage_and_round_trips():
    img = photo()
    assert np.abs(rgb_to_lab(img) - rgb2lab(img.astype(np.float64))).max() < 0.7
    assert np.abs(lab_to_rgb(rgb_to_lab(img)) - img).max() < 1 / 255  # OpenCV keeps a round trip within one 8-bit level
    assert mean_ciede2000(img, img) == 0.0
    assert mean_ciede2000(img, np.clip(img + 0.1, 0, 1)) > 1.0


def test_ssim_map_is_skimages():
    a = photo()
    b = np.clip(a + np.random.default_rng(0).normal(0, 0.1, a.shape), 0, 1)
    _, ref = structural_similarity(
        a.astype(np.float64),
        b.astype(np.float64),
        channel_axis=-1,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    assert np.allclose(ssim_map(a, b), ref.mean(axis=-1), atol=1e-6)
    hidden = np.zeros(a.shape[:2], bool)
    hidden[40:80, 50:90] = True
    assert masked_ssim(a, b, hidden) == pytest.approx(float(ref.mean(axis=-1)[hidden].mean()), abs=1e-6)
    assert masked_ssim(a, a, hidden) == pytest.approx(1.0)


def test_lbp_codes_histogram_and_distance():
    flat = np.full((16, 16), 0.3, np.float32)
    assert set(np.unique(uniform_lbp(flat))) == {8}  # every neighbour >= centre: all ones
    grey = photo()[..., 0]
    h = lbp_histogram(grey, np.ones_like(grey))
    assert h.shape == (LBP_CODES,) and h.sum() == pytest.approx(1.0)
    assert chi_squared(h, h) == 0.0
    assert 0.0 < chi_squared(h, lbp_histogram(flat, np.ones_like(flat))) <= 1.0


def test_exclusive_masks_sum_to_at_most_one_and_later_regions_win():
    from pakati_core import Canvas, Region
    from pakati_core.masks import exclusive_masks

    own = np.stack([np.full((4, 4), 0.8, np.float32), np.full((4, 4), 0.5, np.float32)])
    ex = exclusive_masks(own)
    assert np.allclose(ex[1], 0.5) and np.allclose(ex[0], 0.8 * 0.5) and (ex.sum(0) <= 1.0 + 1e-6).all()
    canvas = Canvas(64, 64, [Region("a", "rect", ((0, 0), (40, 40))), Region("b", "rect", ((20, 20), (64, 64)))])
    ex = canvas.masks(exclusive=True)
    assert ex[0][30, 30] == 0.0 and ex[1][30, 30] == 1.0 and ex[0][10, 10] == 1.0


def test_refine_and_delta_analysis_share_one_tone_and_colour_definition():
    from pakati_core.delta import analyse
    from pakati_core.references import Reference
    from pakati_core.refine import tone_colour_deltas

    img = photo()
    warm = np.clip(img * np.array([1.1, 1.0, 0.8], np.float32) + 0.05, 0, 1)
    report = analyse(warm, [Reference(img)])
    full = tone_colour_deltas(warm, None, img)
    for name in ("brightness", "contrast", "warmth", "tint", "saturation"):
        assert report.delta(name).value == pytest.approx(full[name], rel=1e-4, abs=1e-4), name
    assert full["warmth"] > 2.0 and full["brightness"] > 2.0


def test_rasterisation_block_counts_equal_opencvs_area_average():
    """rasterize_polygon averages supersampled blocks as integer counts, and only along the
    outline (elsewhere a pixel is wholly in or out); the result is what cv2.INTER_AREA gives on a
    float32 copy of the whole supersampled drawing (the old route: 10 s and 1 GB at 4096²),
    for star shapes, self-intersecting polygons and polygons crossing the border."""
    import cv2

    from pakati_core.masks import _SUBPIXEL_BITS, rasterize_polygon

    rng = np.random.default_rng(3)
    cases = [(300, 260, 4, "star"), (90, 70, 16, "star")]
    cases += [(int(rng.integers(130, 700)), int(rng.integers(130, 700)), 0, kind) for kind in ("star", "random", "rect") for _ in range(6)]
    for w, h, ss, kind in cases:
        ss = ss or (4 if max(w, h) >= 256 else 16)
        n = int(rng.integers(3, 14))
        if kind == "star":
            a = np.sort(rng.uniform(0, 2 * np.pi, n))
            pts = np.stack(
                [w / 2 + 0.4 * w * np.cos(a) * rng.uniform(0.2, 1.6, n), h / 2 + 0.4 * h * np.sin(a) * rng.uniform(0.2, 1.6, n)], 1
            )
        elif kind == "random":  # self-intersecting, partly outside the image
            pts = np.stack([rng.uniform(-50, w + 50, n), rng.uniform(-50, h + 50, n)], 1)
        else:
            (x0, x1), (y0, y1) = np.sort(rng.uniform(0, w, 2)), np.sort(rng.uniform(0, h, 2))
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        fixed = np.round((pts * ss - 0.5) * (1 << _SUBPIXEL_BITS)).astype(np.int32).reshape(1, -1, 2)
        hi = np.zeros((h * ss + 1, w * ss + 1), np.uint8)
        cv2.fillPoly(hi, fixed, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        hi = hi[:-1, :-1] & hi[:-1, 1:] & hi[1:, :-1]
        expected = np.clip(cv2.resize(hi.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA), 0, 1)
        assert np.array_equal(rasterize_polygon(pts, w, h), expected), (w, h, kind)
