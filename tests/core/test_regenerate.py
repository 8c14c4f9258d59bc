"""Region-only regeneration core: crop boxes, stitch exactness, colour matching, canvas crop, locked regions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from pakati_core.canvas import Canvas, Region
from pakati_core.geometry import polygon_area
from pakati_core.lab import lab_to_rgb as from_lab
from pakati_core.lab import rgb_to_lab as to_lab
from pakati_core.regenerate import (
    EmptyMaskError,
    LockedRegionError,
    MaskSizeError,
    StitchMismatchError,
    band_radius,
    clip_polygon,
    compose_regions,
    crop_canvas,
    crop_region,
    mean_ciede2000,
    regeneration_mask,
    region_seed,
    ring,
    stitch_region,
    target_size,
)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def photo(name: str) -> np.ndarray:
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img.astype(np.float32) / 255.0


def ellipse_mask(h: int, w: int, cx: int, cy: int, ax: int, ay: int) -> np.ndarray:
    m = np.zeros((h, w), np.float32)
    cv2.ellipse(m, (cx, cy), (ax, ay), 0, 0, 360, 1.0, -1)
    return m


def to_uint8(a: np.ndarray) -> np.ndarray:
    """What ComfyUI's SaveImage writes."""
    return np.clip(255.0 * a, 0, 255).astype(np.uint8)


def drift(img: np.ndarray) -> np.ndarray:
    """A VAE-like round trip: slight softening, a Lab colour cast and a contrast change."""
    lab = to_lab(cv2.GaussianBlur(img, (0, 0), 0.5))
    lab[..., 0] = (lab[..., 0] - 50.0) * 1.06 + 50.0
    lab += np.array([3.0, -2.5, 4.0], np.float32)
    return from_lab(lab)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("mode", ["keep", "sdxl native"])
def test_stitched_regeneration_changes_nothing_outside_mask_and_band(name, mode):
    img = photo(name)
    h, w = img.shape[:2]
    mask = ellipse_mask(h, w, w // 2, h // 3, w // 7, h // 8)
    crop = crop_region(img, mask, context=32, mode=mode, grow=6, feather=12)
    tw, th = crop.stitch.target
    assert tw % 8 == 0 and th % 8 == 0 and crop.images.shape == (1, th, tw, 3)
    regenerated = 1.0 - crop.images  # a crop that differs everywhere
    out = stitch_region(crop.stitch, regenerated, colour_match=False)[0]
    blend = crop.stitch.blends[0]
    outside = blend == 0
    assert np.array_equal(to_uint8(out)[outside], to_uint8(img)[outside])
    assert np.array_equal(out[outside], img[outside])
    inside = mask >= 1
    assert (np.abs(out - img).max(-1)[inside] > 0.05).mean() > 0.9
    # the band is no wider than grow + the feather kernel radius
    assert not (blend > 0)[ring(mask, band_radius(6, 12) + 1, 10**6)].any()


def test_unchanged_crop_round_trip_is_exact_at_own_size_and_close_at_native_area():
    img = photo("astronaut")
    mask = ellipse_mask(512, 512, 260, 200, 70, 50)
    keep = crop_region(img, mask, context=40, mode="keep")
    assert np.array_equal(stitch_region(keep.stitch, keep.images, colour_match=False)[0], img)
    native = crop_region(img, mask, context=40, mode="sdxl native")
    back = stitch_region(native.stitch, native.images, colour_match=False)[0]
    band = native.stitch.blends[0] > 0
    assert np.array_equal(back[~band], img[~band])
    err = np.abs(back - img)[band]
    assert err.mean() < 0.01 and np.percentile(err, 99) < 0.06  # resampling up and back down
    assert np.abs(to_uint8(back).astype(int) - to_uint8(img).astype(int))[band].mean() < 2.5


@pytest.mark.parametrize("name", PHOTOS)
def test_colour_matching_keeps_the_ring_within_one_ciede2000(name):
    img = photo(name)
    h, w = img.shape[:2]
    mask = ellipse_mask(h, w, w // 2, h // 2, w // 6, h // 6)
    crop = crop_region(img, mask, context=48, mode="keep", grow=8, feather=16)
    new_content = cv2.resize(photo("coffee" if name != "coffee" else "chelsea"), crop.stitch.target)
    inner = (crop.masks[0] >= 1.0)[..., None]
    regenerated = np.where(inner, new_content, drift(crop.images[0]))
    r8 = ring(mask, 0, 8)
    plain = mean_ciede2000(stitch_region(crop.stitch, regenerated, colour_match=False)[0], img, r8)
    matched = mean_ciede2000(stitch_region(crop.stitch, regenerated, colour_match=True)[0], img, r8)
    assert plain > 1.5, plain  # the drift is visible without matching
    assert matched <= 1.0, matched


def test_target_sizes():
    assert target_size("keep", 37, 100) == (64, 104)
    w, h = target_size("sdxl native", 512, 256)
    assert w % 8 == h % 8 == 0 and abs(w * h / 1024**2 - 1) < 0.03 and abs(w / h - 2) < 0.05
    assert target_size("sdxl native", 512, 512) == (1024, 1024)
    assert target_size("explicit", 10, 10, (768, 512)) == (768, 512)
    with pytest.raises(Exception, match="multiples of 8"):
        target_size("explicit", 10, 10, (770, 512))


def test_empty_mask_is_a_clear_error():
    with pytest.raises(EmptyMaskError, match="mask is empty"):
        crop_region(photo("camera"), np.zeros((512, 512), np.float32))


def test_mask_touching_the_border():
    img = photo("rocket")
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)
    mask[:60, w - 90 :] = 1.0  # top-right corner
    crop = crop_region(img, mask, context=32, mode="keep")
    box = crop.stitch.boxes[0]
    assert box.x1 == w and box.y0 == 0 and box.x0 >= 0 and box.y1 <= h
    outside = crop.stitch.blends[0] == 0
    matched = stitch_region(crop.stitch, 1.0 - crop.images, colour_match=True)[0]
    assert np.array_equal(matched[outside], img[outside])
    out = stitch_region(crop.stitch, 1.0 - crop.images, colour_match=False)[0]
    assert np.array_equal(out[outside], img[outside]) and (np.abs(out - img)[mask >= 1] > 0.05).mean() > 0.9


def test_mask_covering_the_whole_image():
    img = photo("chelsea")[:296, :448]
    crop = crop_region(img, np.ones(img.shape[:2], np.float32), mode="keep")
    assert crop.stitch.boxes[0].as_tuple() == (0, 0, 448, 296)
    out = stitch_region(crop.stitch, 1.0 - crop.images, colour_match=True)[0]
    assert np.allclose(out, 1.0 - img, atol=1e-6)


def test_mask_of_another_size():
    img = photo("astronaut")
    small = ellipse_mask(128, 128, 64, 50, 20, 15)  # same aspect: resized onto the image
    crop = crop_region(img, small, context=16, mode="keep")
    assert crop.stitch.blends[0].shape == (512, 512)
    assert 100 <= crop.stitch.boxes[0].x0 <= 256 - 80 - 16  # the mask scaled x4: its left edge is at x=176
    with pytest.raises(MaskSizeError, match="aspect ratios differ"):
        crop_region(img, np.ones((100, 300), np.float32))


def test_region_smaller_than_8_px_gets_a_usable_crop():
    img = photo("coffee")
    mask = np.zeros(img.shape[:2], np.float32)
    mask[200:203, 300:305] = 1.0
    crop = crop_region(img, mask, context=0, mode="keep", grow=0, feather=0)
    assert crop.stitch.target == (64, 64)
    out = stitch_region(crop.stitch, np.zeros_like(crop.images), colour_match=False)[0]
    changed = np.any(out != img, axis=-1)
    assert changed[200:203, 300:305].all() and changed.sum() == 15


def test_batch_of_two_with_different_masks():
    img = np.stack([photo("astronaut"), photo("astronaut")[:, ::-1]])
    masks = np.stack([ellipse_mask(512, 512, 120, 120, 40, 30), ellipse_mask(512, 512, 380, 400, 60, 50)])
    crop = crop_region(img, masks, context=24, mode="keep")
    a, b = crop.stitch.boxes
    assert (a.width, a.height) == (b.width, b.height) == crop.stitch.target  # one sampling size, one box each
    assert a.x0 < 200 and b.x0 > 250
    out = stitch_region(crop.stitch, 1.0 - crop.images, colour_match=False)
    for i in range(2):
        outside = crop.stitch.blends[i] == 0
        assert np.array_equal(out[i][outside], img[i][outside])
        assert (np.abs(out[i] - img[i])[masks[i] >= 1] > 0.05).mean() > 0.9
    with pytest.raises(MaskSizeError, match="3 masks for 2 images"):
        crop_region(img, np.concatenate([masks, masks[:1]]))
    with pytest.raises(StitchMismatchError):
        stitch_region(crop.stitch, np.concatenate([crop.images, crop.images, crop.images]))


def test_clip_polygon_and_cropped_canvas_match_the_cropped_mask():
    square = np.array([[-10, -10], [50, -10], [50, 50], [-10, 50]], float)
    assert polygon_area(clip_polygon(square, 40, 40)) == pytest.approx(1600)
    canvas = Canvas(
        1024,
        1024,
        [
            Region(id="a", shape="polygon", points=((100, 100), (700, 150), (600, 700), (150, 500)), feather=8),
            Region(id="b", shape="rect", points=((650, 600), (1000, 1000))),
            Region(id="far", shape="rect", points=((0, 900), (40, 1000))),
        ],
    )
    img = photo("astronaut")  # 512x512: the canvas is laid over it at half scale
    mask, keep = regeneration_mask(canvas, "a", 512, 512)
    crop = crop_region(img, mask, context=32, mode="sdxl native")
    box, (tw, th) = crop.stitch.boxes[0], crop.stitch.target
    sub = crop_canvas(canvas, (512, 512), box, (tw, th))
    assert (sub.width, sub.height) == (tw, th) and [r.id for r in sub.regions] == ["a", "b"]
    for key in ("a", "b"):
        full = canvas.rasterize(key, 512, 512, feather=0)[box.y0 : box.y1, box.x0 : box.x1]
        ref = cv2.resize(full, (tw, th), interpolation=cv2.INTER_LINEAR) > 0.5
        got = sub.rasterize(key, feather=0) > 0.5
        assert (ref & got).sum() / (ref | got).sum() > 0.98


def test_locked_regions_keep_their_pixels():
    canvas = Canvas(
        512,
        512,
        [
            Region(id="sky", shape="rect", points=((0, 0), (512, 200)), feather=10),
            Region(id="boat", shape="rect", points=((150, 150), (350, 300)), locked=True),
            Region(id="sea", shape="rect", points=((0, 200), (512, 512)), seed=77),
        ],
    )
    prev, new = photo("astronaut"), cv2.resize(photo("coffee"), (512, 512))
    out = compose_regions(prev, new, canvas)
    assert np.array_equal(out[150:300, 150:350], prev[150:300, 150:350])  # locked: bit-identical
    assert np.allclose(out[20:120, 20:120], new[20:120, 20:120]) and np.allclose(out[400:500, 400:500], new[400:500, 400:500])
    only_sky = compose_regions(prev, new, canvas, ["sky"])
    assert np.array_equal(only_sky[400:], prev[400:])
    with pytest.raises(LockedRegionError, match="'boat' is locked"):
        compose_regions(prev, new, canvas, ["boat"])
    with pytest.raises(LockedRegionError):
        regeneration_mask(canvas, "boat", 512, 512)
    # regenerating the sea never touches the locked boat, though the boat lies in its band
    mask, keep = regeneration_mask(canvas, "sea", 512, 512)
    crop = crop_region(prev, mask, context=32, mode="keep", keep_out=keep, grow=8, feather=16)
    stitched = stitch_region(crop.stitch, 1.0 - crop.images)[0]
    assert np.array_equal(stitched[150:300, 150:350], prev[150:300, 150:350])
    assert region_seed(canvas.region("sea")) == 77
    assert region_seed(canvas.region("sky"), 5) == region_seed(canvas.region("sky"), 5) != region_seed(canvas.region("sky"), 6)
